"""An AsyncAPI 3.0 document for one or more apps: topics, events, publishes and groups.

Channels: every declared topic, and for each consumer group its retry topic (when it
retries off the partition, ``Retry(keep_order=False)``) and dead-letter topic; the Kafka
delay tiers appear as one parameterized channel when something waits on them. Messages:
every Event type, its payload the pydantic JSON Schema with nested models, unions and
generics lifted into ``components/schemas`` (one name per model across all apps), its
headers the CloudEvents binary-mode headers. Operations: a ``receive`` per consumer group
and topic, a ``send`` per group to its retry and dead-letter topics, and a ``send`` per app
for the events it owns (see `tidings.schema.events`) on each topic where they travel.
Several apps merge into one document; shared topics and events appear once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic.json_schema import models_json_schema

from tidings.app import App
from tidings.events import Event
from tidings.runtime.dead_letters import dlq_topic, retry_topic
from tidings.schema.events import app_events, owned, package_of
from tidings.wire import H_CAUSATION, H_CORRELATION, H_TRACEPARENT, version_uri

VERSION = "3.0.0"
KAFKA_BINDING = "0.5.0"
DELAY_CHANNEL = "tidings-delay"
_KEY = re.compile(r"[^A-Za-z0-9_.\-]")


def key(name: str) -> str:
    """A component/channel/operation key for `name` (AsyncAPI allows [A-Za-z0-9._-])."""
    return _KEY.sub("_", name)


def document(apps: Sequence[tuple[App, str | None]], *, title: str | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of `apps`, each given with the module it was loaded from."""
    events: dict[str, type[Event]] = {}
    for app, module in apps:
        events.update(app_events(app, module))
    schemas = _schemas(events)
    doc: dict[str, Any] = {
        "asyncapi": VERSION,
        "info": {
            "title": title or " + ".join(app.name for app, _ in apps),
            "version": "1.0.0",
            "description": "Written by `tidings docs`. Events follow the CloudEvents 1.0 "
            "Kafka binding in binary mode: the value is the event's JSON, the key its "
            "partition key, the attributes are `ce_*` headers.",
        },
        "defaultContentType": "application/json",
        "channels": {},
        "operations": {},
        "components": {"messages": {}, "schemas": schemas["defs"]},
    }
    for name, cls in events.items():
        doc["components"]["messages"][key(name)] = _message(name, cls, schemas["refs"][name])
    topics: dict[str, set[str]] = {}  # topic -> event types that travel on it
    for app, module in apps:
        for spec in app.consumers:
            types = _accepted(spec.handler.accepts, _everything(module, events))
            topics.setdefault(spec.topic, set()).update(types)
    for app, _ in apps:
        for name, topic in app.topics.items():
            _channel(doc, name, topics.get(name, set()), topic.partitions, "")
    for app, module in apps:
        _operations(doc, app, module, topics, _everything(module, events))
    return doc


def _everything(module: str | None, events: dict[str, type[Event]]) -> dict[str, type[Event]]:
    """What a handler annotated `Event` receives: the app's own events (else all)."""
    return owned(package_of(module)) if module else events


def _accepted(accepts: frozenset[type[Event]] | None, fallback: dict[str, type[Event]]) -> set[str]:
    classes = accepts if accepts is not None else fallback.values()
    return {c.event_type for c in classes if c is not Event}


def _schemas(events: dict[str, type[Event]]) -> dict[str, Any]:
    """Payload schemas of `events` with every model in one shared components namespace."""
    if not events:
        return {"refs": {}, "defs": {}}
    keys, top = models_json_schema(
        [(cls, "validation") for cls in events.values()],
        ref_template="#/components/schemas/{model}",
    )
    defs: dict[str, Any] = {k: _asyncapi_schema(v) for k, v in top.get("$defs", {}).items()}
    refs = {name: keys[(cls, "validation")] for name, cls in events.items()}
    return {"refs": refs, "defs": defs}


