"""Medians, ratios against raw confluent-kafka, targets; the terminal table, JSON and PNG."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.registry import BASELINE, CONTENDERS

Summary = dict[str, dict[str, dict[str, Any]]]


def summarize(runs: list[dict[str, Any]]) -> Summary:
    """Median (and min-max) of every numeric field, per contender and scenario."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[run["contender"], run["scenario"]].append(run)
    out: Summary = defaultdict(dict)
    for (contender, scenario), rows in groups.items():
        good = [r for r in rows if "error" not in r]
        entry: dict[str, Any] = {
            "reps": len(good),
            "errors": [r["error"] for r in rows if "error" in r],
        }
        keys = {k for r in good for k, v in r.items() if isinstance(v, int | float) and k != "rep"}
        for k in sorted(keys):
            values = [r[k] for r in good if isinstance(r.get(k), int | float)]
            entry[k] = statistics.median(values)
            if len(values) > 1:
                entry[f"{k}_range"] = [min(values), max(values)]
        out[contender][scenario] = entry
    return dict(out)


def background(runs: list[dict[str, Any]]) -> dict[str, float]:
    """System CPU use just before the runs (0-100): how quiet the machine was."""
    busy = [r["busy_before_pct"] for r in runs if isinstance(r.get("busy_before_pct"), float)]
    if not busy:
        return {}
    return {"median": statistics.median(busy), "max": max(busy), "min": min(busy)}


def _get(s: Summary, contender: str, scenario: str, metric: str) -> float | None:
    value = s.get(contender, {}).get(scenario, {}).get(metric)
    return float(value) if isinstance(value, int | float) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(s: Summary) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met."""
    tk = "tidings-kafka"
    consume = _get(s, tk, "consume", "events_per_s")
    rows: list[tuple[str, float | None, float, str]] = [
        (
            "tidings consume on Kafka >= 50% of raw confluent-kafka",
            _ratio(consume, _get(s, BASELINE, "consume", "events_per_s")),
            0.5,
            "ratio",
        ),
    ]
    for peer in ("faststream-kafka", "faststream-confluent", "aiokafka"):
        rows.append(
            (
                f"tidings consume on Kafka >= 3x {peer}",
                _ratio(consume, _get(s, peer, "consume", "events_per_s")),
                3.0,
                "ratio",
            )
        )
    rows += [
        (
            "tidings publish_many on Kafka >= 70% of raw produce",
            _ratio(
                _get(s, tk, "publish", "events_per_s"),
                _get(s, BASELINE, "publish", "events_per_s"),
            ),
            0.7,
            "ratio",
        ),
        (
            "embedded publish_many >= 100,000 events/s",
            _get(s, "tidings-embedded", "publish", "events_per_s"),
            100_000,
            "rate",
        ),
        (
            "embedded consume >= 50,000 events/s",
            _get(s, "tidings-embedded", "consume", "events_per_s"),
            50_000,
            "rate",
        ),
    ]
    rows.append(
        (
            "tidings run on Kafka: consume events/s >= 0.85x raw (model_validate_json)",
            _ratio(
                _get(s, tk, "consume_run", "events_per_s"),
                _get(s, *RAW_JSON, "events_per_s"),
            ),
            0.85,
            "ratio",
        )
    )
    out = [
        {"target": name, "value": v, "threshold": t, "unit": u, "ok": None if v is None else v >= t}
        for name, v, t, u in rows
    ]
    out += [
        {"target": name, "value": v, "threshold": t, "unit": u, "ok": None if v is None else v <= t}
        for name, v, t, u in cpu_targets(s)
    ]
    p99 = _get(s, "tidings-embedded", "latency", "p99_ms")
    out.append(
        {
            "target": "embedded p99 <= 25 ms at 1,000 events/s",
            "value": p99,
            "threshold": 25.0,
            "unit": "ms",
            "ok": None if p99 is None else p99 <= 25.0,
        }
    )
    return out


RAW_JSON = (BASELINE, "consume_json")
"""The like-for-like consume peer: raw confluent-kafka validating with model_validate_json."""


def cpu_targets(s: Summary) -> list[tuple[str, float | None, float, str]]:
    """Issue #17's targets, each "at most": CPU per event ratios and idle CPU."""
    tk, te = "tidings-kafka", "tidings-embedded"
    cpu = "cpu_us_per_event"
    raw_cpu = _get(s, *RAW_JSON, cpu)
    rows: list[tuple[str, float | None, float, str]] = [
        (
            "tidings run on Kafka: consume CPU/event <= 1.25x raw (model_validate_json)",
            _ratio(_get(s, tk, "consume_run", cpu), raw_cpu),
            1.25,
            "ratio",
        ),
        (
            "tidings run embedded: consume CPU/event <= 1.25x a plain SQLite read loop",
            _ratio(_get(s, te, "consume_run", cpu), _get(s, te, "consume_sqlite", cpu)),
            1.25,
            "ratio",
        ),
        (
            "publish_many on Kafka: CPU/event <= 1.2x raw produce (same encoding, headers)",
            _ratio(_get(s, tk, "publish", cpu), _get(s, BASELINE, "publish_headers", cpu)),
            1.2,
            "ratio",
        ),
    ]
    for name in (tk, te):
        rows.append(
            (
                f"idle `tidings run` worker ({CONTENDERS[name].label}) < 1% of a core",
                _get(s, name, "idle", "idle_cpu_pct"),
                1.0,
                "%",
            )
        )
    return rows


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    if unit == "ratio":
        return f"{v:.2f}x"
    if unit == "ms":
        return f"{v:.1f}"
    if unit == "%":
        return f"{v:.2f}%"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.0f}"
    return f"{v:.1f}"


