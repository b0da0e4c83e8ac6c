"""Which Event types an app publishes or consumes, and their JSON Schemas.

Consumed types come from the app's consumers (a handler annotated with `Event` takes every
type below). Published types cannot be read off the code (``app.publish`` takes any
event at run time), so tidings takes every Event subclass defined in the app's package: the
package of the APP module (``examples.accounts`` for ``examples.accounts.app:app``), or the
module itself when it is top-level. That is where a service keeps the events it owns.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode

from tidings.app import App
from tidings.events import Event, registered_types

EXTRA_MARK = "x-tidings-extra"


class _Generator(GenerateJsonSchema):
    """pydantic's JSON Schema, with each ``extra="ignore"`` model marked (see compat)."""

    def model_schema(self, schema: Any) -> Any:
        out = super().model_schema(schema)
        extra = schema["cls"].model_config.get("extra")
        if extra in (None, "ignore") and isinstance(out, dict):
            out[EXTRA_MARK] = "ignore"
        return out


def json_schema(
    cls: type[Event], *, marked: bool = True, mode: JsonSchemaMode = "validation"
) -> dict[str, Any]:
    """The JSON Schema of `cls` (`$defs` inline); `marked` adds the content-model marks."""
    if marked:
        return cls.model_json_schema(schema_generator=_Generator, mode=mode)
    return cls.model_json_schema(mode=mode)


def package_of(module: str) -> str:
    """The package whose events an app in `module` publishes."""
    parent, dot, _ = module.rpartition(".")
    return parent if dot else module


def owned(package: str) -> dict[str, type[Event]]:
    """Every registered Event type defined in `package` (or a module below it)."""
    return {
        name: cls
        for name, cls in registered_types().items()
        if cls.__module__ == package or cls.__module__.startswith(package + ".")
    }


def consumed(app: App, package: str | None) -> dict[str, type[Event]]:
    """The Event types the app's consumers receive (all owned ones for an `Event` handler)."""
    out: dict[str, type[Event]] = {}
    for spec in app.consumers:
        accepts = spec.handler.accepts
        classes = accepts if accepts is not None else owned(package or "").values()
        out.update({c.event_type: c for c in classes if c is not Event})
    return out


def app_events(app: App, module: str | None) -> dict[str, type[Event]]:
    """The Event types `app` (loaded from `module`) publishes or consumes, by wire type."""
    package = package_of(module) if module else None
    found = dict(owned(package)) if package else {}
    found.update(consumed(app, package))
    return dict(sorted(found.items()))
