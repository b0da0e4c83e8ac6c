"""The lock file: every locked JSON Schema of an app's events, per type and version.

``tidings.schema.lock`` is JSON (sorted keys, two-space indent, so diffs read well)::

    {"format": 1, "app": "accounts",
     "events": {"AccountBanned": {"versions": {"1": [schema, ...], "2": [schema]}}}}

Each version keeps its history, oldest first: `lock` appends the current schema when it
differs from the last one, like subject versions in a schema registry, so the transitive
modes have something to check against. A version bump starts a new history; the old
versions stay, since retained events of those versions still reach consumers (upcast).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidings.schema.compat import Break, Mode, check
from tidings.schema.explain import explain

FORMAT = 1
DEFAULT_PATH = "tidings.schema.lock"
Lock = dict[str, Any]


def empty(app: str) -> Lock:
    return {"format": FORMAT, "app": app, "events": {}}


def read(path: Path) -> Lock:
    """Read a lock file. Raises ValueError naming the path when it is not one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not valid JSON ({exc}); regenerate it with `tidings schema lock`."
        ) from None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != FORMAT
        or not isinstance(doc.get("events"), dict)
    ):
        raise ValueError(
            f"{path} is not a tidings schema lock (format {FORMAT}); regenerate it with "
            "`tidings schema lock APP`."
        )
    return doc


def dump(lock: Lock) -> str:
    return json.dumps(lock, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass
class Finding:
    """One line of a check: an error (a breaking change, a missing upcaster) or a note."""

    event: str
    text: str
    error: bool


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.error]

    def add(self, event: str, text: str, *, error: bool) -> None:
        self.findings.append(Finding(event, text, error))


def update(lock: Lock, current: dict[str, tuple[int, dict[str, Any]]]) -> Lock:
    """Return `lock` with each current (version, schema) appended where it changed."""
    events: dict[str, Any] = json.loads(json.dumps(lock.get("events", {})))
    for name, (version, schema) in current.items():
        versions = events.setdefault(name, {"versions": {}})["versions"]
        history = versions.setdefault(str(version), [])
        if not history or history[-1] != schema:
            history.append(schema)
    return {**lock, "format": FORMAT, "events": dict(sorted(events.items()))}


def compare(
    lock: Lock,
    current: dict[str, tuple[int, dict[str, Any]]],
    mode: Mode,
    missing_upcasters: dict[str, list[int]],
) -> Report:
    """Check the current schemas against `lock` under `mode`; see `Report.errors`."""
    report = Report()
    locked: dict[str, Any] = lock.get("events", {})
    for name, (version, schema) in current.items():
        versions = {int(v): h for v, h in (locked.get(name) or {}).get("versions", {}).items()}
        if not versions:
            report.add(name, f"new event type (v{version}), not in the lock yet", error=False)
            continue
        newest = max(versions)
        if version < newest:
            report.add(
                name,
                f"is at version {version} but the lock has version {newest}: a class never "
                f"goes back a version. Set `version={newest}` again.",
                error=True,
            )
            continue
        older = [v for v in versions if v < version]
        gaps = [v for v in missing_upcasters.get(name, []) if older and v >= min(older)]
        for step in gaps:
            report.add(
                name,
                f"is at version {version} but has no upcaster from version {step}, and the "
                f"lock has version {min(older)} events: add `@upcaster({name}, "
                f"from_version={step})`.",
                error=True,
            )
        history = versions.get(version)
        if history is None:
            report.add(name, f"new version {version}, not in the lock yet", error=False)
            continue
        for br in check(history, schema, mode):
            report.add(name, _describe(br, len(history), version), error=True)
    for name in locked:
        if name not in current:
            report.add(name, "is in the lock but no longer published or consumed", error=False)
    return report


def _describe(br: Break, size: int, version: int) -> str:
    against = "the locked schema" if br.against == size - 1 else f"locked schema #{br.against + 1}"
    return f"v{version} vs {against}: {explain(br)}"
