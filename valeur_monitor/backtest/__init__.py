"""Backtest: two rule sets over the same events in one pass, and what changes between them."""
