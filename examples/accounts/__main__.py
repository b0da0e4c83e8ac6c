"""``python -m examples.accounts``: serve the accounts HTTP API (the consumers run elsewhere)."""

from __future__ import annotations

import argparse
import logging

from .app import system
from .service import AccountsHTTPServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.accounts", description="Serve the accounts HTTP API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with AccountsHTTPServer(system.service, args.host, args.port) as server:
        logging.getLogger("accounts.service").info(
            "accounts API on http://%s:%d (broker %s)",
            args.host,
            server.server_port,
            system.app.broker_url,
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            system.close()


if __name__ == "__main__":
    main()
