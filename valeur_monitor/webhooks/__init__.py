"""Signed webhooks to CRMs and on-call tools, from a durable Redis-stream outbox."""
