"""Shared pytest setup: the real-server fixtures (Redis, Kafka, Prometheus) as a plugin."""

pytest_plugins = ["tests.fixtures.servers", "tests.fixtures.own_redis"]
