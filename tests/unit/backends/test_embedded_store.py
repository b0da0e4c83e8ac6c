"""The embedded store's file: opening, options, headers encoding, full and unwritable disks."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tidings.backends.embedded import EmbeddedBackend
from tidings.backends.embedded.codec import decode_headers, encode_headers
from tidings.exceptions import ConfigurationError, StorageError, StorageFull
from tidings.records import OutgoingRecord, TopicSpec
from tidings.testing import FakeClock


def open_at(path: Path, **opts: object) -> EmbeddedBackend:
    return EmbeddedBackend(path, url=f"embedded://{path}", **opts)  # type: ignore[arg-type]


def test_creates_the_directory_and_one_database_file(tmp_path: Path) -> None:
    b = open_at(tmp_path / "a" / "b")
    assert b.path == tmp_path / "a" / "b" / "tidings.db" and b.path.exists()
    b.close()


def test_reopening_keeps_topics_records_and_offsets(tmp_path: Path) -> None:
    b = open_at(tmp_path)
    b.ensure_topics([TopicSpec("t", partitions=2, retention=timedelta(days=1))])
    b.produce([OutgoingRecord("t", b"k", b"v")])
    b.close()
    again = open_at(tmp_path)
    (info,) = again.topics()
    assert (info.partitions, info.retention, sum(info.end_offsets)) == (2, 86400, 1)
    again.close()


def test_a_directory_that_cannot_be_created_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match=str(blocker / "data")) as exc:
        open_at(blocker / "data")
    assert "writable path" in str(exc.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through directory permissions")
def test_a_read_only_directory_is_a_storage_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(StorageError, match="not writable"):
            open_at(tmp_path)
    finally:
        tmp_path.chmod(0o700)


def test_a_file_that_is_not_a_store_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "tidings.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="not a usable tidings store"):
        open_at(tmp_path)


def test_synchronous_full_is_an_option_and_others_are_refused(tmp_path: Path) -> None:
    b = open_at(tmp_path, synchronous="full")
    with sqlite3.connect(b.path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    b.close()
    with pytest.raises(ConfigurationError, match="NORMAL"):
        open_at(tmp_path, synchronous="OFF")


def test_heartbeat_must_be_shorter_than_the_session(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="heartbeat_interval"):
        open_at(tmp_path, session_timeout=1.0, heartbeat_interval=2.0)


def test_headers_encoding_round_trips_and_refuses_unknown_formats() -> None:
    headers = (("a", b""), ("ünï", bytes(range(256))), ("a", b"2"))
    assert decode_headers(encode_headers(headers)) == headers
    assert encode_headers(()) is None and decode_headers(None) == ()
    with pytest.raises(StorageError, match="upgrade"):
        decode_headers(b"\x09junk")


def test_a_full_store_refuses_writes_then_recovers_when_retention_frees_space(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    b = open_at(tmp_path, max_page_count=64, clock=clock)
    b.ensure_topics([TopicSpec("t", retention=timedelta(hours=1)), TopicSpec("later")])
    b.produce([OutgoingRecord("later", None, b"due in a minute", deliver_at=clock.time() + 60)])
    value = os.urandom(2000)
    stored = 0
    with pytest.raises(StorageFull) as exc:
        for _ in range(10_000):
            b.produce([OutgoingRecord("t", None, value)] * 5)
            stored += 5
    assert str(b.path) in str(exc.value) and "free disk space or raise the limit" in str(exc.value)
    with pytest.raises(StorageFull):  # fill the last gaps, so not even a small record fits
        for _ in range(10_000):
            b.produce([OutgoingRecord("t", None, value[:20])])
            stored += 1
    # The failed batch left nothing behind and everything acknowledged is intact.
    assert {t.name: t.end_offsets for t in b.topics()}["t"] == (stored,)
    with sqlite3.connect(b.path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    # Readers keep reading; the due delayed record waits for space instead of failing them.
    clock.advance(120)
    reader = b.open_consumer(None, ["t", "later"], start="earliest", listener=None)
    assert len(reader.fetch(stored + 10, 0.05)) == stored
    assert {t.name: t.delayed_pending for t in b.topics()}["later"] == 1

    clock.advance(7200)
    while b.enforce_retention():
        pass
    meta = b.produce([OutgoingRecord("t", None, value)])  # works again, no restart
    assert meta[0].offset == stored
    info = {t.name: t for t in b.topics()}
    assert info["t"].start_offsets == (stored,)
    assert [r.value for r in reader.fetch(10, 0)][-2:] == [b"due in a minute", value]
    reader.close()
    b.close()


def test_processes_racing_to_create_the_store_and_a_topic_agree(tmp_path: Path) -> None:
    # Separate backends share no Python lock: they race like processes, through SQLite.
    barrier = threading.Barrier(4)
    seen: list[int] = []

    def start(partitions: int | None) -> None:
        barrier.wait()
        b = open_at(tmp_path / "data")
        b.ensure_topics([TopicSpec("t", partitions=partitions)])
        seen.append(b.produce([OutgoingRecord("t", b"k", b"v")])[0].offset)
        seen.append(-next(t.partitions for t in b.topics() if t.name == "t"))
        b.close()

    # Declarations that state no partition count accept whatever exists.
    threads = [threading.Thread(target=start, args=(None,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    offsets, counts = sorted(x for x in seen if x >= 0), {x for x in seen if x < 0}
    assert len(counts) == 1  # every racer sees the winner's partition count
    assert offsets == [0, 1, 2, 3]  # same key, same partition: one log, no lost append


def test_processes_racing_with_conflicting_declarations_all_but_one_refused(
    tmp_path: Path,
) -> None:
    barrier = threading.Barrier(4)
    refused: list[str] = []
    created: list[int] = []

    def start(partitions: int) -> None:
        barrier.wait()
        b = open_at(tmp_path / "data")
        try:
            b.ensure_topics([TopicSpec("t", partitions=partitions)])
            created.append(partitions)
        except ConfigurationError as exc:
            refused.append(str(exc))
        finally:
            b.close()

    threads = [threading.Thread(target=start, args=(n,)) for n in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(created) == 1 and len(refused) == 3
    assert all(f"has partitions={created[0]}" in message for message in refused)


def test_bulk_writes_are_checkpointed_off_the_writer_thread(tmp_path: Path) -> None:
    others = set(threading.enumerate())  # earlier tests' stores may still have theirs
    b = open_at(tmp_path)
    b.ensure_topics([TopicSpec("t", partitions=2)])
    value = b"x" * 1000
    for _ in range(3):  # ~3 MB: below the writers' own automatic checkpoint (8 MiB)
        b.produce([OutgoingRecord("t", str(i).encode(), value) for i in range(1000)])
    checkpointer = b.store.checkpointer
    deadline = time.monotonic() + 10
    # The records are copied from the WAL into the database file itself.
    while (
        checkpointer.rounds == 0 or b.path.stat().st_size <= 2_000_000
    ) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert checkpointer.rounds >= 1
    assert b.path.stat().st_size > 2_000_000
    threads = [
        t
        for t in threading.enumerate()
        if t.name == "tidings-embedded-checkpoint" and t not in others
    ]
    assert threads
    b.close()
    assert not any(t.is_alive() for t in threads)


def test_headers_memo_encodes_like_a_fresh_encoding() -> None:
    memo: dict[tuple[str, bytes], bytes] = {}
    first = (("ce_type", b"A"), ("ce_id", b"1"))
    second = (("ce_type", b"A"), ("ce_id", b"2"), ("x", b""))
    assert encode_headers(first, memo) == encode_headers(first)
    assert encode_headers(second, memo) == encode_headers(second)
    assert decode_headers(encode_headers(second, memo)) == second


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with threads running
def test_a_forked_child_checkpoints_with_a_thread_of_its_own(tmp_path: Path) -> None:
    b = open_at(tmp_path)
    b.ensure_topics([TopicSpec("t")])
    value = b"x" * 1000
    b.produce([OutgoingRecord("t", None, value) for _ in range(1500)])  # parent's thread runs
    assert any(t.name == "tidings-embedded-checkpoint" for t in threading.enumerate())
    # Fork once that thread is back to waiting: a thread inside SQLite at the fork would
    # leave SQLite's own (C) mutexes held in the child, which no Python code can undo.
    deadline = time.monotonic() + 10
    while b.store.checkpointer.rounds == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    pid = os.fork()
    if pid == 0:  # the child: its first large write must not hang on the parent's lock
        code = 1
        try:
            before = b.store.checkpointer.rounds
            b.produce([OutgoingRecord("t", None, value) for _ in range(1500)])
            deadline = time.monotonic() + 10
            while b.store.checkpointer.rounds == before and time.monotonic() < deadline:
                time.sleep(0.01)
            code = 0 if b.store.checkpointer.rounds > before else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30
    done, status = os.waitpid(pid, os.WNOHANG)
    while not done and time.monotonic() < deadline:
        time.sleep(0.05)
        done, status = os.waitpid(pid, os.WNOHANG)
    if not done:  # hung: fail instead of leaving a stuck child behind
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert done and os.waitstatus_to_exitcode(status) == 0
    b.close()


def test_a_trickle_of_small_writes_keeps_the_wal_small(tmp_path: Path) -> None:
    # A continuous writer of small events (and commits, heartbeats): each transaction
    # appends whole pages to the WAL, so counting only event bytes let it reach the 8 MiB
    # backstop, uncheckpointed, for 300 KB of events.
    b = open_at(tmp_path)
    b.ensure_topics([TopicSpec("t", partitions=3)])
    wal = tmp_path / "tidings.db-wal"
    largest = 0
    for i in range(3000):
        b.produce([OutgoingRecord("t", str(i).encode(), b"x" * 100)])
        time.sleep(0.0005)  # a trickle, not a burst: the checkpoint thread gets to run
        if i % 50 == 0:
            largest = max(largest, wal.stat().st_size)
    assert b.store.checkpointer.rounds >= 1
    assert largest < 6 * 1024 * 1024, f"the WAL grew to {largest} bytes"  # before: 8.2 MB
    b.close()


def _foreign_store(path: Path, version: int, records_columns: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path / "tidings.db") as raw:
        raw.execute(f"CREATE TABLE records ({records_columns})")
        raw.execute("CREATE TABLE topics (name TEXT PRIMARY KEY, partitions INTEGER)")
        raw.execute(f"PRAGMA user_version = {version}")
    raw.close()


@pytest.mark.parametrize("version", [0, 1])
def test_a_store_with_another_table_layout_is_refused_with_what_it_is_and_what_to_do(
    tmp_path: Path, version: int
) -> None:
    _foreign_store(tmp_path, version, "pos INTEGER PRIMARY KEY, ts REAL, key BLOB, value BLOB")
    with pytest.raises(StorageError) as exc:
        open_at(tmp_path)
    text = str(exc.value)
    assert str(tmp_path / "tidings.db") in text
    assert "records(pos, ts, key, value)" in text  # what the store has
    assert "records(pos, ts, key, value, headers)" in text  # what this tidings expects
    assert "another data directory" in text
    with sqlite3.connect(tmp_path / "tidings.db") as raw:  # and it was left as it was
        assert raw.execute("PRAGMA user_version").fetchone() == (version,)
    raw.close()


def test_a_store_with_a_negative_schema_version_is_refused_not_overwritten(
    tmp_path: Path,
) -> None:
    _foreign_store(tmp_path, -3, "pos INTEGER PRIMARY KEY, ts REAL, key BLOB, value BLOB")
    with pytest.raises(StorageError, match="schema version -3") as exc:
        open_at(tmp_path)
    assert "expects schema version 1" in str(exc.value)
    with sqlite3.connect(tmp_path / "tidings.db") as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (-3,)
    raw.close()


def test_a_store_of_this_version_opens_again_and_an_empty_file_becomes_a_store(
    tmp_path: Path,
) -> None:
    open_at(tmp_path / "a").close()
    open_at(tmp_path / "a").close()
    (tmp_path / "b").mkdir()
    sqlite3.connect(tmp_path / "b" / "tidings.db").close()  # an empty SQLite file
    open_at(tmp_path / "b").close()


def test_a_read_only_backend_reads_a_live_store_and_refuses_to_write(tmp_path: Path) -> None:
    writer = open_at(tmp_path)
    writer.ensure_topics([TopicSpec("t")])
    writer.produce([OutgoingRecord("t", b"k", b"v")])
    reader = open_at(tmp_path, read_only=True)
    try:
        writer.produce([OutgoingRecord("t", b"k", b"w")])  # seen: the WAL is shared
        assert [t.end_offsets for t in reader.topics()] == [(2,)]
        with pytest.raises(StorageError, match="Cannot write"):
            reader.produce([OutgoingRecord("t", b"k", b"x")])
    finally:
        reader.close()
        writer.close()
    with pytest.raises(StorageError, match="No tidings store at"):
        open_at(tmp_path / "missing", read_only=True)
    assert not (tmp_path / "missing").exists()
