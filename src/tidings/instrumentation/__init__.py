"""Instrumentation: lag in seconds and group status (the event catalogue joins later)."""