def _asyncapi_schema(node: Any) -> Any:
    """JSON Schema 2020-12 as pydantic writes it → the AsyncAPI Schema Object (draft 7).

    pydantic's ``discriminator`` is OpenAPI's object; AsyncAPI's is a property name, with
    other semantics, so the mapping is kept as ``x-discriminator`` and ``oneOf`` carries
    the union. ``prefixItems`` (tuples) becomes draft 7's array form of ``items``.
    """
    if isinstance(node, list):
        return [_asyncapi_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k == "discriminator" and isinstance(v, dict):
            out["x-discriminator"] = v
        elif k == "prefixItems":
            out["items"] = _asyncapi_schema(v)
            if node.get("items") is False:
                out["additionalItems"] = False
        elif k == "items" and "prefixItems" in node:
            continue
        elif k in ("properties", "patternProperties", "$defs", "definitions"):
            out[k] = {name: _asyncapi_schema(s) for name, s in v.items()}
        else:
            out[k] = _asyncapi_schema(v)
    return out


def _headers(name: str, cls: type[Event]) -> dict[str, Any]:
    text: dict[str, Any] = {"type": "string"}
    props: dict[str, Any] = {
        "ce_specversion": {"const": "1.0", "description": "CloudEvents version"},
        "ce_id": {**text, "description": "Event id (UUIDv7)"},
        "ce_source": {**text, "description": "The publishing app's name"},
        "ce_type": {"const": name, "description": "The event type"},
        "ce_time": {**text, "format": "date-time", "description": "When it was published"},
        "content-type": {"const": "application/json"},
        H_TRACEPARENT: {**text, "description": "W3C trace context"},
        H_CORRELATION: {**text, "description": "Correlation id, carried by ctx.publish"},
        H_CAUSATION: {**text, "description": "Id of the event this one follows from"},
    }
    required = ["ce_specversion", "ce_id", "ce_source", "ce_type"]
    uri = version_uri(name, cls.event_version)
    if uri is not None:
        props["ce_dataschema"] = {
            "const": uri.decode(),
            "description": f"Schema version {cls.event_version}; absent means version 1",
        }
        required.append("ce_dataschema")
    return {"type": "object", "properties": props, "required": required}


def _message(name: str, cls: type[Event], ref: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": name,
        "title": cls.__name__,
        "contentType": "application/json",
        "headers": _headers(name, cls),
        "payload": ref,
        "bindings": {"kafka": {"key": {"type": "string"}, "bindingVersion": KAFKA_BINDING}},
        "x-tidings-version": cls.event_version,
    }
    doc = (cls.__doc__ or "").strip()
    if doc and cls.__doc__ != Event.__doc__:
        message["summary"] = doc.splitlines()[0]
        message["description"] = doc
    return message


def _channel(
    doc: dict[str, Any], topic: str, types: set[str], partitions: int | None, description: str
) -> str:
    cid = key(topic)
    binding: dict[str, Any] = {"topic": topic, "bindingVersion": KAFKA_BINDING}
    if partitions is not None:
        binding["partitions"] = partitions
    channel = doc["channels"].setdefault(
        cid, {"address": topic, "messages": {}, "bindings": {"kafka": binding}}
    )
    if description:
        channel["description"] = description
    for name in sorted(types):
        channel["messages"][key(name)] = {"$ref": f"#/components/messages/{key(name)}"}
    return cid


def _operation(
    doc: dict[str, Any],
    oid: str,
    action: str,
    cid: str,
    summary: str,
    group: str | None,
    types: set[str],
) -> None:
    names = sorted(key(t) for t in types)
    op: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{cid}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{cid}/messages/{n}"} for n in names],
    }
    if group is not None:
        op["bindings"] = {
            "kafka": {
                "groupId": {"type": "string", "enum": [group]},
                "bindingVersion": KAFKA_BINDING,
            }
        }
    doc["operations"][key(oid)] = op


def _operations(
    doc: dict[str, Any],
    app: App,
    module: str | None,
    topics: dict[str, set[str]],
    everything: dict[str, type[Event]],
) -> None:
    mine = set(owned(package_of(module))) if module else set()
    for topic in app.topics:
        sent = topics.get(topic, set()) & mine
        if sent:
            summary = f"`{app.name}` publishes"
            _operation(doc, f"{app.name}.send.{topic}", "send", key(topic), summary, None, sent)
    for spec in app.consumers:
        types = _accepted(spec.handler.accepts, everything)
        group = spec.group
        where = f"group `{group}` ({spec.handler.name})"
        summary = f"Consumed by {where}"
        _operation(
            doc, f"{group}.receive.{spec.topic}", "receive", key(spec.topic), summary, group, types
        )
        if not spec.retry.keep_order:
            rt = retry_topic(spec.topic, group)
            partitions = app.topics[rt].partitions if rt in app.topics else None
            rid = _channel(doc, rt, types, partitions, f"Retries of {where}, delayed by backoff.")
            _operation(
                doc, f"{group}.send.{rt}", "send", rid, f"Failed attempts, by {where}", group, types
            )
            _operation(
                doc, f"{group}.receive.{rt}", "receive", rid, f"Retried by {where}", group, types
            )
            _delay_channel(doc)
        if spec.dead_letter:
            dt = dlq_topic(spec.topic, group)
            about = (
                f"Dead letters of {where}: the original record plus `tidings-dlq-*` headers "
                "(reason, error, attempts, original topic/partition/offset). "
                "`tidings dlq replay` re-delivers them to this group only."
            )
            did = _channel(doc, dt, types, None, about)
            _operation(
                doc, f"{group}.send.{dt}", "send", did, f"Dead letters, by {where}", group, types
            )


def _delay_channel(doc: dict[str, Any]) -> None:
    if DELAY_CHANNEL in doc["channels"]:
        return
    doc["channels"][DELAY_CHANNEL] = {
        "address": "tidings.delay.{tier}",
        "description": "Kafka backend only: delayed records (retries with backoff, "
        "`publish(..., delay=...)`) wait in tiered topics until due, then a scheduler in "
        "`tidings run` forwards them to their topic. The embedded broker delays natively.",
        "parameters": {"tier": {"description": "The delay tier: due, 200ms, 1s, 5s, ... 7d"}},
        "messages": {},
    }
