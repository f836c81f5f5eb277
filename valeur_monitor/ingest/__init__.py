"""The webhook ingest server: vendor webhooks -> mapped canonical events -> Kafka or a file."""
