"""An AsyncAPI document as one self-contained HTML page (no scripts, no external assets)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

_STYLE = """
body{font:14px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ddd;margin-top:2rem}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f6f6f6}code{background:#f3f3f3;padding:0 .2rem}
details{margin:.4rem 0}pre{background:#f8f8f8;padding:.6rem;overflow:auto;font-size:12px}
.send{color:#0a6}.receive{color:#06a}
"""


def render(doc: dict[str, Any]) -> str:
    """The page: channels, operations and messages with their schemas; links to the JSON."""
    info = doc.get("info", {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{escape(info.get('title', 'AsyncAPI'))}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{escape(info.get('title', ''))}</h1>",
        f"<p>AsyncAPI {escape(doc.get('asyncapi', ''))} · <a href='asyncapi.json'>asyncapi.json</a>"
        " · <a href='asyncapi.yaml'>asyncapi.yaml</a></p>",
        f"<p>{escape(info.get('description', ''))}</p>",
        "<h2>Channels</h2><table><tr><th>topic</th><th>messages</th><th>about</th></tr>",
    ]
    for channel in doc.get("channels", {}).values():
        names = ", ".join(f"<code>{escape(m)}</code>" for m in channel.get("messages", {}))
        parts.append(
            f"<tr><td><code>{escape(channel.get('address', ''))}</code></td><td>{names}</td>"
            f"<td>{escape(channel.get('description', ''))}</td></tr>"
        )
    parts.append("</table><h2>Operations</h2><table><tr><th>id</th><th>action</th>")
    parts.append("<th>channel</th><th>summary</th></tr>")
    for oid, op in doc.get("operations", {}).items():
        channel = op["channel"]["$ref"].rsplit("/", 1)[-1]
        action = escape(op.get("action", ""))
        parts.append(
            f"<tr><td><code>{escape(oid)}</code></td><td class='{action}'>{action}</td>"
            f"<td><code>{escape(channel)}</code></td><td>{escape(op.get('summary', ''))}</td></tr>"
        )
    parts.append("</table><h2>Messages</h2>")
    components = doc.get("components", {})
    for mid, message in components.get("messages", {}).items():
        payload = message.get("payload", {})
        ref = payload.get("$ref", "") if isinstance(payload, dict) else ""
        schema = components.get("schemas", {}).get(ref.rsplit("/", 1)[-1], payload)
        parts.append(
            f"<details><summary><b>{escape(mid)}</b> v{message.get('x-tidings-version', 1)}"
            f" {escape(message.get('summary', ''))}</summary>"
            f"<pre>{escape(json.dumps(schema, indent=2))}</pre></details>"
        )
    parts.append("</body></html>")
    return "".join(parts)
