"""Event archive: daily compressed JSONL files with the Kafka offsets they cover."""
