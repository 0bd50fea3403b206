"""langgraph.json parsing: every way it can be wrong, env, dependencies and applying a project."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graphyard.config import ConfigError, GraphSpec, HttpConfig, apply_project, load_project_config

ENV_KEYS = ("GRAPHYARD_T_A", "GRAPHYARD_T_B", "GRAPHYARD_T_PORT", "GRAPHYARD_T_FLAG", "GRAPHYARD_T_SET")


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Restore sys.path and the test's environment variables whatever apply_project did."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    for key in ENV_KEYS:
        # setenv then delenv records the original state, so teardown removes what the test set.
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    yield


def write_config(tmp_path: Path, content: Any) -> Path:
    """Write langgraph.json (a JSON value, or raw text) into tmp_path."""
    path = tmp_path / "langgraph.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def config_error(path: Path) -> str:
    """Load the config expecting a one-line ConfigError that names the file; return its text."""
    with pytest.raises(ConfigError) as info:
        load_project_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path.resolve()) in message
    return message


def test_minimal_config_is_loaded_with_defaults(tmp_path: Path) -> None:
    """A config with only graphs loads with empty env, no dependencies and an empty http block."""
    config = load_project_config(write_config(tmp_path, {"graphs": {"agent": "./agent.py:graph"}}))
    assert config.path == tmp_path.resolve() / "langgraph.json"
    assert config.root == tmp_path.resolve()
    assert config.graphs == {"agent": GraphSpec("agent", "./agent.py:graph", None)}
    assert (config.dependencies, config.env, config.http) == ((), {}, {})
    assert (config.auth, config.store, config.webhooks, config.checkpointer) == (None, None, None, None)


def test_object_graph_entry_carries_its_description(tmp_path: Path) -> None:
    """A graph given as {"path", "description"} keeps both."""
    raw = {"graphs": {"a": {"path": "pkg.mod:graph", "description": "Does A"}}, "auth": {"path": "./auth.py:auth"}}
    config = load_project_config(write_config(tmp_path, raw))
    assert config.graphs["a"] == GraphSpec("a", "pkg.mod:graph", "Does A")
    assert config.auth == {"path": "./auth.py:auth"}
    assert config.raw == raw


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    """A path with no file behind it is reported as not found."""
    assert "not found" in config_error(tmp_path / "langgraph.json")


def test_invalid_json_is_an_error(tmp_path: Path) -> None:
    """Broken JSON is reported with its position."""
    assert "invalid JSON at line 1" in config_error(write_config(tmp_path, '{"graphs": '))


def test_non_object_is_an_error(tmp_path: Path) -> None:
    """A JSON array at the top level is refused."""
    assert "must be a JSON object" in config_error(write_config(tmp_path, ["graphs"]))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, "no graphs"),
        ({"graphs": {}}, "is empty"),
        ({"graphs": ["./a.py:g"]}, "must be an object"),
        ({"graphs": {"a": 3}}, 'graph "a": expected'),
        ({"graphs": {"a": {"description": "no path"}}}, 'graph "a": expected'),
        ({"graphs": {"a": {"path": "./a.py:g", "description": 1}}}, '"description" must be a string'),
        ({"graphs": {"a": "./a.py:"}}, 'graph "a": "./a.py:" must look like'),
        ({"graphs": {"a": "a:g"}, "auth": "./auth.py:auth"}, '"auth" must be an object'),
        ({"graphs": {"a": "a:g"}, "dependencies": "."}, '"dependencies" must be a list'),
        ({"graphs": {"a": "a:g"}, "env": ["A=1"]}, '"env" must be an object'),
        ({"graphs": {"a": "a:g"}, "env": {"A": {"nested": 1}}}, 'env "A" must be a string'),
    ],
)
def test_invalid_content_is_an_error(tmp_path: Path, raw: dict[str, Any], expected: str) -> None:
    """Each malformed key gives a one-line error naming the file and the problem."""
    assert expected in config_error(write_config(tmp_path, raw))


def test_env_object_values_become_strings(tmp_path: Path) -> None:
    """Env given inline keeps strings and turns JSON numbers and booleans into text."""
    raw = {"graphs": {"a": "a:g"}, "env": {"GRAPHYARD_T_A": "x", "GRAPHYARD_T_PORT": 8000, "GRAPHYARD_T_FLAG": True}}
    config = load_project_config(write_config(tmp_path, raw))
    assert config.env == {"GRAPHYARD_T_A": "x", "GRAPHYARD_T_PORT": "8000", "GRAPHYARD_T_FLAG": "true"}


def test_env_dotenv_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    """Env given as a path is a dotenv file next to langgraph.json."""
    (tmp_path / ".env").write_text("GRAPHYARD_T_A=from-file\n# comment\nGRAPHYARD_T_B='quoted value'\n")
    config = load_project_config(write_config(tmp_path, {"graphs": {"a": "a:g"}, "env": ".env"}))
    assert config.env == {"GRAPHYARD_T_A": "from-file", "GRAPHYARD_T_B": "quoted value"}


def test_missing_env_file_is_a_warning(tmp_path: Path) -> None:
    """A dotenv path that does not exist yet starts with no variables and a warning, as langgraph dev."""
    config = load_project_config(write_config(tmp_path, {"graphs": {"a": "a:g"}, "env": ".env.missing"}))
    assert config.env == {}
    assert len(config.warnings) == 1
    assert 'env file ".env.missing" not found' in config.warnings[0]


def test_env_naming_a_directory_is_an_error(tmp_path: Path) -> None:
    """An env path that exists but is not a file cannot be read: an error naming it."""
    (tmp_path / "envdir").mkdir()
    assert 'env "envdir" is not a file' in config_error(
        write_config(tmp_path, {"graphs": {"a": "a:g"}, "env": "envdir"})
    )


def test_unknown_top_level_keys_are_named_in_a_warning(tmp_path: Path) -> None:
    """Keys the langgraph CLI does not know are named; known build-only keys are not."""
    raw = {"graphs": {"a": "a:g"}, "grahps": {}, "zzz": 1, "image_distro": "wolfi", "$schema": "x"}
    config = load_project_config(write_config(tmp_path, raw))
    assert len(config.warnings) == 1
    assert "unknown keys ignored: grahps, zzz" in config.warnings[0]


def test_local_dependencies_are_resolved_and_pip_specs_ignored(tmp_path: Path) -> None:
    """Local dependency dirs resolve against the config dir; package specs are left to the installer."""
    (tmp_path / "libs" / "shared").mkdir(parents=True)
    raw = {"graphs": {"a": "a:g"}, "dependencies": [".", "./libs/shared", "langchain-openai>=0.2", "."]}
    config = load_project_config(write_config(tmp_path, raw))
    assert config.dependencies == (tmp_path.resolve(), (tmp_path / "libs" / "shared").resolve())


def test_missing_local_dependency_is_an_error(tmp_path: Path) -> None:
    """A local dependency that is not a directory is reported."""
    message = config_error(write_config(tmp_path, {"graphs": {"a": "a:g"}, "dependencies": ["./nope"]}))
    assert 'dependency "./nope" is not a directory' in message


def test_apply_project_puts_root_and_dependencies_first_once(tmp_path: Path) -> None:
    """Applying twice leaves the root then each dependency at the front of sys.path exactly once."""
    (tmp_path / "libs").mkdir()
    raw = {"graphs": {"a": "a:g"}, "dependencies": ["./libs"]}
    config = load_project_config(write_config(tmp_path, raw))
    apply_project(config)
    apply_project(config)
    root, libs = str(tmp_path.resolve()), str((tmp_path / "libs").resolve())
    assert sys.path[:2] == [root, libs]
    assert sys.path.count(root) == sys.path.count(libs) == 1


def test_apply_project_sets_env_without_overriding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Project env fills unset variables and never replaces one already in the environment."""
    monkeypatch.setenv("GRAPHYARD_T_SET", "from-shell")
    raw = {"graphs": {"a": "a:g"}, "env": {"GRAPHYARD_T_SET": "from-config", "GRAPHYARD_T_A": "new"}}
    apply_project(load_project_config(write_config(tmp_path, raw)))
    assert os.environ["GRAPHYARD_T_SET"] == "from-shell"
    assert os.environ["GRAPHYARD_T_A"] == "new"


