"""The `tidings run --workers N` supervisor: start N worker processes and keep them alive.

One thread, one `select` loop, no locks: signal handlers do nothing but let
`signal.set_wakeup_fd` write the signal's number to a self-pipe, which the loop reads
like any other pipe. The loop reads the workers' heartbeats (see `heartbeat.py`), reaps
every exited child (no zombies), and:

* restarts a worker that exited or was killed, after a backoff that doubles from 0.5 s up
  to 30 s while it keeps dying young (a worker that ran 30 s starts the count again);
* kills (SIGKILL) and restarts a worker whose poll loops have not turned for
  `heartbeat_timeout` seconds, or that stopped beating at all (stopped, wedged);
* with `max_memory`, drains a worker whose resident memory (``/proc/<pid>/statm``) passed
  the limit: SIGTERM, so its in-flight events finish and commit, then a new one starts;
* on the first SIGTERM or SIGINT sends SIGTERM to every worker and waits for them to
  drain within the grace period (plus `stop_margin` to commit and leave their groups),
  then kills what is left; a second SIGINT kills them all at once (exit status 130).
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from tidings.instrumentation.catalogue import WorkerRestarted
from tidings.instrumentation.dispatch import Listeners
from tidings.workers.settings import SupervisorSettings, WorkerCommand, format_size

log = logging.getLogger("tidings.workers")

TICK = 0.2
"""Seconds between two looks at heartbeats, memory and deadlines when nothing happens."""

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes(pid: int) -> int | None:
    """Return process `pid`'s resident set size from /proc (None if it cannot be read)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def describe_exit(code: int) -> str:
    """Say how a child ended: ``exited with status 1`` or ``was killed by SIGKILL``."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"


@dataclass(slots=True)
class Slot:
    """Worker number `index`: its current process (if any) and its restart history."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    pipe: int | None = None
    buffer: bytes = b""
    started: float = 0.0
    progress: float = 0.0
    """When (monotonic) its poll loops last turned, as its last beat said."""
    ready: bool = False
    kill_at: float | None = None
    """Set once it was asked to stop (or said it stops): kill it if still alive then."""
    reason: str | None = None
    """Why it is ending on purpose ("heartbeat", "memory", "reload"), else None."""
    restarts: int = 0
    failures: int = 0
    restart_at: float | None = None
    memory_at: float = 0.0


