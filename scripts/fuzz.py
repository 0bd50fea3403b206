"""Property-based fuzzing of every route: schemathesis, driven by graphyard's own /openapi.json, against a
real server, for a bounded time. Fails on any response >= 500, any request that hangs, and any response
that does not conform to the document (status code, content type, body schema, headers).

    scripts/fuzz [sqlite|postgres]...        (default: both)

sqlite runs `graphyard dev`; postgres runs `graphyard serve` (no graphs) plus a separate `graphyard
worker` on a throwaway database and Redis key prefix, removed at the end. Environment: FUZZ_SECONDS
(schemathesis's time budget per backend, default 90), FUZZ_SEED (replay a run; with CI=true a fixed
seed is the default, elsewhere each run draws a new one), KEEP_WORK=1 (keep the
folder with the server logs and schemathesis's NDJSON report). Prints, per backend, the request count
and the responses by status.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import backends

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
CONFIG = ROOT / "tests" / "graphs" / "langgraph.json"
# Generous: scripts/test starts both fuzz stages and four conformance servers side by side on 2 cores.
STARTUP_SECONDS = 120.0
FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "90"))
# A request that takes longer is a hang (the runs that wait are on graphs that finish in milliseconds).
REQUEST_TIMEOUT = 20
# schemathesis gets its budget plus this much to load the document and finish; past it the run is a hang.
GRACE_SECONDS = 120
# Everything the document promises about a response; negative_data_rejection and
# positive_data_acceptance are left out: ids the fuzzer makes up are 404s, and lenient reads of
# query flags (`?wait=maybe` is false) follow the reference.
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)
CI_SEED = "20261201"
QUIET = {"PYTHONDONTWRITEBYTECODE": "1", "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Processes:
    started: list[tuple[str, subprocess.Popen[bytes], Path]]

    def start(self, name: str, args: list[str], work: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = work / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                args, cwd=work, env={**os.environ, **QUIET, **env}, stdout=out, stderr=subprocess.STDOUT
            )
        self.started.append((name, process, log))
        return process

    def stop(self) -> None:
        for _, process, _ in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process, _ in self.started:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                print(f"scripts/fuzz: {name} did not stop within 15 s of SIGTERM; killing it", file=sys.stderr)
                process.kill()
                process.wait(5)

    def tails(self) -> str:
        parts = []
        for name, _, log in self.started:
            lines = log.read_text(errors="replace").splitlines()[-40:]
            parts.append(f"--- last lines of {name}.log ---\n" + "\n".join(lines))
        return "\n".join(parts)


@contextlib.contextmanager
def server(backend: str, work: Path) -> Iterator[tuple[str, Processes]]:
    """A graphyard on `backend`, answering /ok, at the yielded URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs = Processes([])
    db_name = prefix = ""
    try:
        listen = ["--host", "127.0.0.1", "--port", str(port)]
        if backend == "sqlite":
            database = ["--database", str(work / "graphyard.sqlite")]
            command = [str(BIN / "python"), "-m", "graphyard", "dev", "--config", str(CONFIG), "--no-browser"]
            procs.start("server", [*command, "--no-reload", *listen, *database], work, {})
        else:
            suffix = work.name.lower().replace("-", "_").replace(".", "_")
            db_name, prefix = f"graphyard_fuzz_{suffix}", f"graphyard-fuzz-{suffix}:"
            backends.create_db(db_name)
            env = {
                "DATABASE_URI": backends.database_uri(db_name),
                "REDIS_URI": backends.REDIS_URL,
                "GRAPHYARD_REDIS_PREFIX": prefix,
            }
            command = [str(BIN / "python"), "-m", "graphyard"]
            subprocess.run([*command, "migrate"], env={**os.environ, **env}, check=True, capture_output=True)
            serve = [*command, "serve", "--config", str(CONFIG), *listen]
            procs.start("server", serve, work, {**env, "N_JOBS_PER_WORKER": "0"})
            procs.start("worker", [*command, "worker", "--config", str(CONFIG)], work, env)
        wait_ready(url, procs)
        yield url, procs
    finally:
        procs.stop()
        if db_name:
            backends.drop_db(db_name)
        if prefix:
            backends.redis_clean(prefix)


def wait_ready(url: str, procs: Processes) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        for name, process, _ in procs.started:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}\n{procs.tails()}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/ok", timeout=1) as response:
                if response.status == 200:
                    warm_up(url)
                    return
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer {url}/ok within {STARTUP_SECONDS} s\n{procs.tails()}")


# Routes whose first call imports an SDK (graphyard imports the MCP and A2A SDKs lazily, see api/__init__.py).
LAZY_ROUTES = [("POST", "/mcp"), ("GET", "/.well-known/agent-card.json")]


