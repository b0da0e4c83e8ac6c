"""`tidings dashboard`: serve the live status page (loopback and read-only by default)."""

from __future__ import annotations

import logging

from tidings.cli import render
from tidings.cli.options import connect


def dashboard(http: str, allow_actions: bool, token: str | None, broker: str | None) -> None:
    """Serve the page until Ctrl-C (the options are those of `tidings dashboard`)."""
    from tidings.dashboard import Dashboard, parse_bind

    host, port = parse_bind(http)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    with connect(broker) as backend:
        dash = Dashboard(
            backend, host=host, port=port, allow_actions=allow_actions, token=token or None
        )
        mode = "actions allowed" if allow_actions else "read-only"
        render.stdout().print(f"tidings dashboard on {dash.url} ({mode}); Ctrl-C stops it.")
        try:
            dash.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            dash.close()
