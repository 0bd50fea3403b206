"""One graph per factory form the reference calls; each build is recorded as a JSON line in $FACTORY_LOG.

A record says which factory ran, how it was told (access context, user, store, run context, config's
thread id) and, for context managers, when the use ended ("exit"). The graph itself is the same for
every form: one node that counts and appends its factory's name to `trail`.
"""

from __future__ import annotations

import contextlib
import json
import operator
import os
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph_sdk.runtime import ServerRuntime
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    count: int
    trail: Annotated[list[str], operator.add]


class Context(TypedDict, total=False):
    label: str


def _record(form: str, *, runtime: Any = None, config: Any = None, event: str = "build") -> None:
    entry: dict[str, Any] = {"form": form, "event": event}
    if runtime is not None:
        execution = runtime.execution_runtime
        entry.update(
            access=runtime.access_context,
            user=runtime.user.identity if runtime.user is not None else None,
            store=type(runtime.store).__name__ if runtime.store is not None else None,
            context=execution.context if execution is not None else None,
        )
    if config is not None:
        entry["thread_id"] = config["configurable"].get("thread_id")
    with open(os.environ["FACTORY_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def _graph(form: str) -> CompiledStateGraph[Any, Any, Any, Any]:
    def step(state: State) -> dict[str, Any]:
        return {"count": state.get("count", 0) + 1, "trail": [form]}

    builder = StateGraph(State, context_schema=Context).add_node("step", step)
    return builder.add_edge(START, "step").add_edge("step", END).compile()


def no_params() -> Any:
    """No parameter: called bare."""
    _record("no_params")
    return _graph("no_params")


def config_only(config: RunnableConfig) -> Any:
    """One parameter, not the runtime: the RunnableConfig."""
    _record("config_only", config=config)
    return _graph("config_only")


async def runtime_annotated(rt: ServerRuntime[Context]) -> Any:
    """One parameter annotated ServerRuntime, whatever its name."""
    _record("runtime_annotated", runtime=rt)
    if rt.execution_runtime is not None:
        # The store a factory gets is the one runs and /store use.
        await rt.store.aput(("factories",), "runtime_annotated", {"context": rt.execution_runtime.context})
    return _graph("runtime_annotated")


def runtime_named(runtime):  # type: ignore[no-untyped-def]  # unannotated on purpose: chosen by name
    """One unannotated parameter named runtime."""
    _record("runtime_named", runtime=runtime)
    return _graph("runtime_named")


async def both(config: RunnableConfig, runtime: ServerRuntime[Any]) -> Any:
    """Config then runtime, async."""
    _record("both", runtime=runtime, config=config)
    return _graph("both")


def both_reversed(rt: ServerRuntime[Any], cfg: RunnableConfig) -> Any:
    """Runtime then config, told apart by annotation only."""
    _record("both_reversed", runtime=rt, config=cfg)
    return _graph("both_reversed")


def keyword_only(*, config: RunnableConfig, runtime: ServerRuntime[Any]) -> Any:
    """Both as keyword-only parameters."""
    _record("keyword_only", runtime=runtime, config=config)
    return _graph("keyword_only")


@contextlib.asynccontextmanager
async def async_managed(runtime: ServerRuntime[Any]) -> AsyncIterator[Any]:
    """An async context manager factory."""
    _record("async_managed", runtime=runtime)
    try:
        yield _graph("async_managed")
    finally:
        _record("async_managed", runtime=runtime, event="exit")


@contextlib.contextmanager
def sync_managed(config: RunnableConfig, runtime: ServerRuntime[Any]) -> Iterator[Any]:
    """A sync context manager factory taking both."""
    _record("sync_managed", runtime=runtime, config=config)
    try:
        yield _graph("sync_managed")
    finally:
        _record("sync_managed", runtime=runtime, event="exit")


async def async_generator(runtime: ServerRuntime[Any]) -> AsyncIterator[Any]:
    """A bare async generator function: set up, yield the graph, clean up."""
    _record("async_generator", runtime=runtime)
    yield _graph("async_generator")
    _record("async_generator", runtime=runtime, event="exit")


async def returns_context_manager(config: RunnableConfig) -> Any:
    """An async factory whose result is itself an async context manager."""
    _record("returns_context_manager", config=config)

    @contextlib.asynccontextmanager
    async def managed() -> AsyncIterator[Any]:
        yield _graph("returns_context_manager")
        _record("returns_context_manager", event="exit")

    return managed()
