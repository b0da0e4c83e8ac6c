"""`tidings demo` runs the account system on a fresh embedded broker and loses nothing.

A short, fast run: traffic for 3 s, then the audit reads every event back from the broker
and checks it against each group's ledger; the exit code is 0 only if nothing was lost.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tidings
from tidings.cli.demo import demo

GROUPS = ("payments", "notifications", "analytics", "onboarding")


def _row(output: str, group: str) -> list[int]:
    """Return the numbers of `group`'s row in the summary (the last table printed)."""
    summary = output[output.index("Published ") :]
    line = next(line for line in summary.splitlines() if line.strip().startswith(group))
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", line)]


def test_demo_loses_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code = demo(None, duration=3, rate=200, seed=1)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Nothing was lost." in out
    published = re.search(r"Published ([\d,]+) events: ([\d,]+) by the accounts service", out)
    assert published is not None, out
    assert int(published[2].replace(",", "")) == 600  # 200 events/s for 3 s
    for group in GROUPS:
        expected, handled, _, dead, _, lost = _row(out, group)
        assert lost == 0
        assert expected == handled + dead > 0
    # The injected failures show: transient gateway errors are retried, bounced
    # addresses are dead-lettered, and both delayed flows delivered their events.
    _, _, retried, dead, reminders, _ = _row(out, "notifications")
    assert retried > 0 and dead > 0 and reminders > 0
    assert _row(out, "onboarding")[4] > 0
    assert _row(out, "payments")[3] == 0
    # The service published through the outbox: all it committed was relayed.
    edges = re.search(r"Outbox: ([\d,]+) events committed, ([\d,]+) relayed", out)
    assert edges is not None, out
    assert edges[1] == edges[2] == "600"
    assert re.search(r"Inbox: [\d,]+ duplicate deliveries skipped", out), out


def test_demo_explains_where_the_example_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tidings, "__file__", str(tmp_path / "site" / "tidings" / "__init__.py"))
    assert demo(None, duration=1, rate=1, seed=1) == 1
    assert "examples/accounts" in capsys.readouterr().err


def test_demo_without_the_outbox_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tidings.cli.demo import example

    monkeypatch.setattr(example, "EXAMPLE_NEEDS", ("sqlalchemy", "no_such_module_for_tidings"))
    assert demo(None, duration=1, rate=1, seed=1) == 1
    err = capsys.readouterr().err
    assert "no_such_module_for_tidings" in err and "tidings[outbox]" in err
