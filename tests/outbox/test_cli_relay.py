"""`tidings relay APP`: relays what the app's outbox holds and prints the counts."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sqlalchemy.orm import Session

from tests.outbox.conftest import Db
from tests.outbox.helpers import broker_for, proc_env, read_topic, seqs, tidings
from tests.outbox.outbox_app import Booked
from tidings import App


def test_relay_once_relays_and_prints_counts(sync_db: Db, tmp_path: Path, topic_name: str) -> None:
    url = broker_for("embedded", tmp_path)
    app = App("outbox-proc", broker=url)
    topic = app.topic(topic_name, partitions=3)
    outbox = app.outbox(sync_db.engine)
    outbox.create_tables()
    try:
        with Session(sync_db.engine) as s, s.begin():
            for i in range(3):
                outbox.publish(s, topic, Booked(key="a", seq=i), key="a")
        assert outbox.statistics().backlog == 3
        done = subprocess.run(
            tidings("relay", "tests.outbox.outbox_app:app", "--once"),
            env=proc_env(url, sync_db.url, topic_name),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "relayed 3 " in done.stdout and "backlog 0, oldest -" in done.stdout, done.stdout
        assert seqs(read_topic(app.backend, topic_name, 3)) == [0, 1, 2]
    finally:
        app.close()


def test_relay_of_an_app_without_outbox_says_so(tmp_path: Path) -> None:
    (tmp_path / "plain_app.py").write_text("from tidings import App\napp = App('plain')\n")
    done = subprocess.run(
        tidings("relay", "plain_app:app"),
        cwd=tmp_path,
        env={**proc_env("memory://x", "sqlite://", "t"), "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "declares no outbox" in done.stderr and "app.outbox(engine)" in done.stderr
