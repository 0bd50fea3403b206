"""Resolving langgraph.json's store, checkpointer and priority keys: what loads, and one-line errors."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graphyard.config import ConfigError, load_project_config
from graphyard.plugins import load_plugins


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Restore sys.path whatever loading did."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield


def project(tmp_path: Path, **keys: Any) -> Any:
    """Load a langgraph.json with the given top-level keys beside one graph entry."""
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"a": "./a.py:g"}, **keys}))
    return load_project_config(path)


def error_line(tmp_path: Path, **keys: Any) -> str:
    """The one-line ConfigError that loading the plugins raises."""
    with pytest.raises(ConfigError) as info:
        load_plugins(project(tmp_path, **keys))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults_without_any_key(tmp_path: Path) -> None:
    """Without store, checkpointer or priority: no index, no item TTL, threads never expire, no priority."""
    plugins = load_plugins(project(tmp_path))
    assert (plugins.store.index, plugins.store.ttl, plugins.priority) == (None, None, None)
    assert plugins.thread_ttl.default_minutes is None
    assert plugins.thread_ttl.strategy == "delete"


def test_store_and_thread_ttl_are_resolved(tmp_path: Path) -> None:
    """store.ttl becomes LangGraph's TTLConfig; checkpointer.ttl the thread policy."""
    plugins = load_plugins(
        project(
            tmp_path,
            store={"ttl": {"default_ttl": 10, "refresh_on_read": False}},
            checkpointer={"ttl": {"strategy": "keep_latest", "default_ttl": 60, "sweep_interval_minutes": 2}},
        )
    )
    assert plugins.store.ttl == {"refresh_on_read": False, "default_ttl": 10.0, "sweep_interval_minutes": 5.0}
    assert (plugins.thread_ttl.strategy, plugins.thread_ttl.default_minutes) == ("keep_latest", 60)
    assert plugins.thread_ttl.sweep_minutes == 2.0


def test_embed_function_from_a_file_is_loaded(tmp_path: Path) -> None:
    """store.index.embed "./embed.py:embed" resolves to that function, with dims and fields kept."""
    (tmp_path / "embed.py").write_text("def embed(texts):\n    return [[1.0, 0.0] for _ in texts]\n")
    plugins = load_plugins(
        project(tmp_path, store={"index": {"dims": 2, "embed": "./embed.py:embed", "fields": ["t"]}})
    )
    index = plugins.store.index
    assert index is not None
    assert (index["dims"], index["fields"]) == (2, ["t"])
    assert callable(index["embed"])


def test_missing_embed_function_is_one_line(tmp_path: Path) -> None:
    """An embed reference to a missing attribute names the key and the fix."""
    (tmp_path / "embed.py").write_text("x = 1\n")
    message = error_line(tmp_path, store={"index": {"dims": 2, "embed": "./embed.py:nope"}})
    assert "store.index.embed" in message
    assert "nope" in message


@pytest.mark.skipif(importlib.util.find_spec("langchain") is not None, reason="langchain is installed here")
def test_provider_embed_without_langchain_says_what_to_install(tmp_path: Path) -> None:
    """A "provider:model" embed needs LangChain's init_embeddings: the line says to install it."""
    message = error_line(tmp_path, store={"index": {"dims": 2, "embed": "openai:text-embedding-3-small"}})
    assert "init_embeddings" in message
    assert "pip install langchain langchain-openai" in message


def test_priority_path_must_name_a_priority_object(tmp_path: Path) -> None:
    """priority.path naming something that is not a langgraph_sdk.Priority is refused in one line."""
    (tmp_path / "prio.py").write_text("priority = object()\n")
    message = error_line(tmp_path, priority={"path": "./prio.py:priority"})
    assert "langgraph_sdk.Priority" in message


def test_encryption_path_must_name_an_encryption_object(tmp_path: Path) -> None:
    """encryption.path naming something that is not a langgraph_sdk.Encryption is refused in one line."""
    (tmp_path / "enc.py").write_text("encryption = object()\n")
    message = error_line(tmp_path, encryption={"path": "./enc.py:encryption"})
    assert "langgraph_sdk.Encryption" in message
    assert "encryption.path" in message


def test_encryption_needs_both_halves_of_a_pair(tmp_path: Path) -> None:
    """An encryptor without its decryptor would write what it cannot read back: refused, naming the missing one."""
    (tmp_path / "enc.py").write_text(
        "import warnings\n"
        "from langgraph_sdk import Encryption\n"
        "warnings.simplefilter('ignore')\n"
        "encryption = Encryption()\n"
        "@encryption.encrypt.json\n"
        "async def enc(ctx, data):\n"
        "    return data\n"
    )
    message = error_line(tmp_path, encryption={"path": "./enc.py:encryption"})
    assert "@encryption.decrypt.json is missing" in message
