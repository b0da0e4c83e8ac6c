"""A tiny YAML emitter for JSON data: block style, every string double-quoted.

Double-quoted YAML strings use JSON's escapes, so each scalar is written with `json.dumps`
and nothing a value holds can change the document's structure. Enough for `tidings docs
--output asyncapi.yaml` without a YAML dependency; any YAML 1.2 parser reads it.
"""

from __future__ import annotations

import json
from typing import Any


def dumps(data: Any) -> str:
    """`data` (dicts, lists, str, int, float, bool, None) as a YAML document."""
    lines: list[str] = []
    _emit(data, 0, lines)
    return "\n".join(lines) + "\n"


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _emit(value: Any, indent: int, lines: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            lines.append(pad + "{}")
        for k, v in value.items():
            if isinstance(v, dict | list) and v:
                lines.append(f"{pad}{_scalar(str(k))}:")
                _emit(v, indent + 2, lines)
            else:
                lines.append(f"{pad}{_scalar(str(k))}: {_flow(v)}")
    elif isinstance(value, list):
        if not value:
            lines.append(pad + "[]")
        for item in value:
            if isinstance(item, dict | list) and item:
                sub: list[str] = []
                _emit(item, indent + 2, sub)
                lines.append(f"{pad}- {sub[0].lstrip()}")
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {_flow(item)}")
    else:
        lines.append(pad + _flow(value))


def _flow(value: Any) -> str:
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return _scalar(value)
