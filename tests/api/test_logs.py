"""Logs that explain: a line per request and per run transition, run ids on each, tracebacks for failures."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.api.clients import open_client
from tests.api.support import FAILURE_MESSAGE, Server, StartServer, eventually, system_assistant_id


def json_lines(server: Server) -> list[dict[str, Any]]:
    """Every line of the server's log that is a JSON object (startup banners are plain text)."""
    found: list[dict[str, Any]] = []
    for line in server.log(tail=100_000).splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def about(lines: list[dict[str, Any]], event: str, run_id: str) -> list[dict[str, Any]]:
    """The lines with this event about this run."""
    return [line for line in lines if line.get("event") == event and line.get("run_id") == run_id]


async def test_json_logs_have_a_line_per_request_and_per_run_transition(start_server: StartServer) -> None:
    """With LOG_JSON=true every line is JSON; a run logs created, started and finished (status, times)
    with its run, thread and assistant ids, and requests log method, route template, status and ms
    (but /ok does not)."""
    server = await start_server(env={"LOG_JSON": "true"})
    async with open_client(server) as client:
        thread = await client.threads.create()
        run = await client.runs.create(thread["thread_id"], "echo", input={"value": 1})
        await client.runs.join(thread["thread_id"], run["run_id"])
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/ok")).status_code == 200
        assert (await http.get(f"/threads/{thread['thread_id']}")).status_code == 200

    def logged(lines: list[dict[str, Any]]) -> bool:
        # A request's line is written once its response has gone out, so the client may see it first.
        read = [line for line in lines if line.get("event") == "request" and line["route"] == "/threads/{thread_id}"]
        return bool(about(lines, "run finished", run["run_id"])) and bool(read)

    lines = await eventually(lambda: _read(server), logged, what="the run finished and GET thread lines")
    expected = {
        "run_id": run["run_id"],
        "thread_id": thread["thread_id"],
        "assistant_id": system_assistant_id("echo"),
        "graph_id": "echo",
    }
    for event in ("run created", "run started", "run finished"):
        (line,) = about(lines, event, run["run_id"])
        assert {k: line[k] for k in expected} == expected, line
        assert line["level"] == "info"
    assert about(lines, "run finished", run["run_id"])[0]["status"] == "success"
    assert isinstance(about(lines, "run finished", run["run_id"])[0]["run_exec_ms"], int)
    assert about(lines, "run started", run["run_id"])[0]["run_wait_time_ms"] >= 0
    requests = [line for line in lines if line.get("event") == "request"]
    gets = [r for r in requests if r["route"] == "/threads/{thread_id}" and r["method"] == "GET"]
    assert gets and gets[-1]["status"] == 200 and isinstance(gets[-1]["ms"], float)
    assert not [r for r in requests if r["route"] == "/ok"], "health checks are not logged"
    creates = [r for r in requests if r["route"] == "/threads/{thread_id}/runs" and r["method"] == "POST"]
    assert creates and creates[0]["status"] == 200


async def _read(server: Server) -> list[dict[str, Any]]:
    return json_lines(server)


async def test_failed_run_is_logged_at_error_with_the_full_traceback(start_server: StartServer) -> None:
    """A graph that raises logs an ERROR line with the run's ids and the traceback down to the raising
    node, then a finished line with status error."""
    server = await start_server(env={"LOG_JSON": "1"})
    async with open_client(server) as client:
        thread = await client.threads.create()
        run = await client.runs.create(thread["thread_id"], "failing", input={})
        await client.runs.join(thread["thread_id"], run["run_id"])

    def finished(lines: list[dict[str, Any]]) -> bool:
        return bool(about(lines, "run finished", run["run_id"]))

    lines = await eventually(lambda: _read(server), finished, what="the run finished line")
    (failure,) = [line for line in lines if line.get("run_id") == run["run_id"] and line.get("level") == "error"]
    assert failure["thread_id"] == thread["thread_id"]
    assert failure["assistant_id"] == system_assistant_id("failing")
    assert "Traceback (most recent call last)" in failure["exception"]
    assert "_boom" in failure["exception"], "the traceback reaches the node that raised"
    assert FAILURE_MESSAGE in failure["exception"]
    assert about(lines, "run finished", run["run_id"])[0]["status"] == "error"


async def test_console_logs_are_the_default_and_carry_the_traceback(start_server: StartServer) -> None:
    """Without LOG_JSON the lines are console text; a failed run's traceback follows its error line."""
    server = await start_server(env={"LOG_JSON": ""})
    async with open_client(server) as client:
        thread = await client.threads.create()
        run = await client.runs.create(thread["thread_id"], "failing", input={})
        await client.runs.join(thread["thread_id"], run["run_id"])

    async def text() -> str:
        return server.log(tail=100_000)

    log = await eventually(text, lambda t: "run finished" in t and run["run_id"] in t, what="the run finished line")
    assert not any(line.startswith("{") for line in log.splitlines())
    error_line = next(line for line in log.splitlines() if "[error" in line and run["run_id"] in line)
    assert "run failed" in error_line
    assert "Traceback (most recent call last)" in log
    assert f"ValueError: {FAILURE_MESSAGE}" in log
