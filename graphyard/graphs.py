"""Registry of the project's graphs: import them from langgraph.json, bind saver and store, describe them."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import logging
import re
import sys
import traceback
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, TypeAlias, cast

from langchain_core.runnables import RunnableConfig
from langgraph.channels.base import BaseChannel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore
from pydantic import BaseModel, TypeAdapter
from typing_extensions import TypedDict, is_typeddict

from graphyard.config import ConfigError, GraphSpec, ProjectConfig
from graphyard.serde import to_jsonable

__all__ = ["GraphRegistry"]

Graph: TypeAlias = Pregel[Any, Any, Any, Any]
_AnyStateGraph: TypeAlias = StateGraph[Any, Any, Any, Any]
_JS_SUFFIXES = (".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".jsx", ".tsx")
_DEFAULT_NAME = "LangGraph"  # what LangGraph calls a graph nobody named
_log = logging.getLogger(__name__)
# How pydantic says a type has no JSON schema (PydanticUserError is a TypeError; NameError for forward refs).
_SCHEMA_ERRORS = (TypeError, ValueError, NameError)


@dataclasses.dataclass
class _Entry:
    spec: GraphSpec
    graph: Graph | None  # set for graphs built once at load
    factory: Callable[..., Any] | None  # set for graphs built per use
    takes_config: bool = False
    context_keys: frozenset[str] | None = None


class GraphRegistry:
    """The graphs named in langgraph.json, imported once; factories are called on each use."""

    def __init__(self, entries: Mapping[str, _Entry]) -> None:
        self._entries = dict(entries)

    @classmethod
    def load(cls, config: ProjectConfig) -> GraphRegistry:
        """Import every graph now so a broken project fails at start; call ``apply_project`` first."""
        entries = {graph_id: _load_entry(config, spec) for graph_id, spec in config.graphs.items()}
        return cls(entries)

    def graph_ids(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, graph_id: object) -> bool:
        return graph_id in self._entries

    def description(self, graph_id: str) -> str | None:
        return self._entry(graph_id).spec.description

    def context_keys(self, graph_id: str) -> frozenset[str] | None:
        """Keys of the graph's context schema, or None when it has none (or a factory was never built)."""
        return self._entry(graph_id).context_keys

    @asynccontextmanager
    async def graph(
        self,
        graph_id: str,
        config: RunnableConfig | None = None,
        *,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        store: BaseStore | None = None,
    ) -> AsyncIterator[Graph]:
        """Yield a copy of the graph bound to this saver and store; raises KeyError for an unknown id."""
        entry = self._entry(graph_id)
        async with AsyncExitStack() as stack:
            graph = entry.graph if entry.graph is not None else await _build(entry, config, stack)
            update: dict[str, Any] = {}
            if checkpointer is not None:
                update["checkpointer"] = checkpointer
            if store is not None:
                update["store"] = store
            if graph.name == _DEFAULT_NAME:
                update["name"] = graph_id
            # copy() leaves the shared instance untouched, so concurrent runs cannot see each other's saver.
            yield graph.copy(update=update) if update else graph

    async def schemas(self, graph_id: str, config: RunnableConfig | None = None) -> dict[str, Any]:
        """The GraphSchema body: input, output, state, config and context JSON schemas (each may be None)."""
        async with self.graph(graph_id, config) as graph:
            return {"graph_id": graph_id, **_schemas_of(graph)}

    async def drawable(self, graph_id: str, xray: bool | int, config: RunnableConfig | None = None) -> dict[str, Any]:
        """Nodes and edges for drawing; subgraphs expanded ``xray`` levels deep; ValueError if not drawable."""
        async with self.graph(graph_id, config) as graph:
            try:
                drawn = (await graph.aget_graph(config, xray=xray)).to_json()
            except Exception as exc:
                raise ValueError(f"Graph '{graph_id}' cannot be drawn: {type(exc).__name__}: {exc}") from exc
        for node in drawn["nodes"]:
            # The reference hides the Python import path of each runnable node.
            if node.get("type") == "runnable" and isinstance(node.get("data"), dict):
                node["data"] = {k: v for k, v in node["data"].items() if k != "id"}
        return cast(dict[str, Any], to_jsonable(drawn))

    async def subgraphs(
        self, graph_id: str, namespace: str | None, recurse: bool, config: RunnableConfig | None = None
    ) -> dict[str, dict[str, Any]]:
        """Schemas of each subgraph by namespace (``parent|child`` when recursing); {} when there are none."""
        async with self.graph(graph_id, config) as graph:
            found: dict[str, dict[str, Any]] = {}
            async for name, sub in graph.aget_subgraphs(namespace=namespace, recurse=recurse):
                # A remote subgraph has no local schemas to offer.
                if isinstance(sub, Pregel):
                    found[name] = _schemas_of(sub)
            return found

    def _entry(self, graph_id: str) -> _Entry:
        try:
            return self._entries[graph_id]
        except KeyError:
            raise KeyError(graph_id) from None


