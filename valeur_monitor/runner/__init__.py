"""Runners: the embedded one (files, no server) and, in `streaming/`, the faust workers."""
