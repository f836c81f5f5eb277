"""Distributed runner: faust workers over the events topic, sharing the embedded Processor."""