def _load_entry(config: ProjectConfig, spec: GraphSpec) -> _Entry:
    """Import one graph and classify it as a ready graph or a factory."""

    def fail(problem: str, fix: str) -> NoReturn:
        raise _error(config, spec, problem, fix)

    module_ref, _, attr = spec.source.partition(":")
    module = _import_source(config, spec, module_ref)
    if attr:
        obj: Any = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                fail(f"{module_ref} has no attribute '{attr}'", 'check the name after ":"')
            obj = getattr(obj, part)
    else:
        obj = _first_graph(module)
        if obj is None:
            fail("no compiled graph or StateGraph in the module", 'name it explicitly as "module:attr"')
    if isinstance(obj, StateGraph):
        try:
            obj = obj.compile()
        except Exception as exc:
            raise _error(config, spec, f"compiling failed ({_one_line(exc)})", "fix the StateGraph") from exc
    if isinstance(obj, Pregel):
        return _Entry(spec, obj, None, context_keys=_keys_of(obj.context_schema))
    if not callable(obj) or isinstance(obj, type):
        fail(f"{type(obj).__name__} is not a graph", "point it at a compiled graph, a StateGraph or a factory")
    try:
        takes_config = _factory_takes_config(obj)
    except (TypeError, ValueError) as exc:
        fail(f"unusable factory ({exc})", "a graph factory takes no parameters or one (the RunnableConfig)")
    # Plain generator functions are a common way to write "set up, yield the graph, clean up".
    if inspect.isasyncgenfunction(obj):
        obj = asynccontextmanager(obj)
    elif inspect.isgeneratorfunction(obj):
        obj = contextlib.contextmanager(obj)
    return _Entry(spec, None, obj, takes_config=takes_config)


def _error(config: ProjectConfig, spec: GraphSpec, problem: str, fix: str) -> ConfigError:
    return ConfigError(f'{config.path}: graph "{spec.graph_id}" ({spec.source}): {problem}; {fix}')


def _import_source(config: ProjectConfig, spec: GraphSpec, module_ref: str) -> ModuleType:
    is_file = "/" in module_ref or "\\" in module_ref or module_ref.endswith((".py", *_JS_SUFFIXES))
    try:
        if not is_file:
            return importlib.import_module(module_ref)
        if module_ref.endswith(_JS_SUFFIXES):
            raise _error(config, spec, "JavaScript graphs are not supported", "serve Python graphs only")
        path = (config.root / module_ref).resolve()
        if not path.is_file():
            raise _error(config, spec, f"file {path} not found", "fix the path (it is relative to langgraph.json)")
        return import_file(path)
    except ConfigError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name and (module_ref == exc.name or module_ref.startswith(exc.name + ".")):
            fix = 'install it or list its directory in "dependencies"'
            raise _error(config, spec, f"module '{module_ref}' not found", fix) from exc
        fix = "install what the module imports"
        raise _error(config, spec, f"import failed at {_where(exc, config.root)} ({_one_line(exc)})", fix) from exc
    except Exception as exc:
        # Whatever user code raises while importing is reported, not crashed on.
        problem = f"import failed at {_where(exc, config.root)} ({_one_line(exc)})"
        raise _error(config, spec, problem, "fix the error in the module") from exc


def _where(exc: BaseException, root: Path) -> str:
    """`file:line` where the import failed: the innermost frame in the project's own files
    (the line the user has to fix), else the innermost frame."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if f.filename.startswith(str(root))] or frames
    if not own:
        return "an unknown line"
    return f"{own[-1].filename}:{own[-1].lineno}"


def import_file(path: Path) -> ModuleType:
    """Import a file under a name stable across processes, so pickles made by one worker load in another."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    name = f"graphyard_project_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
    if name in sys.modules:
        return sys.modules[name]  # several graphs in one file share one import
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered before running: dataclasses, pydantic and pickle look classes up in sys.modules.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _first_graph(module: ModuleType) -> Graph | _AnyStateGraph | None:
    values = list(vars(module).values())
    compiled = next((v for v in values if isinstance(v, Pregel)), None)
    return compiled if compiled is not None else next((v for v in values if isinstance(v, StateGraph)), None)


