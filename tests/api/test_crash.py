"""A crash (SIGKILL) in the middle of a run: the run is picked up at restart, finishes, and frees its thread."""

from __future__ import annotations

from pathlib import Path

from langgraph_sdk import get_client

from tests.api.support import StartServer, eventually, obj, wait_for_file


async def test_run_running_at_sigkill_resumes_after_restart_and_finishes(
    start_server: StartServer, tmp_path: Path
) -> None:
    """A run killed inside a node resumes from its last checkpoint at restart; the run queued behind it runs too."""
    gate = tmp_path / "gate"
    open_gate = tmp_path / "open-gate"
    open_gate.touch()
    first = await start_server()
    sdk = get_client(url=first.url, api_key=None)
    try:
        tid = (await sdk.threads.create())["thread_id"]
        run = await sdk.runs.create(tid, "gate", input={"gate": str(gate)})
        await wait_for_file(Path(f"{gate}.entered"))
        assert (await sdk.runs.get(tid, run["run_id"]))["status"] == "running"
        queued = await sdk.runs.create(tid, "gate", input={"gate": str(open_gate)}, multitask_strategy="enqueue")
        assert (await sdk.runs.get(tid, queued["run_id"]))["status"] == "pending"
    finally:
        await sdk.http.client.aclose()
    first.kill()

    gate.touch()  # the node can pass its gate once the run is executed again
    second = await start_server(database=first.database)
    sdk = get_client(url=second.url, api_key=None)
    try:

        async def statuses() -> tuple[str, str]:
            crashed = await sdk.runs.get(tid, run["run_id"])
            waiting = await sdk.runs.get(tid, queued["run_id"])
            return crashed["status"], waiting["status"]

        assert await eventually(statuses, lambda s: s == ("success", "success"), what="both runs to finish") == (
            "success",
            "success",
        )
        thread = await eventually(lambda: sdk.threads.get(tid), lambda t: t["status"] != "busy", what="thread free")
        assert thread["status"] == "idle"
        # `before` ran once for the crashed run: it resumed from its checkpoint rather than starting over.
        assert obj(thread["values"])["steps"] == ["before", "hold", "after", "before", "hold", "after"]
    finally:
        await sdk.http.client.aclose()


async def test_run_that_keeps_killing_its_worker_fails_at_the_retry_limit(
    start_server: StartServer, tmp_path: Path
) -> None:
    """A run whose process died on its last allowed attempt (BG_JOB_MAX_RETRIES) ends `error` at restart
    instead of running again, and its thread is not left busy."""
    gate = tmp_path / "never-opened"
    env = {"BG_JOB_MAX_RETRIES": "1"}
    first = await start_server(env=env)
    sdk = get_client(url=first.url, api_key=None)
    try:
        tid = (await sdk.threads.create())["thread_id"]
        run = await sdk.runs.create(tid, "gate", input={"gate": str(gate)})
        await wait_for_file(Path(f"{gate}.entered"))
    finally:
        await sdk.http.client.aclose()
    first.kill()

    second = await start_server(database=first.database, env=env)
    sdk = get_client(url=second.url, api_key=None)
    try:
        failed = await eventually(
            lambda: sdk.runs.get(tid, run["run_id"]), lambda r: r["status"] != "running", what="run settled"
        )
        assert failed["status"] == "error"
        body = obj(await sdk.runs.join(tid, run["run_id"]))
        assert obj(body["__error__"])["error"] == "RetryLimitExceeded"
        thread = await sdk.threads.get(tid)
        assert thread["status"] == "error"
        assert obj(thread["values"])["steps"] == ["before"]
    finally:
        await sdk.http.client.aclose()
