"""Embedded mode under a user's mistakes: two `graphyard dev` on one file, and an impatient Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from langgraph_sdk import get_client

from tests.api.support import CONFIG, StartServer, eventually, launch, wait_for_file


async def test_a_second_dev_process_on_the_same_file_refuses_to_start(
    start_server: StartServer, tmp_path: Path
) -> None:
    """A second `graphyard dev` on a database another one holds exits 2 with one line naming the file and
    the holder's pid, and the first one's running run is left alone."""
    first = await start_server()
    sdk = get_client(url=first.url, api_key=None)
    gate = tmp_path / "gate"
    try:
        thread = await sdk.threads.create()
        run = await sdk.runs.create(thread["thread_id"], "gate", input={"gate": str(gate)})
        await wait_for_file(Path(f"{gate}.entered"))
        second = launch(CONFIG, first.database, tmp_path / "second.log")
        try:
            code = second.process.wait(60)
        except subprocess.TimeoutExpired:
            second.kill()
            raise
        lines = [line for line in second.log().splitlines() if line.strip()]
        assert code == 2, second.log()
        assert lines[-1].startswith("graphyard: "), second.log()
        assert str(first.database) in lines[-1] and f"pid {first.process.pid}" in lines[-1], second.log()
        assert (await sdk.runs.get(thread["thread_id"], run["run_id"]))["status"] == "running"
        gate.touch()
        assert (await sdk.runs.join(thread["thread_id"], run["run_id"]))["steps"] == ["before", "hold", "after"]
        assert "abandoned" not in first.log() and "requeued" not in first.log()
    finally:
        gate.touch()
        await sdk.http.client.aclose()


async def test_second_ctrl_c_hands_the_running_run_back_at_once(start_server: StartServer, tmp_path: Path) -> None:
    """The first SIGINT says what the server waits for; a second one exits at once, and the unfinished
    run resumes (and finishes) at the next start on the same file."""
    first = await start_server(env={"GRAPHYARD_DRAIN_SECONDS": "60"})
    sdk = get_client(url=first.url, api_key=None)
    gate = tmp_path / "gate"
    try:
        thread = await sdk.threads.create()
        run = await sdk.runs.create(thread["thread_id"], "gate", input={"gate": str(gate)})
        await wait_for_file(Path(f"{gate}.entered"))
    finally:
        await sdk.http.client.aclose()
    first.process.send_signal(signal.SIGINT)

    async def said_what_it_waits_for() -> bool:
        return "press Ctrl-C again" in first.log() and run["run_id"] in first.log()

    await eventually(said_what_it_waits_for, bool, timeout=30.0, what="the drain message")
    second_signal_at = time.monotonic()
    first.process.send_signal(signal.SIGINT)
    first.process.wait(30)
    assert time.monotonic() - second_signal_at < 15.0, "the second Ctrl-C did not cut the 60 s drain short"
    assert "handing unfinished runs back" in first.log(), first.log()

    again = await start_server(database=first.database)
    sdk = get_client(url=again.url, api_key=None)
    try:
        gate.touch()
        joined = await sdk.runs.join(thread["thread_id"], run["run_id"])
        assert joined["steps"] == ["before", "hold", "after"]
        assert (await sdk.runs.get(thread["thread_id"], run["run_id"]))["status"] == "success"
    finally:
        await sdk.http.client.aclose()
