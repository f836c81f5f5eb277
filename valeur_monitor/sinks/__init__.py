"""Where results go: files (ledger, scores, dead letters), Kafka topics, metrics."""
