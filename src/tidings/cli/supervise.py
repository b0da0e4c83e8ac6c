"""`tidings run APP --workers N`: check the options, then hand over to the supervisor."""

from __future__ import annotations

from tidings.app import App
from tidings.cli import render
from tidings.exceptions import ConfigurationError
from tidings.workers.settings import (
    HEARTBEAT_TIMEOUT,
    SupervisorSettings,
    WorkerCommand,
    format_size,
    parse_size,
    parse_workers,
)
from tidings.workers.supervisor import Supervisor


def supervise(
    app: App,
    app_spec: str,
    groups: list[str],
    *,
    workers: str | None,
    max_memory: str | None,
    heartbeat_timeout: float | None,
    reload: bool,
    broker: str | None,
    grace: float | None,
    log_level: str,
    log_format: str,
    http: str | None,
) -> int:
    """Run the supervisor for `app` until it is stopped; return the exit status.

    Bad option values print one error and return 2 before any worker starts.
    """
    import logging

    log = logging.getLogger("tidings.cli")
    if not app.groups():
        render.error(
            f"App {app.name!r} ({app_spec}) declares no consumers, so workers would have "
            "nothing to run; decorate a handler with @app.consumer(topic, group=...)."
        )
        return 2
    try:
        count = parse_workers(workers) if workers is not None else 1
        memory = parse_size(max_memory) if max_memory is not None else None
        address = None
        if http is not None:
            from tidings.instrumentation.http import parse_address

            address = parse_address(http)
        settings = SupervisorSettings(
            workers=count,
            grace=app.grace if grace is None else grace,
            heartbeat_timeout=HEARTBEAT_TIMEOUT if heartbeat_timeout is None else heartbeat_timeout,
            max_memory=memory,
        )
        starter = None
        if reload:
            from tidings.workers.reload import project_root, watcher

            starter = watcher(project_root(app_spec))
    except ConfigurationError as exc:
        render.error(str(exc))
        return 2
    command = WorkerCommand(
        app_spec=app_spec,
        groups=tuple(groups),
        broker=broker,
        grace=grace,
        log_level=log_level,
        log_format=log_format,
        http=address,
    )
    log.info(
        "running %s (%s) in %d worker process(es): groups %s on %s; heartbeat limit %.0f s%s",
        app.name,
        app_spec,
        count,
        ", ".join(groups or app.groups()) or "(none)",
        app.broker_url,
        settings.heartbeat_timeout,
        f", memory limit {format_size(memory)}" if memory is not None else "",
    )
    return Supervisor(command, settings, listeners=app.listeners, reload=starter).run()
