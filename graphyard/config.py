"""Read a project's langgraph.json into a validated ProjectConfig with every path resolved."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

__all__ = ["ConfigError", "GraphSpec", "ProjectConfig", "apply_project", "load_project_config"]


class ConfigError(Exception):
    """The project's langgraph.json cannot be served."""


@dataclass(frozen=True)
class GraphSpec:
    """One entry of "graphs": where the graph lives, unparsed, and what it is for."""

    graph_id: str
    source: str
    description: str | None = None


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
    return ProjectConfig(
        path=path,
        root=root,
        graphs=_graphs(path, raw.get("graphs")),
        dependencies=_dependencies(path, root, raw.get("dependencies")),
        env=_env(path, root, raw.get("env")),
        auth=_optional_object(path, raw, "auth"),
        store=_store(path, _optional_object(path, raw, "store")),
        http=_optional_object(path, raw, "http") or {},
        webhooks=_optional_object(path, raw, "webhooks"),
        checkpointer=_checkpointer(path, _optional_object(path, raw, "checkpointer")),
        raw=raw,
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


def _env(path: Path, root: Path, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, str):
        env_file = (root / Path(value).expanduser()).resolve()
        if not env_file.is_file():
            raise ConfigError(f'{path}: env file "{value}" not found ({env_file}); create it or fix "env"')
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
