"""Kafka tooling around the stream (kafka-python): topology, topic admin, replaying events."""
