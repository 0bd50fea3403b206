"""A cancel asked while Redis is away still stops the run: the request is on the run's row, and the worker
holding the run finds it at its next lease heartbeat and delivers it in-process, with no broker."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from tests.api.support import eventually
from tests.faults import test_faults
from tests.faults.test_faults import Cluster

cluster = test_faults.cluster  # the fault suite's fixtures: private PostgreSQL and Redis, plain HTTP
http = test_faults.http

pytestmark = pytest.mark.timeout(240)


def _events(found: Cluster, run_id: str) -> list[str]:
    if not found.ledger.exists():
        return []
    lines = map(orjson.loads, found.ledger.read_bytes().splitlines())
    return [f"{e['event']}:{e['node']}" for e in lines if e["run_id"] == run_id]


async def test_a_cancel_asked_while_redis_is_down_stops_the_run(
    cluster: Cluster,
    http: httpx.AsyncClient,
) -> None:
    """The cancel answers without 503, the node stops within a heartbeat or two, the run ends
    `interrupted` (the thread too, as after any interrupt cancel) and every process stays up."""
    api = await cluster.start()
    thread = (await http.post(f"{api.url}/threads", json={})).json()
    body = {"assistant_id": "ledger", "input": {"seq": 0, "seconds": 60}}
    run = (await http.post(f"{api.url}/threads/{thread['thread_id']}/runs", json=body)).json()
    run_url = f"{api.url}/threads/{thread['thread_id']}/runs/{run['run_id']}"

    async def events() -> list[str]:
        return _events(cluster, run["run_id"])

    await eventually(events, lambda seen: "start:one" in seen, timeout=60, interval=0.1, what="node one started")
    cluster.redis.stop()
    asked = time.monotonic()
    cancel = await http.post(f"{run_url}/cancel", params={"action": "interrupt"})
    assert cancel.status_code < 300, (cancel.status_code, cancel.text)
    seen = await eventually(events, lambda seen: "cancelled:one" in seen, timeout=30, interval=0.1, what="cancelled")
    stopped_after = time.monotonic() - asked
    assert "end:one" not in seen, seen
    print(f"\nFAULT FIGURES cancel with Redis down: node stopped {stopped_after:.2f} s after the cancel")

    async def status() -> str:
        got = await http.get(run_url)
        return str(got.json()["status"]) if got.status_code == 200 else f"http {got.status_code}"

    assert await eventually(status, lambda s: s == "interrupted", timeout=30, interval=0.2, what="run interrupted")
    cluster.redis.start()
    thread_after = await http.get(f"{api.url}/threads/{thread['thread_id']}")
    assert thread_after.json()["status"] == "interrupted", (thread_after.json(), cluster.logs())
    assert [p.log_path.name for p in cluster.processes if not p.alive] == [], cluster.logs()