def warm_up(url: str) -> None:
    """Call each lazily imported route once before fuzzing: on a busy machine (scripts/test runs the fuzz
    beside the conformance runs) that first import can take longer than REQUEST_TIMEOUT, which is meant
    to catch requests that hang, not a one-time import. Any answer will do; the fuzz judges the answers."""
    for method, path in LAZY_ROUTES:
        request = urllib.request.Request(f"{url}{path}", method=method, data=b"" if method == "POST" else None)
        with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=STARTUP_SECONDS):
            pass


def fuzz_seed() -> str | None:
    """FUZZ_SEED if set; in CI a fixed seed, so a red CI means a change broke something, not that
    the fuzzer wandered somewhere new (explore locally, where each run draws a fresh seed)."""
    if os.environ.get("FUZZ_SEED"):
        return os.environ["FUZZ_SEED"]
    return CI_SEED if os.environ.get("CI") == "true" else None


def schemathesis(url: str, work: Path) -> tuple[int, bool]:
    """Run schemathesis; its exit status, and whether it had to be killed (a hang)."""
    command = [
        str(BIN / "st"),
        "run",
        f"{url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-time",
        str(FUZZ_SECONDS),
        "--request-timeout",
        str(REQUEST_TIMEOUT),
        # One worker: hypothesis's schema compilation is not thread-safe on CPython 3.11.
        "--workers",
        "1",
        "--no-color",
        "--report",
        "ndjson",
        "--report-dir",
        str(work / "report"),
    ]
    seed = fuzz_seed()
    if seed is not None:
        command += ["--seed", seed]
    try:
        return subprocess.run(command, cwd=work, timeout=FUZZ_SECONDS + GRACE_SECONDS).returncode, False
    except subprocess.TimeoutExpired:
        return 1, True


@dataclass
class Tally:
    requests: int
    statuses: Counter[int]
    server_errors: list[str]


def tally(work: Path) -> Tally:
    """Requests sent and responses by status, from schemathesis's NDJSON report."""
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    for report in (work / "report").glob("*.ndjson"):
        for line in report.read_text().splitlines():
            event = json.loads(line)
            finished = event.get("ScenarioFinished") if isinstance(event, dict) else None
            if not finished:
                continue
            for interaction in (finished["recorder"].get("interactions") or {}).values():
                response = interaction.get("response")
                if response is None:
                    statuses[0] += 1  # no answer: a timeout or a dropped connection
                    continue
                status = int(response["status_code"])
                statuses[status] += 1
                if status >= 500:
                    request = interaction["request"]
                    content = response.get("content") or {}
                    raw = base64.b64decode(content.get("$base64", "")) if "$base64" in content else b""
                    errors.append(f"{request['method']} {request['uri']} -> {status} {raw[:200]!r}")
    return Tally(sum(statuses.values()), statuses, errors)


def fuzz(backend: str) -> bool:
    work = Path(tempfile.mkdtemp(prefix=f"graphyard-fuzz-{backend}-"))
    ok = False
    try:
        with server(backend, work) as (url, procs):
            print(f"scripts/fuzz: {backend}: schemathesis on {url} for {FUZZ_SECONDS} s", file=sys.stderr)
            status, hung = schemathesis(url, work)
            counts = tally(work)
            alive = all(process.poll() is None for _, process, _ in procs.started)
            by_status = ", ".join(f"{code or 'none'}: {n}" for code, n in sorted(counts.statuses.items()))
            fives = sum(n for code, n in counts.statuses.items() if code >= 500)
            print(
                f"scripts/fuzz: {backend}: {counts.requests} requests, {fives} responses >= 500, "
                f"{counts.statuses.get(0, 0)} unanswered ({by_status})",
                file=sys.stderr,
            )
            for line in counts.server_errors[:20]:
                print(f"scripts/fuzz: {backend}: {line}", file=sys.stderr)
            if hung:
                print(f"scripts/fuzz: {backend}: schemathesis did not finish in time: a request hung", file=sys.stderr)
            if not alive:
                print(f"scripts/fuzz: {backend}: the server died during the run", file=sys.stderr)
            ok = status == 0 and not hung and alive and fives == 0 and counts.requests > 0
            if not ok:
                print(procs.tails(), file=sys.stderr)
    finally:
        if os.environ.get("KEEP_WORK"):
            print(f"scripts/fuzz: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return ok


def main(argv: list[str]) -> int:
    chosen = argv or ["sqlite", "postgres"]
    unknown = [b for b in chosen if b not in ("sqlite", "postgres")]
    if unknown:
        print(__doc__, file=sys.stderr)
        return 2
    failed = [backend for backend in chosen if not fuzz(backend)]
    if failed:
        print(f"scripts/fuzz: failed on {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
