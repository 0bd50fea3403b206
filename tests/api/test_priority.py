"""`priority` in langgraph.json: the project's @priority.assign decides run order within the queue."""

from __future__ import annotations

from pathlib import Path

from tests.api.backends import Backend, sdk
from tests.api.support import GRAPHS_DIR, eventually
from tests.api.test_runs import Gate

CONFIG = GRAPHS_DIR / "priority" / "langgraph.json"


async def test_lower_priority_runs_first_and_each_thread_stays_fifo(fresh_backend: Backend, tmp_path: Path) -> None:
    """With one worker slot busy, queued runs then execute urgent (-5) first, default (0) next, low (5)
    last, FIFO among equals, a stateless run included, and one thread's runs in their own order."""
    server = await fresh_backend.start(CONFIG, env={"N_JOBS_PER_WORKER": "1"})
    log = tmp_path / "order.log"
    gate = Gate(tmp_path)
    async with sdk(server) as client:
        blocker = (await client.threads.create())["thread_id"]
        held = await client.runs.create(blocker, "gate", input=gate.input)
        await gate.reached()
        low = (await client.threads.create(metadata={"tier": "low"}))["thread_id"]
        normal = (await client.threads.create())["thread_id"]
        urgent = (await client.threads.create(metadata={"tier": "urgent"}))["thread_id"]
        queued = [
            await client.runs.create(low, "order", input={"log": str(log), "tag": "low"}),
            await client.runs.create(normal, "order", input={"log": str(log), "tag": "normal"}),
            await client.runs.create(urgent, "order", input={"log": str(log), "tag": "u1"}),
            await client.runs.create(urgent, "order", input={"log": str(log), "tag": "u2"}),
            await client.runs.create(
                None, "order", input={"log": str(log), "tag": "stateless"}, metadata={"tier": "urgent"}
            ),
        ]
        gate.open()
        await client.runs.join(blocker, held["run_id"])

        async def lines() -> list[str]:
            return log.read_text().split() if log.exists() else []

        done = await eventually(lines, lambda found: len(found) == len(queued), timeout=30, what="all runs")
        assert done == ["u1", "u2", "stateless", "normal", "low"]


async def test_a_failing_priority_handler_leaves_the_default(fresh_backend: Backend, tmp_path: Path) -> None:
    """Settings out of range are not stored: the run still executes, at the default priority."""
    server = await fresh_backend.start(CONFIG)
    log = tmp_path / "order.log"
    async with sdk(server) as client:
        thread = (await client.threads.create(metadata={"tier": "broken"}))["thread_id"]
        run = await client.runs.wait(thread, "order", input={"log": str(log), "tag": "ran"})
        assert run == {"log": str(log), "tag": "ran"}
        assert log.read_text().split() == ["ran"]