class Supervisor:
    """Keeps `settings.workers` copies of `command` running until told to stop."""

    def __init__(
        self,
        command: WorkerCommand,
        settings: SupervisorSettings,
        *,
        listeners: Listeners | None = None,
        reload: Callable[[int], None] | None = None,
    ) -> None:
        self.command = command
        self.settings = settings
        self.listeners = listeners or Listeners()
        self.slots = [Slot(i) for i in range(settings.workers)]
        self._reload = reload
        """Started with the write end of a pipe; writes a byte there when files change."""
        self._selector = selectors.DefaultSelector()
        self.stopping = False
        self.aborted = False
        self._stop_deadline: float | None = None

    # -- the loop -----------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until a stop signal; return the exit status (0, or 130 on abort)."""
        wake_r, wake_w = os.pipe()
        for fd in (wake_r, wake_w):
            os.set_blocking(fd, False)
        previous = {
            sig: signal.signal(sig, _noop)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)
        }
        old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        self._selector.register(wake_r, selectors.EVENT_READ, "signal")
        own = [wake_r, wake_w]
        try:
            if self._reload is not None:
                changes_r, changes_w = os.pipe()
                own += [changes_r, changes_w]
                os.set_blocking(changes_r, False)
                self._selector.register(changes_r, selectors.EVENT_READ, "reload")
                self._reload(changes_w)
            log.info(
                "supervising %d worker process(es); SIGTERM or Ctrl-C stops them gracefully",
                len(self.slots),
            )
            for slot in self.slots:
                self._spawn(slot)
            while self._alive() or not self.stopping:
                for key, _ in self._selector.select(TICK):
                    if key.data == "signal":
                        self._signals(_drain(key.fd))
                    elif key.data == "reload":
                        self._files_changed(_drain(key.fd))
                    else:
                        assert isinstance(key.data, Slot)
                        self._read_beats(key.data)
                self._reap()
                self._check(time.monotonic())
        finally:
            for slot in self.slots:  # only after an error: kill and reap what is left
                if slot.proc is not None:
                    slot.proc.kill()
                    slot.proc.wait()
                    self._forget(slot)
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._selector.close()
            for fd in own:
                os.close(fd)
        log.info("all workers stopped%s", " (aborted)" if self.aborted else "")
        return 130 if self.aborted else 0

    def _alive(self) -> bool:
        return any(slot.proc is not None for slot in self.slots)

    # -- signals ----------------------------------------------------------------------

    def _signals(self, data: bytes) -> None:
        for signum in data:
            if signum not in (signal.SIGTERM, signal.SIGINT):
                continue  # SIGCHLD: reaped right after
            name = signal.Signals(signum).name
            if not self.stopping:
                grace = self.settings.grace
                log.warning(
                    "%s: stopping %d worker(s) gracefully (up to %.0f s); press Ctrl-C again "
                    "to abort",
                    name,
                    sum(s.proc is not None for s in self.slots),
                    grace,
                )
                self.stopping = True
                for slot in self.slots:
                    slot.restart_at = None
                    if slot.proc is not None:
                        self._terminate(slot)
            elif signum == signal.SIGINT and not self.aborted:
                log.warning("aborting: killing every worker; unfinished work is redelivered")
                self.aborted = True
                for slot in self.slots:
                    if slot.proc is not None:
                        slot.proc.kill()

    def _files_changed(self, data: bytes) -> None:
        if self.stopping or not data:
            return
        log.warning("files changed: restarting the workers")
        for slot in self.slots:
            slot.failures = 0
            if slot.proc is None:
                slot.restart_at = time.monotonic()
            elif slot.reason is None:
                slot.reason = "reload"
                self._terminate(slot)

    # -- workers ----------------------------------------------------------------------

    def _spawn(self, slot: Slot) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        spec = {
            "app_spec": self.command.app_spec,
            "groups": list(self.command.groups),
            "broker": self.command.broker,
            "grace": self.command.grace,
            "log_level": self.command.log_level,
            "log_format": self.command.log_format,
            "http": self.command.http,
            "index": slot.index,
            "instance": f"{self.settings.instance}.w{slot.index}",
            "fd": write_end,
        }
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tidings.workers.worker", json.dumps(spec)],
                pass_fds=(write_end,),
                process_group=0,  # a terminal's Ctrl-C goes to the supervisor only
            )
        except OSError:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        now = time.monotonic()
        slot.proc, slot.pipe, slot.buffer = proc, read_end, b""
        slot.started = slot.progress = now
        slot.ready, slot.kill_at, slot.reason, slot.restart_at = False, None, None, None
        slot.memory_at = now + self.settings.memory_interval
        self._selector.register(read_end, selectors.EVENT_READ, slot)
        log.info("worker %d started (pid %d)", slot.index, proc.pid)

    def _terminate(self, slot: Slot) -> None:
        """Ask the worker to drain and stop (SIGTERM); kill it if it outlives the grace."""
        assert slot.proc is not None
        if slot.kill_at is None:
            slot.kill_at = time.monotonic() + self.settings.grace + self.settings.stop_margin
        try:
            slot.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    def _read_beats(self, slot: Slot) -> None:
        assert slot.pipe is not None
        try:
            data = os.read(slot.pipe, 65536)
        except BlockingIOError:
            return
        if not data:  # the worker closed its end: it is exiting; _reap sees it go
            self._selector.unregister(slot.pipe)
            os.close(slot.pipe)
            slot.pipe = None
            return
        *lines, slot.buffer = (slot.buffer + data).split(b"\n")
        now = time.monotonic()
        for line in lines:
            parts = line.split()
            if parts[:1] == [b"beat"] and len(parts) == 3:
                slot.progress = now - float(parts[1])
                slot.ready = parts[2] == b"1"
            elif parts == [b"stopping"] and slot.kill_at is None:
                slot.kill_at = now + self.settings.grace + self.settings.stop_margin

    def _reap(self) -> None:
        for slot in self.slots:
            if slot.proc is None:
                continue
            code = slot.proc.poll()
            if code is None:
                continue
            pid, reason, lived = slot.proc.pid, slot.reason, time.monotonic() - slot.started
            self._forget(slot)
            if self.stopping:
                log.info("worker %d (pid %d) stopped: %s", slot.index, pid, describe_exit(code))
                continue
            self._schedule_restart(slot, pid, code, reason or "exited", lived)

    def _forget(self, slot: Slot) -> None:
        if slot.pipe is not None:
            self._selector.unregister(slot.pipe)
            os.close(slot.pipe)
        slot.proc, slot.pipe, slot.ready = None, None, False

    def _schedule_restart(self, slot: Slot, pid: int, code: int, reason: str, lived: float) -> None:
        if lived >= self.settings.stable_after:
            slot.failures = 0
        if reason == "reload":
            delay = 0.0
        else:
            slot.failures += 1
            delay = self.settings.backoff(slot.failures)
        slot.restarts += 1
        slot.restart_at = time.monotonic() + delay
        why = {
            "exited": describe_exit(code),
            "heartbeat": "was killed: its poll loop was stuck",
            "memory": "drained after passing --max-memory",
            "reload": "stopped to reload changed files",
        }[reason]
        level = logging.INFO if reason == "reload" else logging.WARNING
        log.log(
            level,
            "worker %d (pid %d) %s; restarting it in %.1f s (restart %d of worker %d)",
            slot.index,
            pid,
            why,
            delay,
            slot.restarts,
            slot.index,
        )
        if self.listeners.active:
            self.listeners.emit(
                WorkerRestarted(slot.index, pid, code, reason, slot.restarts, delay)
            )

    def _check(self, now: float) -> None:
        limit = self.settings.heartbeat_timeout
        for slot in self.slots:
            proc = slot.proc
            if proc is None:
                if slot.restart_at is not None and now >= slot.restart_at and not self.stopping:
                    self._spawn(slot)
                continue
            if slot.kill_at is not None:
                if now >= slot.kill_at:
                    log.warning(
                        "worker %d (pid %d) did not stop within the grace period (%.0f s) "
                        "plus %.0f s to leave its groups; killing it",
                        slot.index,
                        proc.pid,
                        self.settings.grace,
                        self.settings.stop_margin,
                    )
                    proc.kill()
                    slot.kill_at = float("inf")
                continue
            if now - slot.progress > limit:
                log.error(
                    "worker %d (pid %d): its poll loop has not turned for %.1f s (limit "
                    "%.0f s, --heartbeat-timeout); killing it",
                    slot.index,
                    proc.pid,
                    now - slot.progress,
                    limit,
                )
                slot.reason = "heartbeat"
                slot.kill_at = float("inf")
                proc.kill()
                continue
            memory = self.settings.max_memory
            if memory is not None and now >= slot.memory_at:
                slot.memory_at = now + self.settings.memory_interval
                rss = resident_bytes(proc.pid)
                if rss is not None and rss > memory:
                    log.warning(
                        "worker %d (pid %d) uses %s, over --max-memory %s: draining it (its "
                        "in-flight events finish and commit), then starting a new one",
                        slot.index,
                        proc.pid,
                        format_size(rss),
                        format_size(memory),
                    )
                    slot.reason = "memory"
                    self._terminate(slot)


def _noop(signum: int, frame: object) -> None:
    """Signal handler: nothing; `set_wakeup_fd` already told the loop."""


def _drain(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk
