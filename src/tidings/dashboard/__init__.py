"""`tidings dashboard`: a live status page of groups, lag, workers, topics and dead letters.

The only package that imports the web stack (the standard library's `http.server`).
"""

from tidings.dashboard.server import Dashboard, parse_bind

__all__ = ["Dashboard", "parse_bind"]