COLUMNS = [
    "contender",
    "publish ev/s",
    "MB/s",
    "x raw",
    "publish() 1-by-1 ev/s",
    "consume ev/s",
    "x raw",
    "consumer CPU µs/ev",
    "consumer peak RSS MB",
    "e2e p50 ms",
    "p99 ms",
    "max ms",
]


def main_rows(s: Summary) -> list[list[str]]:
    base_pub = _get(s, BASELINE, "publish", "events_per_s")
    base_con = _get(s, BASELINE, "consume", "events_per_s")
    rows = []
    for name, c in CONTENDERS.items():
        if name not in s:
            continue
        pub = _get(s, name, "publish", "events_per_s")
        con = _get(s, name, "consume", "events_per_s")
        rows.append(
            [
                c.label,
                _fmt(pub),
                _fmt(_get(s, name, "publish", "mb_per_s")),
                _fmt(_ratio(pub, base_pub), "ratio"),
                _fmt(_get(s, name, "publish_single", "events_per_s")),
                _fmt(con),
                _fmt(_ratio(con, base_con), "ratio"),
                _fmt(_get(s, name, "consume", "cpu_us_per_event")),
                _fmt(_get(s, name, "consume", "rss_mb")),
                _fmt(_get(s, name, "latency", "p50_ms"), "ms") + _lagged(s, name),
                _fmt(_get(s, name, "latency", "p99_ms"), "ms"),
                _fmt(_get(s, name, "latency", "max_ms"), "ms"),
            ]
        )
    return rows


CPU_COLUMNS = [
    "consumer (decode + validate + no-op handler)",
    "CPU µs/ev",
    "min-max",
    "x raw (validate_json)",
    "events/s",
    "peak RSS MB",
    "start → 1st event s",
]

CONSUMERS = [
    (BASELINE, "consume", "raw confluent-kafka · json.loads + model_validate"),
    (BASELINE, "consume_json", "raw confluent-kafka · model_validate_json"),
    ("tidings-kafka", "consume", "tidings · Kafka, in-process (app.running)"),
    ("tidings-kafka", "consume_run", "tidings · Kafka, `tidings run` process"),
    ("aiokafka", "consume", "aiokafka"),
    ("faststream-kafka", "consume", "FastStream · aiokafka"),
    ("faststream-confluent", "consume", "FastStream · confluent"),
    ("tidings-embedded", "consume_sqlite", "plain SQLite read loop · model_validate_json"),
    ("tidings-embedded", "consume", "tidings · embedded, in-process"),
    ("tidings-embedded", "consume_run", "tidings · embedded, `tidings run` process"),
]
PUBLISHERS = [
    (BASELINE, "publish", "raw Producer.produce · json.dumps, no headers"),
    (BASELINE, "publish_headers", "raw Producer.produce · pydantic to_json + CloudEvents headers"),
    ("tidings-kafka", "publish", "tidings · Kafka publish_many"),
    ("tidings-embedded", "publish", "tidings · embedded publish_many"),
]


