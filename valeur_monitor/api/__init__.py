"""The HTTP API and the customer pages (FastAPI), read-only over a read-side Reader."""