def _factory_takes_config(factory: Callable[..., Any]) -> bool:
    params = list(inspect.signature(factory).parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if len(required) > 1 or any(p.kind is p.KEYWORD_ONLY for p in required):
        raise TypeError(f"it requires {', '.join(p.name for p in required)}")
    return bool(positional) or any(p.kind is p.VAR_POSITIONAL for p in params)


async def _build(entry: _Entry, config: RunnableConfig | None, stack: AsyncExitStack) -> Graph:
    """Call a factory and unwrap what it returns: awaitable, (async) context manager, StateGraph."""
    assert entry.factory is not None
    base: dict[str, Any] = dict(config or {})
    # Factories commonly read config["configurable"][...] without a guard.
    base["configurable"] = dict(base.get("configurable") or {})
    made = entry.factory(cast(RunnableConfig, base)) if entry.takes_config else entry.factory()
    if inspect.isawaitable(made):
        made = await made
    if hasattr(made, "__aenter__") and hasattr(made, "__aexit__"):
        made = await stack.enter_async_context(made)
    elif hasattr(made, "__enter__") and hasattr(made, "__exit__"):
        made = stack.enter_context(made)
    if isinstance(made, StateGraph):
        made = made.compile()
    if not isinstance(made, Pregel):
        raise ValueError(
            f"Graph factory for '{entry.spec.graph_id}' ({entry.spec.source}) returned "
            f"{type(made).__name__}, expected a compiled graph or a StateGraph"
        )
    entry.context_keys = _keys_of(made.context_schema)
    return made


def _schemas_of(graph: Graph) -> dict[str, Any]:
    context = _attempt("context", graph, graph.get_context_jsonschema)
    return {
        "input_schema": _attempt("input", graph, graph.get_input_jsonschema),
        "output_schema": _attempt("output", graph, graph.get_output_jsonschema),
        "state_schema": _attempt("state", graph, lambda: _state_jsonschema(graph)),
        # The reference derives config_schema from the context schema; Pregel.config_schema is deprecated.
        "config_schema": dict(context) if context is not None else None,
        "context_schema": context,
    }


def _attempt(kind: str, graph: Graph, make: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
    """One unrepresentable type should cost one schema, not the whole response."""
    try:
        return make()
    except Exception:  # noqa: BLE001 - a schema is best effort: any failure answers null, as the reference does
        _log.warning("cannot build the %s schema of graph %s", kind, graph.get_name(), exc_info=True)
        return None


def _state_jsonschema(graph: Graph) -> dict[str, Any]:
    """The schema of the channels a client sees as state values, each typed by what it accepts."""
    channels = {
        key: channel.UpdateType
        for key in graph.stream_channels_list
        if isinstance(channel := graph.channels.get(key), BaseChannel)
    }
    if list(channels) == ["__root__"]:
        return TypeAdapter(channels["__root__"]).json_schema()
    # Title it like the input and output schemas: after the StateGraph's state class when there is one.
    state_class = getattr(getattr(graph, "builder", None), "state_schema", None)
    title = getattr(state_class, "__name__", None) or graph.get_name("State")
    # The functional TypedDict accepts any key, where pydantic models reject names like "_private".
    make_typeddict = cast(Any, TypedDict)
    try:
        return TypeAdapter(make_typeddict(title, channels, total=False)).json_schema()
    except _SCHEMA_ERRORS:
        typed = {k: (t if _schema_ok(t) else Any) for k, t in channels.items()}
        return TypeAdapter(make_typeddict(title, typed, total=False)).json_schema()


def _schema_ok(annotation: Any) -> bool:
    try:
        TypeAdapter(annotation).json_schema()
    except _SCHEMA_ERRORS:
        return False
    return True


def _keys_of(schema: Any) -> frozenset[str] | None:
    if schema is None:
        return None
    if inspect.isclass(schema) and issubclass(schema, BaseModel):
        return frozenset(schema.model_fields)
    if is_typeddict(schema):
        return frozenset(schema.__required_keys__ | schema.__optional_keys__)
    if dataclasses.is_dataclass(schema):
        return frozenset(f.name for f in dataclasses.fields(schema))
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