def cpu_rows(s: Summary) -> list[list[str]]:
    """CPU per event of every consumer and publisher (every thread, measured window)."""
    cpu = "cpu_us_per_event"
    base = _get(s, *RAW_JSON, cpu)
    rows = []
    for name, scenario, label in CONSUMERS:
        value = _get(s, name, scenario, cpu)
        if value is None:
            continue
        d = s[name][scenario]
        span = d.get(f"{cpu}_range")
        rss = _get(s, name, scenario, "run_rss_mb") or _get(s, name, scenario, "rss_mb")
        rows.append(
            [
                label,
                _fmt(value),
                f"{span[0]:.1f}-{span[1]:.1f}" if span else "-",
                _fmt(_ratio(value, base), "ratio") if name != "tidings-embedded" else "-",
                _fmt(_get(s, name, scenario, "events_per_s")),
                _fmt(rss),
                _fmt(_get(s, name, scenario, "startup_to_first_event_s"), "ms"),
            ]
        )
    pub_base = _get(s, BASELINE, "publish_headers", cpu)
    for name, scenario, label in PUBLISHERS:
        value = _get(s, name, scenario, cpu)
        if value is None:
            continue
        span = s[name][scenario].get(f"{cpu}_range")
        rows.append(
            [
                label,
                _fmt(value),
                f"{span[0]:.1f}-{span[1]:.1f}" if span else "-",
                _fmt(_ratio(value, pub_base), "ratio") if name != "tidings-embedded" else "-",
                _fmt(_get(s, name, scenario, "events_per_s")),
                "-",
                "-",
            ]
        )
    return rows


def idle_rows(s: Summary) -> list[list[str]]:
    rows = []
    for name in ("tidings-kafka", "tidings-embedded"):
        d = s.get(name, {}).get("idle")
        if not d or "idle_cpu_pct" not in d:
            continue
        rows.append(
            [
                f"idle `tidings run` worker, {CONTENDERS[name].label}",
                f"{d['idle_cpu_pct']:.2f}% of a core over {d['seconds']:.0f} s, "
                f"{d['threads']:.0f} threads",
            ]
        )
    return rows


LAG_MS = 100.0


def _lagged(s: Summary, name: str) -> str:
    lag = _get(s, name, "latency", "producer_max_lag_ms")
    return "*" if lag is not None and lag > LAG_MS else ""


def extra_rows(s: Summary, results: dict[str, Any]) -> list[list[str]]:
    """Delays, concurrency and the SQLite ceiling, as (what, figure) rows."""
    rows: list[list[str]] = []
    lagged = [
        f"{CONTENDERS[n].label} {_get(s, n, 'latency', 'producer_max_lag_ms'):,.0f} ms"
        for n in CONTENDERS
        if _lagged(s, n)
    ]
    if lagged:
        rows.append(["* latency producer fell behind its schedule by up to", "; ".join(lagged)])
    for name in ("tidings-embedded", "tidings-kafka"):
        label = CONTENDERS[name].label
        for scenario, d in s.get(name, {}).items():
            if not scenario.startswith("delay") or "expected" not in d:
                continue
            rate = int(scenario.split("_")[1]) if "_" in scenario else results["settings"]["rate"]
            figure = ""
            if "p50_ms" in d:
                figure = (
                    f"p50 {_fmt(d['p50_ms'], 'ms')} / p99 {_fmt(d['p99_ms'], 'ms')} / "
                    f"max {_fmt(d['max_ms'], 'ms')} ms"
                )
            if d.get("incomplete"):
                figure = (
                    f"not sustained: {d['received']:,.0f} of {d['expected']:,.0f} delivered "
                    f"(~{d['delivered_per_s']:,.0f}/s) before the consumer gave up"
                    + (f"; {figure} for those" if figure else "")
                )
            delay = results["settings"]["delay_seconds"]
            rows.append([f"{label}: delay lateness ({delay:g} s delay) at {rate:,}/s", figure])
        if name == "tidings-kafka" and not results.get("kafka_delays", {}).get("available"):
            reason = results.get("kafka_delays", {}).get("reason", "not measured")
            rows.append([f"{label}: delay lateness", f"not available ({reason})"])
        one = _get(s, name, "concurrency_1", "events_per_s")
        many = _get(s, name, "concurrency_50", "events_per_s")
        if one or many:
            rows.append(
                [
                    f"{label}: 10 ms handler, 100 keys, concurrency 1 → 50",
                    f"{_fmt(one)} → {_fmt(many)} ev/s ({_fmt(_ratio(many, one), 'ratio')})",
                ]
            )
    sq = s.get("sqlite", {}).get("ceiling")
    if sq and "insert_per_s" in sq:
        rows.append(
            [
                "SQLite ceiling (executemany 5,000/txn, WAL NORMAL; read 500/query)",
                f"insert {_fmt(sq['insert_per_s'])} rows/s, read {_fmt(sq['read_per_s'])} rows/s",
            ]
        )
    return rows


