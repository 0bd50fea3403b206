"""A run's (and an assistant's) `config` is checked like the rest of the payload: every field LangGraph
reads has the right type at creation, or the request is 422 naming the field."""

from __future__ import annotations

from typing import Any, cast

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from tests.api.support import obj

BAD_CONFIGS: list[tuple[dict[str, Any], str]] = [
    ({"recursion_limit": "10"}, "config/recursion_limit"),
    ({"recursion_limit": 0}, "config/recursion_limit"),
    ({"recursion_limit": 2.5}, "config/recursion_limit"),
    ({"max_concurrency": -1}, "config/max_concurrency"),
    ({"max_concurrency": "many"}, "config/max_concurrency"),
    ({"tags": "one-tag"}, "config/tags"),
    ({"tags": ["ok", 3]}, "config/tags/1"),
    ({"run_name": 5}, "config/run_name"),
    ({"run_id": "not-a-uuid"}, "config/run_id"),
    ({"metadata": ["a"]}, "config/metadata"),
    ({"configurable": "x"}, "config/configurable"),
    ({"callbacks": ["handler"]}, "config/callbacks"),
]


@pytest.mark.parametrize(("config", "field"), BAD_CONFIGS)
async def test_bad_run_config_is_422_naming_the_field(
    client: LangGraphClient, http: httpx.AsyncClient, config: dict[str, Any], field: str
) -> None:
    """Stateful, stateless and wait runs refuse a mistyped config field at creation; no run is made."""
    thread = await client.threads.create()
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.runs.create(thread["thread_id"], "echo", input={}, config=cast(Any, config))
    assert info.value.response.status_code == 422
    assert f"'{field}'" in info.value.response.json()["detail"]
    assert await client.runs.list(thread["thread_id"]) == []
    stateless = await http.post("/runs/wait", json={"assistant_id": "echo", "config": config})
    assert stateless.status_code == 422
    assert f"'{field}'" in stateless.json()["detail"]


@pytest.mark.parametrize(("config", "field"), BAD_CONFIGS[:4])
async def test_bad_assistant_config_is_422_naming_the_field(
    client: LangGraphClient, config: dict[str, Any], field: str
) -> None:
    """An assistant's config becomes its runs' config, so it is checked the same way."""
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.assistants.create("echo", config=cast(Any, config))
    assert info.value.response.status_code == 422
    assert f"'{field}'" in info.value.response.json()["detail"]


async def test_well_typed_config_is_accepted_and_applied(client: LangGraphClient) -> None:
    """Tags, run name and a generous limit run fine; a recursion limit below the graph's steps fails it."""
    fine = {"recursion_limit": 25, "tags": ["a"], "run_name": "named", "max_concurrency": 2, "callbacks": None}
    result = obj(await client.runs.wait(None, "slow", input={"delay": 0}, config=cast(Any, fine)))
    assert result["steps"] == ["s1", "s2", "s3"]
    thread = await client.threads.create()
    limited = await client.runs.create(thread["thread_id"], "slow", input={"delay": 0}, config={"recursion_limit": 2})
    await client.runs.join(thread["thread_id"], limited["run_id"])
    run = await client.runs.get(thread["thread_id"], limited["run_id"])
    assert run["status"] == "error"
