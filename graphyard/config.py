"""Read a project's langgraph.json into a validated ProjectConfig with every path resolved."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values

__all__ = ["ConfigError", "GraphSpec", "HttpConfig", "ProjectConfig", "apply_project", "load_project_config"]


# Every top-level key the langgraph CLI knows; build-only ones are accepted and have no effect here.
KNOWN_KEYS = frozenset(
    {
        "$schema",
        "graphs",
        "dependencies",
        "env",
        "auth",
        "store",
        "checkpointer",
        "http",
        "webhooks",
        "encryption",
        "priority",
        "ui",
        "ui_config",
        "disable_persistence",
        "python_version",
        "node_version",
        "api_version",
        "base_image",
        "image_distro",
        "pip_config_file",
        "pip_installer",
        "source",
        "dockerfile_lines",
        "keep_pkg_tools",
        "_INTERNAL_docker_tag",
    }
)


class ConfigError(Exception):
    """The project's langgraph.json cannot be served."""


@dataclass(frozen=True)
class GraphSpec:
    """One entry of "graphs": where the graph lives, unparsed, and what it is for."""

    graph_id: str
    source: str
    description: str | None = None


# Route groups the `http.disable_*` switches drop (webhooks is not a route group: runs just send none).
DISABLE_SWITCHES = ("assistants", "threads", "runs", "store", "meta", "ui", "mcp", "a2a", "webhooks")
CORS_KEYS = {
    "allow_origins": list,
    "allow_methods": list,
    "allow_headers": list,
    "allow_credentials": bool,
    "allow_origin_regex": str,
    "expose_headers": list,
    "max_age": int,
}


@dataclass(frozen=True)
class HttpConfig:
    """The `http` key: the project's own Starlette app beside ours, and how the server is exposed."""

    app: str | None = None
    cors: dict[str, Any] | None = None
    # (includes, excludes) glob patterns of request headers copied into a run's configurable.
    configurable_headers: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    disabled: frozenset[str] = frozenset()
    mount_prefix: str = ""
    middleware_order: Literal["middleware_first", "auth_first"] = "middleware_first"
    enable_custom_route_auth: bool = False


@dataclass(frozen=True)
class ProjectConfig:
    """What graphyard needs from langgraph.json; build-only keys stay in ``raw``."""

    path: Path
    root: Path
    graphs: dict[str, GraphSpec]
    dependencies: tuple[Path, ...]
    env: dict[str, str]
    auth: dict[str, Any] | None
    store: dict[str, Any] | None
    http: dict[str, Any]
    webhooks: dict[str, Any] | None
    checkpointer: dict[str, Any] | None
    raw: dict[str, Any]
    warnings: tuple[str, ...] = ()
    http_config: HttpConfig = HttpConfig()
    # `ui`: graph id -> its components' file (as written, relative to root); `ui_config`: {"shared": [...]}.
    ui: dict[str, str] = field(default_factory=dict)
    ui_config: dict[str, Any] = field(default_factory=dict)


def load_project_config(path: Path) -> ProjectConfig:
    """Parse and validate langgraph.json; any problem raises ConfigError naming the file and the fix."""
    path = Path(path).expanduser().resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; pass the path to your langgraph.json") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc}); check the file's permissions") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); fix the syntax"
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f'{path}: must be a JSON object like {{"graphs": {{...}}}}')
    root = path.parent
    warnings: list[str] = []
    unknown = sorted(key for key in raw if key not in KNOWN_KEYS)
    if unknown:
        warnings.append(f"{path}: unknown keys ignored: {', '.join(unknown)} (check their spelling)")
    env = _env(path, root, raw.get("env"), warnings)
    return ProjectConfig(
        path=path,
        root=root,
        graphs=_graphs(path, raw.get("graphs")),
        dependencies=_dependencies(path, root, raw.get("dependencies")),
        env=env,
        auth=_optional_object(path, raw, "auth"),
        store=_store(path, _optional_object(path, raw, "store")),
        http=_optional_object(path, raw, "http") or {},
        webhooks=_optional_object(path, raw, "webhooks"),
        checkpointer=_checkpointer(path, _optional_object(path, raw, "checkpointer")),
        raw=raw,
        http_config=_http_environment(_http(path, raw.get("http"), warnings), env),
        warnings=tuple(warnings),
        ui=_ui(path, root, raw.get("ui")),
        ui_config=_ui_config(path, raw.get("ui_config")),
    )