def target_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for t in results["targets"]:
        mark = {True: "met", False: "MISSED", None: "not measured"}[t["ok"]]
        value = t["value"]
        shown = f"{value:.3f}x" if t["unit"] == "ratio" and value is not None else None
        rows.append([t["target"], shown or _fmt(value, t["unit"]), mark])
    return rows


def print_tables(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    s = results["summary"]
    console = Console(width=200)
    table = Table(title=_title(results), title_justify="left")
    for i, col in enumerate(COLUMNS):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in main_rows(s):
        table.add_row(*row)
    console.print(table)
    extra = Table(show_header=False)
    extra.add_column()
    extra.add_column()
    for row in extra_rows(s, results) + idle_rows(s):
        extra.add_row(*row)
    console.print(extra)
    ct = Table(title="CPU per event: every thread of the process over the measured window")
    for i, col in enumerate(CPU_COLUMNS):
        ct.add_column(col, justify="left" if i == 0 else "right")
    for row in cpu_rows(s):
        ct.add_row(*row)
    console.print(ct)
    tt = Table(title="Targets")
    for col in ("target", "measured", ""):
        tt.add_column(col)
    for row in target_rows(results):
        tt.add_row(*row)
    console.print(tt)


def _title(results: dict[str, Any]) -> str:
    st, m = results["settings"], results["machine"]
    busy = results.get("background_busy_pct", {}).get("median")
    quiet = f", CPU busy before runs {busy:.0f}% (median)" if busy is not None else ""
    return (
        f"{st['events']:,} events (+{st['warmup']:,} warm-up) of {st['size']} B JSON, "
        f"{st['partitions']} partitions, median of {st['reps']} · {m['cpu_model']}, "
        f"{m['cores']} cores, {m['ram_gb']} GB{quiet}"
    )


def markdown(results: dict[str, Any]) -> str:
    def table(header: list[str], rows: list[list[str]]) -> str:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)

    s = results["summary"]
    parts = [
        _title(results),
        "",
        table(COLUMNS, main_rows(s)),
        "",
        table(CPU_COLUMNS, cpu_rows(s)),
        "",
        table(["scenario", "result"], extra_rows(s, results) + idle_rows(s)),
        "",
        table(["target", "measured", "status"], target_rows(results)),
    ]
    return "\n".join(parts) + "\n"


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=1, sort_keys=False, default=str) + "\n")


def write_png(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = results["summary"]
    names = [n for n in CONTENDERS if n in s]
    labels = [CONTENDERS[n].label.replace(" · ", "\n") for n in names]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.8))
    panels = [
        ("publish", "events_per_s", "Publish (events/s)"),
        ("consume", "events_per_s", "Consume: decode + validate + no-op (events/s)"),
    ]
    for ax, (scenario, metric, title) in zip(axes, panels, strict=False):
        values = [_get(s, n, scenario, metric) or 0.0 for n in names]
        colors = ["#1f77b4" if n.startswith("tidings") else "#999999" for n in names]
        bars = ax.bar(range(len(names)), values, color=colors)
        ax.bar_label(bars, labels=[f"{v:,.0f}" if v else "-" for v in values], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(names)), labels, fontsize=7, rotation=30, ha="right")
    lat = [n for n in names if _get(s, n, "latency", "p50_ms") is not None]
    x = range(len(lat))
    p50 = [_get(s, n, "latency", "p50_ms") or 0.0 for n in lat]
    p99 = [_get(s, n, "latency", "p99_ms") or 0.0 for n in lat]
    ax = axes[2]
    b1 = ax.bar([i - 0.2 for i in x], p50, width=0.4, label="p50", color="#2ca02c")
    b2 = ax.bar([i + 0.2 for i in x], p99, width=0.4, label="p99", color="#d62728")
    ax.bar_label(b1, labels=[f"{v:.1f}" for v in p50], fontsize=7)
    ax.bar_label(b2, labels=[f"{v:.1f}" for v in p99], fontsize=7)
    ax.set_title(
        f"End-to-end latency at {results['settings']['rate']:,} events/s (ms)", fontsize=10
    )
    ax.set_xticks(list(x), [CONTENDERS[n].label.replace(" · ", "\n") for n in lat], fontsize=7)
    ax.legend(fontsize=8)
    v = results["versions"]
    fig.suptitle(_title(results), fontsize=10)
    fig.text(
        0.01,
        0.01,
        f"Python {v['python']} · confluent-kafka {v['confluent-kafka']} (librdkafka "
        f"{v['librdkafka']}) · aiokafka {v['aiokafka']} · FastStream {v['faststream']} · "
        f"Kafka {v['kafka']} · tidings {v['tidings']} · {results['started']}",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)
