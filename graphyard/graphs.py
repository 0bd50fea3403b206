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
import types
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, TypeAlias, Union, cast, get_args, get_origin, get_type_hints

from langchain_core.runnables import RunnableConfig
from langchain_core.utils.pydantic import create_model_v2
from langgraph.channels.base import BaseChannel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore
from langgraph_sdk.auth.types import BaseUser
from langgraph_sdk.runtime import AccessContext, ServerRuntime, _ExecutionRuntime, _ReadRuntime, _ServerRuntimeBase
from pydantic import BaseModel, TypeAdapter
from typing_extensions import is_typeddict

from graphyard.config import ConfigError, GraphSpec, ProjectConfig
from graphyard.serde import to_jsonable

__all__ = ["GraphAccess", "GraphRegistry"]

Graph: TypeAlias = Pregel[Any, Any, Any, Any]
_JS_SUFFIXES = (".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".jsx", ".tsx")
_DEFAULT_NAME = "LangGraph"  # what LangGraph calls a graph nobody named
_log = logging.getLogger(__name__)
# How pydantic says a type has no JSON schema (PydanticUserError is a TypeError; NameError for forward refs).
_SCHEMA_ERRORS = (TypeError, ValueError, NameError)


@dataclasses.dataclass(frozen=True, slots=True)
class GraphAccess:
    """Why a graph is built and for whom: what a factory taking a ``ServerRuntime`` is told."""

    context: AccessContext
    user: BaseUser | None = None
    run_context: Any = None  # the run's context; only for threads.create_run


@dataclasses.dataclass(frozen=True, slots=True)
class _Param:
    """One parameter a factory is called with: by position or by name, the config or the runtime."""

    name: str
    by_keyword: bool
    wants_runtime: bool


@dataclasses.dataclass
class _Entry:
    spec: GraphSpec
    graph: Graph | None  # set for graphs built once at load
    factory: Callable[..., Any] | None  # set for graphs built per use
    params: tuple[_Param, ...] = ()
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

    def name(self, graph_id: str) -> str:
        """The name a graph's system assistant gets: the compiled graph's own name when it was given one
        (as the reference does, e.g. "ReAct Agent"), else the graph id (always so for factories)."""
        graph = self._entry(graph_id).graph
        if graph is None or not graph.name or graph.name == _DEFAULT_NAME:
            return graph_id
        return graph.name

    def context_keys(self, graph_id: str) -> frozenset[str] | None:
        """Keys of the graph's context schema, or None when it has none (or a factory was never built)."""
        return self._entry(graph_id).context_keys

    @asynccontextmanager
    async def graph(
        self,
        graph_id: str,
        config: RunnableConfig | None = None,
        *,
        access: GraphAccess,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        store: BaseStore | None = None,
    ) -> AsyncIterator[Graph]:
        """Yield a copy of the graph bound to this saver and store; raises KeyError for an unknown id.
        A factory is called for this use (told `access` if it takes a runtime); what it returned as a
        context manager is exited when the use ends."""
        entry = self._entry(graph_id)
        async with AsyncExitStack() as stack:
            if entry.graph is not None:
                graph = entry.graph
            else:
                graph = await _build(entry, config, _runtime(access, store), stack)
            update: dict[str, Any] = {}
            if checkpointer is not None:
                update["checkpointer"] = checkpointer
            if store is not None:
                update["store"] = store
            if graph.name == _DEFAULT_NAME:
                update["name"] = graph_id
            # copy() leaves the shared instance untouched, so concurrent runs cannot see each other's saver.
            yield graph.copy(update=update) if update else graph

    async def schemas(
        self,
        graph_id: str,
        config: RunnableConfig | None = None,
        *,
        user: BaseUser | None = None,
        store: BaseStore | None = None,
    ) -> dict[str, Any]:
        """The GraphSchema body: input, output, state, config and context JSON schemas (each may be None)."""
        async with self.graph(graph_id, config, access=GraphAccess("assistants.read", user), store=store) as graph:
            return {"graph_id": graph_id, **_schemas_of(graph)}

    async def drawable(
        self,
        graph_id: str,
        xray: bool | int,
        config: RunnableConfig | None = None,
        *,
        user: BaseUser | None = None,
        store: BaseStore | None = None,
    ) -> dict[str, Any]:
        """Nodes and edges for drawing; subgraphs expanded ``xray`` levels deep; ValueError if not drawable."""
        async with self.graph(graph_id, config, access=GraphAccess("assistants.read", user), store=store) as graph:
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
        self,
        graph_id: str,
        namespace: str | None,
        recurse: bool,
        config: RunnableConfig | None = None,
        *,
        user: BaseUser | None = None,
        store: BaseStore | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Schemas of each subgraph by namespace (``parent|child`` when recursing); {} when there are none."""
        async with self.graph(graph_id, config, access=GraphAccess("assistants.read", user), store=store) as graph:
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
    if not attr:
        # As the reference: the module alone does not say which of its graphs to serve.
        fail("the path names no graph variable", f'add ":variable", e.g. "{module_ref}:graph"')
    module = _import_source(config, spec, module_ref)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            fail(f"{module_ref} has no attribute '{attr}'", 'check the name after ":"')
        obj = getattr(obj, part)
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
        params = _factory_params(obj)
    except (TypeError, ValueError) as exc:
        fail(
            f"unusable factory ({exc})",
            "a graph factory takes nothing, the RunnableConfig, a ServerRuntime (annotated, or named "
            '"runtime"), or both',
        )
    # Plain generator functions are a common way to write "set up, yield the graph, clean up".
    if inspect.isasyncgenfunction(obj):
        obj = asynccontextmanager(obj)
    elif inspect.isgeneratorfunction(obj):
        obj = contextlib.contextmanager(obj)
    return _Entry(spec, None, obj, params=params)


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


def load_reference(project: ProjectConfig, key: str, ref: Any) -> Any:
    """The object `ref` ("./file.py:name" or "package.module:name") names, for langgraph.json's `key`."""
    where = f"{project.path}: {key}"
    if not isinstance(ref, str) or ":" not in ref or not ref.partition(":")[2]:
        raise ConfigError(f'{where} must look like "./file.py:name" or "package.module:name", got {ref!r}')
    module_ref, _, attr = ref.partition(":")
    try:
        if "/" in module_ref or "\\" in module_ref or module_ref.endswith(".py"):
            path = (project.root / module_ref).resolve()
            if not path.is_file():
                raise ConfigError(f"{where} ({ref}): file {path} not found; fix the path (relative to langgraph.json)")
            module = import_file(path)
        else:
            module = importlib.import_module(module_ref)
    except ConfigError:
        raise
    except Exception as exc:
        # Whatever the user's module raises while importing is reported as one line.
        raise ConfigError(f"{where} ({ref}): import failed ({type(exc).__name__}: {exc})") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{where} ({ref}): {module_ref} has no attribute '{attr}'; check the name after ':'")
        obj = getattr(obj, part)
    return obj


def _factory_params(factory: Callable[..., Any]) -> tuple[_Param, ...]:
    """How to call a factory: its required parameters (at most two), or its first optional one;
    a parameter wants the runtime when annotated ServerRuntime or, unannotated, named "runtime"."""
    signature = inspect.signature(factory)
    hints = _type_hints(factory)
    named = [p for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    chosen = [p for p in named if p.default is p.empty]
    if len(chosen) > 2:
        raise TypeError(f"it requires {', '.join(p.name for p in chosen)}")
    if not chosen:
        optional = [p for p in named if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if optional:
            chosen = optional[:1]
        elif any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values()):
            return (_Param("*args", by_keyword=False, wants_runtime=False),)
    params = tuple(
        _Param(p.name, by_keyword=p.kind is p.KEYWORD_ONLY, wants_runtime=_wants_runtime(p, hints.get(p.name)))
        for p in chosen
    )
    if len(params) == 2 and params[0].wants_runtime == params[1].wants_runtime:
        raise TypeError(
            f"of its two parameters ({params[0].name}, {params[1].name}) exactly one must be the runtime: "
            "annotate it ServerRuntime"
        )
    return params


def _type_hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations, or none: a hint that cannot be resolved falls back to the raw annotation."""
    # An instance with __call__ keeps its annotations on the method.
    target = factory if inspect.isroutine(factory) else type(factory).__call__
    try:
        return get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable forward references are the user's business, not a crash
        return {}


def _wants_runtime(param: inspect.Parameter, hint: Any) -> bool:
    annotation = hint if hint is not None else param.annotation
    if annotation is inspect.Parameter.empty:
        return param.name == "runtime"
    if isinstance(annotation, str):  # a forward reference nobody could resolve
        return "ServerRuntime" in annotation or "_ExecutionRuntime" in annotation or "_ReadRuntime" in annotation
    return _is_runtime_type(annotation)


def _is_runtime_type(annotation: Any) -> bool:
    if annotation is ServerRuntime or get_origin(annotation) is ServerRuntime:
        return True
    if isinstance(annotation, type) and issubclass(annotation, _ServerRuntimeBase):
        return True
    origin = get_origin(annotation)
    if isinstance(origin, type) and issubclass(origin, _ServerRuntimeBase):
        return True
    if origin in (Union, types.UnionType):  # ServerRuntime | None, Optional[ServerRuntime[Ctx]]
        return any(_is_runtime_type(arg) for arg in get_args(annotation) if arg is not type(None))
    return False


def _runtime(access: GraphAccess, store: BaseStore | None) -> ServerRuntime[Any]:
    # The SDK's runtime classes are the public contract factories type against; the server builds them.
    bound = cast(BaseStore, store)
    if access.context == "threads.create_run":
        return _ExecutionRuntime(
            access_context=access.context, user=access.user, store=bound, context=access.run_context
        )
    return _ReadRuntime(access_context=access.context, user=access.user, store=bound)


async def _build(
    entry: _Entry, config: RunnableConfig | None, runtime: ServerRuntime[Any], stack: AsyncExitStack
) -> Graph:
    """Call a factory and unwrap what it returns: awaitable, (async) context manager, StateGraph."""
    assert entry.factory is not None
    base: dict[str, Any] = dict(config or {})
    # Factories commonly read config["configurable"][...] without a guard.
    base["configurable"] = dict(base.get("configurable") or {})
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for param in entry.params:
        value = runtime if param.wants_runtime else cast(RunnableConfig, base)
        if param.by_keyword:
            kwargs[param.name] = value
        else:
            args.append(value)
    made = entry.factory(*args, **kwargs)
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
    """The schema of the channels a client sees as state values, in the reference's shape: titled after
    the graph (``get_name("State")``), every field optional with a null default, typed by what its
    channel accepts (Any where that type has no JSON schema)."""
    channels = {
        key: channel.UpdateType
        for key in graph.stream_channels_list
        if isinstance(channel := graph.channels.get(key), BaseChannel)
    }
    if list(channels) == ["__root__"]:
        return TypeAdapter(channels["__root__"]).json_schema()
    fields = {key: (kind if _schema_ok(kind) else Any, None) for key, kind in channels.items()}
    # langchain-core's model factory accepts field names pydantic refuses (leading underscores).
    return create_model_v2(graph.get_name("State"), field_definitions=fields).model_json_schema()


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
