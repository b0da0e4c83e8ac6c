"""`tidings run --reload`: restart the workers when the app's Python files change.

The only module that imports watchfiles (the optional extra ``tidings[reload]``). It
watches, recursively, the directory the app's top-level module or package is imported
from (the project root, usually), for ``*.py`` changes only (watchfiles' PythonFilter,
which also skips ``.git``, ``.venv``, ``__pycache__`` and the like), so the embedded
store's own writes never trigger a reload.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from tidings.exceptions import ConfigurationError

log = logging.getLogger("tidings.workers")


def project_root(app_spec: str) -> Path:
    """Return the directory the module of `app_spec` (``module:attr``) is imported from.

    Call it after the app was loaded (its module is in ``sys.modules``).
    """
    module = sys.modules.get(app_spec.partition(":")[0])
    file = getattr(module, "__file__", None)
    if file is None:
        return Path.cwd()
    path = Path(file).resolve().parent
    while (path / "__init__.py").exists() and path.parent != path:
        path = path.parent
    return path


def watcher(root: Path) -> Callable[[int], None]:
    """Return a starter: given a pipe's write end, watch `root` and write a byte per change.

    Raises:
        ConfigurationError: watchfiles is not installed.
    """
    try:
        import watchfiles
    except ModuleNotFoundError:
        raise ConfigurationError(
            "--reload needs the watchfiles package, which is not installed: "
            "pip install 'tidings[reload]'"
        ) from None

    def start(fd: int) -> None:
        stop = threading.Event()

        def run() -> None:
            changes = watchfiles.watch(
                root, watch_filter=watchfiles.PythonFilter(), stop_event=stop
            )
            for batch in changes:
                names = sorted({os.path.relpath(path, root) for _, path in batch})
                log.info("changed: %s", ", ".join(names[:5]) + (" ..." if len(names) > 5 else ""))
                try:
                    os.write(fd, b"r")
                except OSError:
                    return  # the supervisor has stopped

        threading.Thread(target=run, name="tidings-reload", daemon=True).start()
        log.info("watching %s for changed *.py files (--reload)", root)

    return start
