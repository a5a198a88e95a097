"""Invitation use cases: import, pre-flight, queue, send, recover (one file per idea)."""