@pytest.mark.parametrize(
    ("block", "named"),
    [
        ({"store": {"ttl": {"default_ttl": "soon"}}}, "default_ttl"),
        ({"store": {"ttl": {"sweep_interval_minutes": 0}}}, "sweep_interval_minutes"),
        ({"store": {"ttl": {"refresh_on_read": "yes"}}}, "refresh_on_read"),
        ({"store": {"index": {"dims": 0, "embed": "fake:model"}}}, "dims"),
        ({"store": {"index": {"dims": 4, "embed": "nocolon"}}}, "embed"),
        ({"store": {"index": {"dims": 4, "embed": "a:b", "fields": "text"}}}, "fields"),
        ({"checkpointer": {"ttl": {"strategy": "archive"}}}, "strategy"),
        ({"checkpointer": {"ttl": {"default_ttl": -1}}}, "default_ttl"),
        ({"checkpointer": {"ttl": {"sweep_limit": 0}}}, "sweep_limit"),
    ],
)
def test_bad_store_and_checkpointer_settings_name_the_field(tmp_path: Path, block: dict[str, Any], named: str) -> None:
    """A store or checkpointer setting of the wrong type stops loading with one line naming the field."""
    message = config_error(write_config(tmp_path, {"graphs": {"a": "./a.py:g"}, **block}))
    assert named in message


