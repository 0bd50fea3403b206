"""Operator commands against a live production deployment: `graphyard serve` + `graphyard worker` on
PostgreSQL and Redis (a fresh database and key prefix per test, removed afterwards)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from langgraph_sdk.client import LangGraphClient

from tests.api.admin_cli import graphyard
from tests.api.support import RUN_TERMINAL, eventually, wait_for_file
from tests.engine.test_distributed import WORKER_STARTUP, Cluster, clients, cluster, sdk

__all__ = ["clients", "cluster"]  # fixtures used by name below

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(300)]


async def test_operator_commands_on_postgres(
    cluster: Cluster, clients: list[LangGraphClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`queue` and `runs list` show which worker holds a run; `runs cancel` stops it on that worker at
    once (through Redis); a live lease refuses requeue; after the worker is killed and its lease expired,
    `runs requeue` hands the run to a new worker, which finishes it."""
    for key, val in cluster.env().items():
        monkeypatch.setenv(key, val)  # the CLI reads DATABASE_URI and REDIS_URI as an operator's shell would
    api = await cluster.api()
    first = cluster.worker()
    client = sdk(api, clients)
    gate = tmp_path / "gate"
    thread = await client.threads.create()
    doomed = await client.runs.create(thread["thread_id"], "gate", input={"gate": str(gate)})
    await wait_for_file(Path(f"{gate}.entered"), timeout=WORKER_STARTUP)

    queue = (await graphyard("queue", "--json")).json()
    assert queue["running"] == 1 and queue["expired_leases"] == 0
    (owner,) = queue["running_by_worker"]
    listed = (await graphyard("runs", "list", "--status", "running", "--json")).json()
    assert [(r["run_id"], r["lease_owner"]) for r in listed] == [(doomed["run_id"], owner)]
    refused = await graphyard("runs", "requeue", doomed["run_id"])
    assert refused.code == 1 and "lease is live" in refused.stderr, refused

    cancelled = await graphyard("runs", "cancel", doomed["run_id"])
    assert cancelled.code == 0, cancelled.stderr
    done = await eventually(
        lambda: client.runs.get(thread["thread_id"], doomed["run_id"]),
        lambda r: r["status"] in RUN_TERMINAL,
        timeout=30,
        what="the worker to stop the cancelled run",
    )
    assert done["status"] == "interrupted", cluster.logs()

    second_gate = tmp_path / "second-gate"
    other = await client.threads.create()
    stranded = await client.runs.create(other["thread_id"], "gate", input={"gate": str(second_gate)})
    await wait_for_file(Path(f"{second_gate}.entered"))
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    busy = await graphyard("threads", "unlock", other["thread_id"])
    assert busy.code == 1 and stranded["run_id"] in busy.stderr

    async def expired() -> int:
        count: int = (await graphyard("queue", "--json")).json()["expired_leases"]
        return count

    await eventually(expired, lambda n: n == 1, timeout=30, interval=0.5, what="the killed worker's lease to expire")
    requeued = (await graphyard("runs", "requeue", stranded["run_id"], "--json")).json()
    assert requeued["status"] == "pending" and requeued["lease_owner"] is None
    second_gate.touch()
    cluster.worker()
    finished = await eventually(
        lambda: client.runs.get(other["thread_id"], stranded["run_id"]),
        lambda r: r["status"] in RUN_TERMINAL,
        timeout=60,
        what="the requeued run to finish on the new worker",
    )
    assert finished["status"] == "success", cluster.logs()
    assert (await client.threads.get(other["thread_id"]))["status"] == "idle"
