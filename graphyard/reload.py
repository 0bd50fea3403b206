"""`graphyard dev` reloading: a supervisor watches the project's files (watchfiles, as uvicorn does) and
restarts the server process on a change. The old process hands its running runs back to the queue as
it stops; the new one resumes them from their last checkpoint."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

import watchfiles

# Set in the server process a supervisor starts: the supervisor's pid, so the server stops with it.
SUPERVISOR_ENV = "GRAPHYARD_RELOAD_SUPERVISOR"


# With `ui`, the component sources too: the restarted server rebuilds the bundles.
UI_SUFFIXES = (".ts", ".tsx", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs", ".css")


class _ProjectFilter(watchfiles.DefaultFilter):
    """Python files, langgraph.json and .env files (as uvicorn reloads on *.py), outside caches, VCS
    and editor files. Logs, databases and other output written into the project never trigger one."""

    def __init__(self, config: Path, *, ui: bool = False) -> None:
        super().__init__(ignore_dirs=(*self.ignore_dirs, ".graphyard"))
        self._config = str(config)
        self._suffixes = (".py", *UI_SUFFIXES) if ui else (".py",)

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        name = Path(path).name
        wanted = path.endswith(self._suffixes) or path == self._config or name == ".env" or name.startswith(".env.")
        return wanted and super().__call__(change, path)


def supervised_by_parent() -> bool:
    """Whether this process is a server started by a reloading supervisor (its parent)."""
    return os.environ.get(SUPERVISOR_ENV) == str(os.getppid())


def supervise(argv: list[str], watch: list[Path], config: Path, *, ui: bool = False) -> int:
    """Run `graphyard ARGV --no-reload` and restart it whenever a watched file changes (`ui`: also the
    generative UI's sources); SIGINT or SIGTERM stop it (it drains as on any stop) and end the supervisor."""
    command = shlex.join([sys.executable, "-m", "graphyard", *argv, "--no-reload"])
    os.environ[SUPERVISOR_ENV] = str(os.getpid())
    # A reload should not wait for runs to finish: they are handed back at once and resume in the new
    # process. An explicit GRAPHYARD_DRAIN_SECONDS still wins.
    os.environ.setdefault("GRAPHYARD_DRAIN_SECONDS", "0")

    def announce(changes: set[tuple[watchfiles.Change, str]]) -> None:
        names = sorted({Path(path).name for _, path in changes})
        print(f"graphyard: reloading after changes to {', '.join(names[:5])}", file=sys.stderr, flush=True)

    existing = [p for p in watch if p.exists()]
    watchfiles.run_process(
        *existing,
        target=command,
        target_type="command",
        callback=announce,
        watch_filter=_ProjectFilter(config, ui=ui),
        debounce=400,
        sigint_timeout=15,
    )
    return 0


def stop_with_supervisor() -> None:
    """In a server a supervisor started: stop (SIGTERM, so it drains) when the supervisor is gone,
    e.g. killed with SIGKILL, instead of serving on as an orphan nobody will restart or stop."""
    raw = os.environ.get(SUPERVISOR_ENV)
    if not raw:
        return
    supervisor = int(raw)

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="graphyard-supervisor-watch", daemon=True).start()