def test_good_store_and_checkpointer_settings_load(tmp_path: Path) -> None:
    """Valid `store.ttl`, `store.index` and `checkpointer.ttl` blocks are kept as written."""
    store = {"ttl": {"default_ttl": 1.5, "sweep_interval_minutes": 1}, "index": {"dims": 4, "embed": "a.py:f"}}
    checkpointer = {"ttl": {"strategy": "keep_latest", "default_ttl": 60}}
    raw = {"graphs": {"a": "./a.py:g"}, "store": store, "checkpointer": checkpointer}
    config = load_project_config(write_config(tmp_path, raw))
    assert (config.store, config.checkpointer) == (store, checkpointer)


def test_ui_and_ui_config_load_as_written(tmp_path: Path) -> None:
    """`ui` maps graph names to component files in the project; `ui_config.shared` lists packages."""
    (tmp_path / "ui.tsx").write_text("export default {};\n")
    raw = {"graphs": {"a": "a:g"}, "ui": {"a": "./ui.tsx"}, "ui_config": {"shared": ["clsx"]}}
    config = load_project_config(write_config(tmp_path, raw))
    assert (config.ui, config.ui_config) == ({"a": "./ui.tsx"}, {"shared": ["clsx"]})


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"ui": ["./ui.tsx"]}, '"ui" must map graph names to component files'),
        ({"ui": {"a": 3}}, '"ui" must map graph names to component files'),
        ({"ui": {"a": "./missing.tsx"}}, 'file "./missing.tsx" not found'),
        ({"ui": {"a": "../outside.tsx"}}, "is outside the project"),
        ({"ui": {"a": "./ui.tsx"}, "ui_config": {"shared": "clsx"}}, '"ui_config" must look like'),
        ({"ui": {"a": "./ui.tsx"}, "ui_config": []}, '"ui_config" must look like'),
    ],
)
def test_bad_ui_keys_are_refused_with_one_line(tmp_path: Path, extra: dict[str, Any], expected: str) -> None:
    """A `ui` entry that is not a file inside the project, or a malformed `ui_config`, says what to fix."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "ui.tsx").write_text("export default {};\n")
    (tmp_path / "outside.tsx").write_text("export default {};\n")
    assert expected in config_error(write_config(project, {"graphs": {"a": "a:g"}, **extra}))


@pytest.mark.parametrize(
    ("http", "expected"),
    [
        ({"app": "no_colon"}, '"http".app must look like'),
        ({"mount_prefix": "api/"}, "mount_prefix must start with"),
        ({"mount_prefix": "/api/"}, "mount_prefix must start with"),
        ({"cors": {"allow_origins": "*"}}, "cors.allow_origins must be a list of strings"),
        ({"cors": {"max_age": True}}, "cors.max_age must be int"),
        ({"cors": {"allow_everything": True}}, "cors: unknown key"),
        ({"middleware_order": "sideways"}, "middleware_order must be"),
        ({"disable_store": "yes"}, "disable_store must be true or false"),
        ({"configurable_headers": {"includes": "x-*"}}, "configurable_headers.includes must be a list"),
        ([], '"http" must be an object'),
    ],
)
def test_bad_http_settings_are_errors(tmp_path: Path, http: Any, expected: str) -> None:
    """Every malformed `http` setting is one error line naming it."""
    assert expected in config_error(write_config(tmp_path, {"graphs": {"a": "a:g"}, "http": http}))


def test_http_settings_are_read(tmp_path: Path) -> None:
    """The `http` block becomes typed settings; singular header spellings and unknown keys are accepted."""
    http = {
        "app": "./app.py:app",
        "cors": {"allow_origins": ["https://a.example"], "max_age": 5},
        "configurable_headers": {"include": ["X-User-*"], "exclude": ["x-user-secret"]},
        "disable_store": True,
        "disable_webhooks": True,
        "mount_prefix": "/api",
        "middleware_order": "auth_first",
        "enable_custom_route_auth": True,
        "surprise": 1,
    }
    config = load_project_config(write_config(tmp_path, {"graphs": {"a": "a:g"}, "http": http}))
    assert config.http_config == HttpConfig(
        app="./app.py:app",
        cors={"allow_origins": ["https://a.example"], "max_age": 5},
        configurable_headers=(("x-user-*",), ("x-user-secret",)),
        disabled=frozenset({"store", "webhooks"}),
        mount_prefix="/api",
        middleware_order="auth_first",
        enable_custom_route_auth=True,
    )
    assert any("unknown keys ignored: surprise" in w for w in config.warnings)
