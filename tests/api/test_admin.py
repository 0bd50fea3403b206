"""Operator commands (`graphyard runs|threads|queue`) against a live `graphyard dev` and its SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.api.admin_cli import graphyard, graphyard_process
from tests.api.clients import open_client
from tests.api.support import RUN_TERMINAL, StartServer, eventually, wait_for_file

# Short leases: the server's heartbeat (a third of the lease) delivers a cancel recorded on the row.
LEASE = {"GRAPHYARD_LEASE_SECONDS": "3"}
# Several servers and a CLI subprocess each: minutes on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(300)


async def test_list_show_queue_and_cancel_a_running_run(start_server: StartServer, tmp_path: Path) -> None:
    """`runs list` (with filters), `runs show` and `queue` see a held run and one queued behind it;
    requeueing the live one is refused; `runs cancel` stops it on the server, which then runs the next."""
    server = await start_server(env=LEASE)
    db = ["--database", str(server.database), "--json"]
    gate = str(tmp_path / "gate")
    async with open_client(server) as client:
        thread = await client.threads.create()
        held = await client.runs.create(thread["thread_id"], "gate", input={"gate": gate})
        await wait_for_file(Path(f"{gate}.entered"))
        queued = await client.runs.create(thread["thread_id"], "echo", input={"value": 2})
        other = await client.threads.create()

        listed = (await graphyard("runs", "list", *db)).json()
        assert [r["run_id"] for r in listed] == [held["run_id"], queued["run_id"]]
        assert [r["status"] for r in listed] == ["running", "pending"]
        running = (await graphyard("runs", "list", "--status", "running", *db)).json()
        assert [r["run_id"] for r in running] == [held["run_id"]]
        assert running[0]["lease_owner"].startswith("worker-")
        assert (await graphyard("runs", "list", "--thread", other["thread_id"], *db)).json() == []
        assert (await graphyard("runs", "list", "--older-than", "3600", *db)).json() == []
        shown = (await graphyard("runs", "show", held["run_id"], *db)).json()
        assert shown["thread_id"] == thread["thread_id"] and shown["status"] == "running"
        queue = (await graphyard_process("queue", *db)).json()
        assert (queue["pending_due"], queue["pending_delayed"], queue["running"]) == (1, 0, 1)
        assert queue["running_by_worker"] == {running[0]["lease_owner"]: 1}
        assert queue["expired_leases"] == 0 and queue["oldest_pending_seconds"] >= 0

        refused = await graphyard("runs", "requeue", held["run_id"], *db)
        assert refused.code == 1
        assert "lease is live" in refused.stderr and held["run_id"] in refused.stderr
        busy = await graphyard("threads", "unlock", thread["thread_id"], *db)
        assert busy.code == 1 and "in flight" in busy.stderr

        cancelled = await graphyard("runs", "cancel", held["run_id"], *db)
        assert cancelled.code == 0, cancelled.stderr
        done = await eventually(
            lambda: client.runs.get(thread["thread_id"], held["run_id"]),
            lambda r: r["status"] in RUN_TERMINAL,
            what="the cancelled run to stop on the server",
        )
        assert done["status"] == "interrupted"
        await client.runs.join(thread["thread_id"], queued["run_id"])
        assert (await client.runs.get(thread["thread_id"], queued["run_id"]))["status"] == "success"
        again = await graphyard("runs", "cancel", held["run_id"], *db)
        assert again.code == 1 and "already ended with status interrupted" in again.stderr


async def test_requeue_a_run_whose_server_died_and_unlock_a_stuck_thread(
    start_server: StartServer, tmp_path: Path
) -> None:
    """A run left running by a killed server is requeued once its lease expired (and finishes after a
    restart); a thread left busy with nothing in flight is unlocked to idle; unknown ids are errors."""
    server = await start_server(env=LEASE)
    db = ["--database", str(server.database), "--json"]
    gate_file = tmp_path / "gate"
    async with open_client(server) as client:
        thread = await client.threads.create()
        run = await client.runs.create(thread["thread_id"], "gate", input={"gate": str(gate_file)})
        await wait_for_file(Path(f"{gate_file}.entered"))
        stuck = await client.threads.create()
    server.kill()

    async def expired() -> int:
        queue: int = (await graphyard("queue", *db)).json()["expired_leases"]
        return queue

    await eventually(expired, lambda n: n == 1, timeout=30, interval=0.5, what="the dead server's lease to expire")
    requeued = (await graphyard("runs", "requeue", run["run_id"], *db)).json()
    assert requeued["status"] == "pending" and requeued["lease_owner"] is None
    pending = await graphyard("runs", "requeue", run["run_id"], *db)
    assert pending.code == 1 and "already pending" in pending.stderr

    with sqlite3.connect(server.database) as conn:  # a thread left busy by some past bug
        conn.execute("UPDATE graphyard_threads SET status = 'busy' WHERE thread_id = ?", (stuck["thread_id"],))
    unlocked = (await graphyard("threads", "unlock", stuck["thread_id"], *db)).json()
    assert unlocked == {"thread_id": stuck["thread_id"], "status": "idle"}
    idle = await graphyard("threads", "unlock", stuck["thread_id"], *db)
    assert idle.code == 1 and "not busy" in idle.stderr
    missing = await graphyard("runs", "show", "00000000-0000-0000-0000-000000000000", *db)
    assert missing.code == 1 and "not found" in missing.stderr
    no_db = await graphyard("queue", "--database", str(tmp_path / "nowhere" / "x.sqlite"))
    assert no_db.code == 1 and "no database at" in no_db.stderr

    gate_file.touch()
    restarted = await start_server(database=server.database, env=LEASE)
    async with open_client(restarted) as client:
        await client.runs.join(thread["thread_id"], run["run_id"])
        finished = await client.runs.get(thread["thread_id"], run["run_id"])
        assert finished["status"] == "success"
        assert (await client.threads.get(stuck["thread_id"]))["status"] == "idle"
