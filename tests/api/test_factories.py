"""Graph factories in every form the reference calls, each told why it is built (tests/graphs/factories).

Every factory records its build (and, for context managers, its exit) in a log file; the tests drive
the server with the official client and read which access context, user, store and run context each
use gave the factory.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.api.support import GRAPHS_DIR, Server, launch, obj, wait_ready_blocking
from tests.engine.test_distributed import Cluster, cluster

__all__ = ["cluster"]  # the PostgreSQL + Redis fixture, used by the production-mode test below

PROJECT = GRAPHS_DIR / "factories" / "langgraph.json"
RUNTIME_FORMS = [
    "runtime_annotated",
    "runtime_named",
    "both",
    "both_reversed",
    "keyword_only",
    "async_managed",
    "sync_managed",
    "async_generator",
]
CONFIG_FORMS = ["config_only", "both", "both_reversed", "keyword_only", "sync_managed", "returns_context_manager"]
MANAGED_FORMS = ["async_managed", "sync_managed", "async_generator", "returns_context_manager"]
ALL_FORMS = sorted({"no_params", *RUNTIME_FORMS, *CONFIG_FORMS, *MANAGED_FORMS})


class FactoryLog:
    """The builds recorded by the project's factories, read incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen = 0

    def all(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def new(self, form: str) -> list[dict[str, Any]]:
        """Records of `form` written since the last call."""
        records = self.all()
        fresh, self.seen = records[self.seen :], len(records)
        return [r for r in fresh if r["form"] == form]


# One xdist worker runs this module, so its module-scoped server starts once (not once per worker).
pytestmark = pytest.mark.xdist_group("factories")


@pytest.fixture(scope="module")
def factory_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """One graphyard serving the factories project under custom auth, with its factory log."""
    folder = tmp_path_factory.mktemp("factories")
    log = folder / "factories.jsonl"
    server = launch(PROJECT, folder / "graphyard.sqlite", folder / "server.log", env={"FACTORY_LOG": str(log)})
    try:
        wait_ready_blocking(server)
        yield server, log
    finally:
        server.stop()


@pytest.fixture
async def alice(factory_server: tuple[Server, Path]) -> AsyncIterator[LangGraphClient]:
    """The official client, authenticated as alice."""
    server, _ = factory_server
    sdk = get_client(url=server.url, api_key=None, headers={"Authorization": "Bearer token-alice"}, timeout=60)
    try:
        yield sdk
    finally:
        await sdk.http.client.aclose()


@pytest.fixture
def factory_log(factory_server: tuple[Server, Path]) -> FactoryLog:
    """The factory log, positioned at its end."""
    log = FactoryLog(factory_server[1])
    log.seen = len(log.all())
    return log


def _builds(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["event"] == "build"]


def _check(form: str, records: list[dict[str, Any]], access: str, thread_id: str | None = None) -> None:
    builds = _builds(records)
    assert builds, f"{form} was not built for {access}"
    for build in builds:
        if form in RUNTIME_FORMS:
            assert build["access"] == access
            assert build["user"] == "alice"
            assert build["store"] is not None
        if form in CONFIG_FORMS and thread_id is not None:
            assert build["thread_id"] == thread_id
    if form in MANAGED_FORMS:
        exits = [r for r in records if r["event"] == "exit"]
        assert len(exits) == len(builds), f"{form}: every context manager is exited when its use ends"


@pytest.mark.parametrize("form", ALL_FORMS)
async def test_factory_form_is_told_each_access_context(
    form: str, alice: LangGraphClient, factory_log: FactoryLog
) -> None:
    """Each factory form is built per use: assistants.read for schemas and drawing, threads.create_run
    for a run (with its context), threads.read for state and history, threads.update for updates."""
    await alice.assistants.get_schemas(form)
    await alice.assistants.get_graph(form)
    await alice.assistants.get_subgraphs(form)
    reads = factory_log.new(form)
    assert len(_builds(reads)) == 3
    _check(form, reads, "assistants.read")

    thread = await alice.threads.create()
    thread_id = thread["thread_id"]
    result = obj(await alice.runs.wait(thread_id, form, input={"count": 0}, context={"label": "L"}))
    assert result == {"count": 1, "trail": [form]}
    ran = factory_log.new(form)
    _check(form, ran, "threads.create_run", thread_id)
    if form in RUNTIME_FORMS:
        assert _builds(ran)[0]["context"] == {"label": "L"}

    state = await alice.threads.get_state(thread_id)
    assert obj(state["values"])["count"] == 1
    history = await alice.threads.get_history(thread_id)
    assert history
    _check(form, factory_log.new(form), "threads.read", thread_id)

    await alice.threads.update_state(thread_id, {"count": 10})
    _check(form, factory_log.new(form), "threads.update", thread_id)
    assert obj((await alice.threads.get_state(thread_id))["values"])["count"] == 10


async def test_factory_runtime_store_is_the_store_runs_use(alice: LangGraphClient) -> None:
    """What a factory writes to runtime.store while building for a run is read back through /store."""
    await alice.runs.wait(None, "runtime_annotated", input={"count": 0}, context={"label": "stored"})
    item = await alice.store.get_item(["factories"], "runtime_annotated")
    assert item["value"] == {"context": {"label": "stored"}}


async def test_factory_system_assistant_is_named_after_the_graph_id(alice: LangGraphClient) -> None:
    """A factory's graph is unknown until built, so its system assistant is named after the graph id."""
    found = await alice.assistants.search(graph_id="both")
    assert [a["name"] for a in found] == ["both"]


@pytest.mark.postgres
@pytest.mark.parametrize("form", ["both", "async_managed"])
async def test_factory_in_a_separate_worker_on_postgres(cluster: Cluster, tmp_path: Path, form: str) -> None:
    """On `graphyard serve` + `graphyard worker` (PostgreSQL, Redis) the worker builds the run's graph
    told threads.create_run, the run's user and context and the PostgreSQL store; the API process
    builds it for reads and updates with the request's user."""
    log = FactoryLog(tmp_path / "factories.jsonl")
    cluster.config = PROJECT
    cluster.extra_env = {"FACTORY_LOG": str(log.path)}
    api = await cluster.api()
    cluster.worker()
    sdk = get_client(url=api.url, api_key=None, headers={"Authorization": "Bearer token-alice"}, timeout=60)
    try:
        thread = await sdk.threads.create()
        thread_id = thread["thread_id"]
        result = obj(await sdk.runs.wait(thread_id, form, input={"count": 0}, context={"label": "pg"}))
        assert result == {"count": 1, "trail": [form]}, cluster.logs()
        ran = log.new(form)
        _check(form, ran, "threads.create_run", thread_id if form in CONFIG_FORMS else None)
        assert _builds(ran)[0]["context"] == {"label": "pg"}
        # LangGraph's PostgreSQL store, wrapped so that an outage reads as a retryable fault.
        assert _builds(ran)[0]["store"] == "TranslatingPostgresStore"
        await sdk.threads.get_state(thread_id)
        _check(form, log.new(form), "threads.read", thread_id if form in CONFIG_FORMS else None)
        await sdk.threads.update_state(thread_id, {"count": 5})
        _check(form, log.new(form), "threads.update", thread_id if form in CONFIG_FORMS else None)
    finally:
        await sdk.http.client.aclose()