def apply_project(config: ProjectConfig) -> None:
    """Make the project importable and its environment visible, never overriding variables already set."""
    # Prepend in one go so the root ends up first and dependencies keep their listed order.
    wanted = [str(p) for p in (config.root, *config.dependencies)]
    fresh = [p for i, p in enumerate(wanted) if p not in sys.path and p not in wanted[:i]]
    sys.path[:0] = fresh
    for key, value in config.env.items():
        os.environ.setdefault(key, value)


def _graphs(path: Path, value: Any) -> dict[str, GraphSpec]:
    example = '"graphs": {"agent": "./agent.py:graph"}'
    if value is None:
        raise ConfigError(f"{path}: no graphs; add at least one, e.g. {example}")
    if not isinstance(value, dict):
        raise ConfigError(f'{path}: "graphs" must be an object, e.g. {example}')
    if not value:
        raise ConfigError(f'{path}: "graphs" is empty; add at least one, e.g. {example}')
    graphs: dict[str, GraphSpec] = {}
    for graph_id, entry in value.items():
        where = f'{path}: graph "{graph_id}"'
        if not graph_id.strip():
            raise ConfigError(f"{path}: a graph id is empty; give every graph a name")
        description: Any = None
        source: Any = entry
        if isinstance(entry, dict):
            source, description = entry.get("path"), entry.get("description")
            if description is not None and not isinstance(description, str):
                raise ConfigError(f'{where}: "description" must be a string or null')
        if not isinstance(source, str) or not source.strip():
            raise ConfigError(
                f'{where}: expected "path/to/file.py:attr", "package.module:attr" '
                f'or {{"path": ..., "description": ...}}, got {json.dumps(entry)}'
            )
        module, _, attr = source.strip().partition(":")
        if not module or (":" in source and not attr):
            raise ConfigError(f'{where}: "{source}" must look like "path/to/file.py:attr" or "package.module:attr"')
        graphs[graph_id] = GraphSpec(graph_id=graph_id, source=source.strip(), description=description)
    return graphs


