"""`tidings docs APP [APP...]`: an AsyncAPI 3.0 document of one or more apps.

Writes JSON to stdout, or to ``--output`` (``.yaml``/``.yml`` for YAML, else JSON).
``--serve`` shows it as a page on a loopback HTTP server (stdlib ``http.server``, on
127.0.0.1 only: the document describes internals) until Ctrl-C.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tidings.cli import render


def docs(
    apps: Annotated[
        list[str],
        typer.Argument(metavar="APP...", help="Apps as module:attribute; several merge into one."),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="PATH", help="Write here (.yaml/.yml: YAML; else JSON)."
        ),
    ] = None,
    title: Annotated[str | None, typer.Option(help="The document's title.")] = None,
    serve: Annotated[
        bool, typer.Option("--serve", help="Show the document as a page on 127.0.0.1.")
    ] = False,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port for --serve.")] = 8088,
) -> None:
    """Write an AsyncAPI 3.0 document: topics, events, publishes, groups, retries, DLQs."""
    from tidings.cli.loader import load_app  # lazily: loading an app imports pydantic
    from tidings.schema.asyncapi import document

    loaded = [(load_app(spec), spec.partition(":")[0]) for spec in apps]
    doc = document(loaded, title=title)
    if output is not None:
        output.write_text(_encode(doc, output.suffix), encoding="utf-8")
        render.done(
            f"Wrote {output}: {len(doc['channels'])} channels, {len(doc['operations'])} "
            f"operations, {len(doc['components']['messages'])} messages."
        )
    elif not serve:
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    if serve:
        _serve(doc, port)


def _encode(doc: dict[str, Any], suffix: str) -> str:
    if suffix.lower() in (".yaml", ".yml"):
        from tidings.schema.yaml import dumps

        return dumps(doc)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _serve(doc: dict[str, Any], port: int) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tidings.schema.page import render as page

    bodies = {
        "/": ("text/html; charset=utf-8", page(doc)),
        "/asyncapi.json": ("application/json", _encode(doc, ".json")),
        "/asyncapi.yaml": ("application/yaml", _encode(doc, ".yaml")),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = bodies.get(self.path.split("?")[0])
            if found is None:
                self.send_error(404)
                return
            body = found[1].encode()
            self.send_response(200)
            self.send_header("Content-Type", found[0])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    render.done(f"Serving the AsyncAPI page on http://127.0.0.1:{server.server_port}/ (Ctrl-C)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