def _dependencies(path: Path, root: Path, value: Any) -> tuple[Path, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
        raise ConfigError(f'{path}: "dependencies" must be a list of strings, e.g. ["."]')
    dirs: list[Path] = []
    for dep in value:
        # Like the langgraph CLI, only "./x", "../x" and absolute paths are local; the rest are pip specs.
        if not dep.startswith((".", "/", "~")):
            continue
        resolved = (root / Path(dep).expanduser()).resolve()
        if not resolved.is_dir():
            raise ConfigError(f'{path}: dependency "{dep}" is not a directory ({resolved}); fix or remove it')
        if resolved not in dirs:
            dirs.append(resolved)
    return tuple(dirs)


def _env(path: Path, root: Path, value: Any, warnings: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, str):
        env_file = (root / Path(value).expanduser()).resolve()
        if not env_file.exists():
            # As langgraph dev: templates name ".env" and ship only ".env.example".
            warnings.append(f'{path}: env file "{value}" not found ({env_file}); starting without it')
            return {}
        if not env_file.is_file():
            raise ConfigError(f'{path}: env "{value}" is not a file ({env_file}); fix "env"')
        # A bare "KEY" line has no value; it says nothing to set, so it is skipped.
        return {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    if not isinstance(value, dict):
        raise ConfigError(f'{path}: "env" must be an object of strings or the path to a .env file')
    env: dict[str, str] = {}
    for key, item in value.items():
        # JSON numbers and booleans are common here ({"PORT": 8000}); environment values are text.
        if isinstance(item, bool):
            env[key] = "true" if item else "false"
        elif isinstance(item, (str, int, float)):
            env[key] = str(item)
        else:
            raise ConfigError(f'{path}: env "{key}" must be a string, got {json.dumps(item)}')
    return env


def _ui(path: Path, root: Path, value: Any) -> dict[str, str]:
    """`ui`: {"agent": "./src/agent/ui.tsx"}; each file must exist inside the project (the bundler's rule)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) and v.strip() for v in value.values()):
        raise ConfigError(f'{path}: "ui" must map graph names to component files, e.g. {{"agent": "./ui.tsx"}}')
    for name, source in value.items():
        if not name.strip():
            raise ConfigError(f'{path}: a "ui" name is empty; use the graph id, e.g. {{"agent": "./ui.tsx"}}')
        resolved = (root / source).resolve()
        if not resolved.is_relative_to(root):
            raise ConfigError(f'{path}: ui "{name}": "{source}" is outside the project; keep it under {root}')
        if not resolved.is_file():
            raise ConfigError(f'{path}: ui "{name}": file "{source}" not found ({resolved}); fix the path')
    return dict(value)


def _ui_config(path: Path, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    shared = value.get("shared", []) if isinstance(value, dict) else None
    if not isinstance(shared, list) or not all(isinstance(s, str) for s in shared):
        raise ConfigError(f'{path}: "ui_config" must look like {{"shared": ["package-name", ...]}}')
    return dict(value)


def _optional_object(path: Path, raw: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, dict):
        raise ConfigError(f'{path}: "{key}" must be an object, got {json.dumps(value)}')
    return value


def _store(path: Path, value: dict[str, Any] | None) -> dict[str, Any] | None:
    """`store` with its `index` and `ttl` checked: {"index": {dims, embed, fields?}, "ttl": {...}}."""
    if value is None:
        return None
    index = value.get("index")
    if index is not None:
        where = f'{path}: "store.index"'
        if not isinstance(index, dict):
            raise ConfigError(
                f'{where} must be an object like {{"dims": 1536, "embed": "openai:text-embedding-3-small"}}'
            )
        dims = index.get("dims")
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
            raise ConfigError(
                f'{where}: "dims" must be a positive integer (the embedding size), got {json.dumps(dims)}'
            )
        embed = index.get("embed")
        if not isinstance(embed, str) or ":" not in embed:
            raise ConfigError(
                f'{where}: "embed" must be "provider:model" or "./path.py:function", got {json.dumps(embed)}'
            )
        fields = index.get("fields")
        if fields is not None and (not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)):
            raise ConfigError(f'{where}: "fields" must be a list of JSON paths like ["$"] or ["text"]')
    ttl = value.get("ttl")
    if ttl is not None:
        where = f'{path}: "store.ttl"'
        if not isinstance(ttl, dict):
            raise ConfigError(f'{where} must be an object like {{"default_ttl": 60, "sweep_interval_minutes": 5}}')
        _minutes(where, ttl, "default_ttl")
        _minutes(where, ttl, "sweep_interval_minutes")
        if not isinstance(ttl.get("refresh_on_read", True), bool):
            raise ConfigError(f'{where}: "refresh_on_read" must be true or false')
    return value


def _checkpointer(path: Path, value: dict[str, Any] | None) -> dict[str, Any] | None:
    """`checkpointer` with its `ttl` checked: {"strategy": "delete"|"keep_latest", "default_ttl", ...}."""
    if value is None or value.get("ttl") is None:
        return value
    ttl = value["ttl"]
    where = f'{path}: "checkpointer.ttl"'
    if not isinstance(ttl, dict):
        raise ConfigError(f'{where} must be an object like {{"strategy": "delete", "default_ttl": 43200}}')
    if ttl.get("strategy", "delete") not in ("delete", "keep_latest"):
        raise ConfigError(f'{where}: "strategy" must be "delete" or "keep_latest", got {json.dumps(ttl["strategy"])}')
    _minutes(where, ttl, "default_ttl")
    _minutes(where, ttl, "sweep_interval_minutes")
    limit = ttl.get("sweep_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f'{where}: "sweep_limit" must be a positive integer, got {json.dumps(limit)}')
    return value


def _minutes(where: str, block: dict[str, Any], key: str) -> None:
    value = block.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        raise ConfigError(f'{where}: "{key}" must be a positive number of minutes or null, got {json.dumps(value)}')


def _http_environment(http: HttpConfig, project_env: dict[str, str]) -> HttpConfig:
    """The reference's MOUNT_PREFIX and CORS_ALLOW_ORIGINS variables, read where langgraph.json's `http` is.

    MOUNT_PREFIX wins over `http.mount_prefix` (a deployment moves a project without editing it);
    CORS_ALLOW_ORIGINS (comma-separated) only applies when the project sets no `http.cors` policy.
    """

    def variable(name: str) -> str:
        # As apply_project: the process environment wins over the project's env file.
        return os.environ.get(name) or project_env.get(name) or ""

    prefix = variable("MOUNT_PREFIX").strip()
    if prefix:
        http = replace(http, mount_prefix=_mount_prefix("environment variable MOUNT_PREFIX", prefix))
    origins = [o.strip() for o in variable("CORS_ALLOW_ORIGINS").split(",") if o.strip()]
    if origins and http.cors is None:
        http = replace(http, cors={"allow_origins": origins})
    return http


def _http(path: Path, value: Any, warnings: list[str]) -> HttpConfig:
    if value is None:
        return HttpConfig()
    where = f'{path}: "http"'
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object, got {json.dumps(value)}")
    known = {
        "app",
        "cors",
        "configurable_headers",
        "mount_prefix",
        "middleware_order",
        "enable_custom_route_auth",
        "logging_headers",
        *(f"disable_{name}" for name in DISABLE_SWITCHES),
    }
    unknown = sorted(set(value) - known)
    if unknown:
        warnings.append(f"{where}: unknown keys ignored: {', '.join(unknown)}")
    if value.get("logging_headers") is not None:
        warnings.append(f'{where}: "logging_headers" has no effect (access log lines carry no request headers)')
    app = value.get("app")
    if app is not None and (not isinstance(app, str) or ":" not in app or app.endswith(":")):
        raise ConfigError(f'{where}.app must look like "./path/to/file.py:app" or "package.module:app"')
    for key in ("enable_custom_route_auth", *(f"disable_{name}" for name in DISABLE_SWITCHES)):
        if not isinstance(value.get(key, False), bool):
            raise ConfigError(f"{where}.{key} must be true or false, got {json.dumps(value[key])}")
    order = value.get("middleware_order") or "middleware_first"
    if order not in ("middleware_first", "auth_first"):
        raise ConfigError(
            f'{where}.middleware_order must be "middleware_first" or "auth_first", got {json.dumps(order)}'
        )
    return HttpConfig(
        app=app,
        cors=_cors(where, value.get("cors")),
        configurable_headers=_header_patterns(where, value.get("configurable_headers")),
        disabled=frozenset(name for name in DISABLE_SWITCHES if value.get(f"disable_{name}")),
        mount_prefix=_mount_prefix(f"{where}.mount_prefix", value.get("mount_prefix")),
        middleware_order="auth_first" if order == "auth_first" else "middleware_first",
        enable_custom_route_auth=bool(value.get("enable_custom_route_auth", False)),
    )


def _cors(where: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f'{where}.cors must be an object, e.g. {{"allow_origins": ["https://app.example"]}}')
    for key, item in value.items():
        kind = CORS_KEYS.get(key)
        if kind is None:
            raise ConfigError(f"{where}.cors: unknown key {key!r}; expected one of {', '.join(CORS_KEYS)}")
        if kind is list:
            ok = isinstance(item, list) and all(isinstance(x, str) for x in item)
        else:
            ok = isinstance(item, kind) and not (kind is int and isinstance(item, bool))
        if not ok:
            wanted = "a list of strings" if kind is list else kind.__name__
            raise ConfigError(f"{where}.cors.{key} must be {wanted}, got {json.dumps(item)}")
    return dict(value)


def _header_patterns(where: str, value: Any) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f'{where}.configurable_headers must be an object like {{"includes": ["x-user-*"]}}')
    lists: dict[str, tuple[str, ...]] = {}
    for name in ("includes", "excludes"):
        # The reference reads the singular spellings too.
        item = value.get(name, value.get(name.removesuffix("s")))
        if item is None:
            item = []
        if not isinstance(item, list) or not all(isinstance(x, str) for x in item):
            raise ConfigError(f"{where}.configurable_headers.{name} must be a list of header patterns")
        lists[name] = tuple(x.lower() for x in item)
    return lists["includes"], lists["excludes"]


def _mount_prefix(where: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not value.startswith("/") or value.endswith("/") or value == "/noauth":
        raise ConfigError(f'{where} must start with "/" and not end with "/", e.g. "/api"')
    return value
