"""`graphyard dev` startup errors: a bad project or a busy port stops the server with one clear line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.api.support import ROOT, free_port, graphyard_command

EXIT_DEADLINE = 30.0


def run_dev(config: Path, tmp_path: Path, port: int | None = None, env: dict[str, str] | None = None) -> Any:
    """Run `python -m graphyard dev` expecting it to exit on its own; return the CompletedProcess."""
    command = graphyard_command(config, port or free_port(), tmp_path / "graphyard.sqlite")
    return subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=EXIT_DEADLINE,
        check=False,
    )


def one_error_line(result: Any) -> str:
    """Assert a non-zero exit with exactly one non-empty stderr line, and return that line."""
    assert result.returncode != 0, f"graphyard started instead of failing:\n{result.stderr}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    line: str = lines[0]
    return line


def write(path: Path, content: Any) -> Path:
    """Write a JSON value (or raw text) to `path` and return it."""
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_missing_config_file_stops_startup_naming_the_file(tmp_path: Path) -> None:
    """A langgraph.json that does not exist exits non-zero with one line naming the path."""
    missing = tmp_path / "nowhere" / "langgraph.json"
    line = one_error_line(run_dev(missing, tmp_path))
    assert str(missing) in line
    assert "not found" in line


def test_invalid_json_config_stops_startup_naming_the_file(tmp_path: Path) -> None:
    """A langgraph.json with a syntax error exits non-zero with one line naming the file and the position."""
    config = write(tmp_path / "langgraph.json", '{"graphs": {"a": ')
    line = one_error_line(run_dev(config, tmp_path))
    assert str(config) in line
    assert "JSON" in line
    assert "line 1" in line


def test_config_that_is_not_an_object_stops_startup(tmp_path: Path) -> None:
    """A langgraph.json holding a JSON array is refused with one line naming the file."""
    config = write(tmp_path / "langgraph.json", [1, 2])
    line = one_error_line(run_dev(config, tmp_path))
    assert str(config) in line


def test_unknown_graph_file_stops_startup_naming_the_graph_and_file(tmp_path: Path) -> None:
    """A graph path whose file does not exist exits non-zero naming the graph, the missing file and the config."""
    config = write(tmp_path / "langgraph.json", {"graphs": {"agent": "./missing_agent.py:graph"}})
    line = one_error_line(run_dev(config, tmp_path))
    assert str(config) in line
    assert "missing_agent.py" in line
    assert "agent" in line


def test_unknown_graph_attribute_stops_startup(tmp_path: Path) -> None:
    """A graph path naming an attribute the module lacks exits non-zero naming the attribute."""
    write(tmp_path / "agent.py", "value = 1\n")
    config = write(tmp_path / "langgraph.json", {"graphs": {"agent": "./agent.py:graph"}})
    line = one_error_line(run_dev(config, tmp_path))
    assert str(config) in line
    assert "'graph'" in line


def test_unknown_graph_module_stops_startup(tmp_path: Path) -> None:
    """A `package.module:attr` graph whose module cannot be imported exits non-zero naming it."""
    config = write(tmp_path / "langgraph.json", {"graphs": {"agent": "no_such_package_xyz.agent:graph"}})
    line = one_error_line(run_dev(config, tmp_path))
    assert str(config) in line
    assert "no_such_package_xyz" in line


def test_graph_import_error_stops_startup_naming_the_missing_module(tmp_path: Path) -> None:
    """A graph file whose own import fails exits non-zero with one line giving the import error."""
    write(tmp_path / "agent.py", "import definitely_not_installed_module_xyz\n")
    config = write(tmp_path / "langgraph.json", {"graphs": {"agent": "./agent.py:graph"}})
    line = one_error_line(run_dev(config, tmp_path))
    assert str(config) in line
    assert "definitely_not_installed_module_xyz" in line


def test_graph_that_raises_at_import_stops_startup(tmp_path: Path) -> None:
    """A graph file raising during import exits non-zero with the exception's message, no traceback."""
    write(tmp_path / "agent.py", "raise RuntimeError('agent setup exploded')\n")
    config = write(tmp_path / "langgraph.json", {"graphs": {"agent": "./agent.py:graph"}})
    line = one_error_line(run_dev(config, tmp_path))
    assert str(config) in line
    assert "agent setup exploded" in line


def test_config_without_graphs_stops_startup(tmp_path: Path) -> None:
    """A langgraph.json with no `graphs` key is refused with one line naming the file."""
    config = write(tmp_path / "langgraph.json", {"dependencies": ["."]})
    line = one_error_line(run_dev(config, tmp_path))
    assert str(config) in line
    assert "graphs" in line


@pytest.mark.parametrize("value", ["abc", "-5"])
def test_invalid_numeric_environment_setting_stops_startup(tmp_path: Path, value: str) -> None:
    """A malformed numeric environment setting exits non-zero with one line naming the variable."""
    config = ROOT / "tests" / "graphs" / "langgraph.json"
    line = one_error_line(run_dev(config, tmp_path, env={"HTTP_MAX_REQUEST_BODY_BYTES": value}))
    assert "HTTP_MAX_REQUEST_BODY_BYTES" in line


def test_port_in_use_is_an_error_not_a_silent_move(tmp_path: Path) -> None:
    """Starting on a port another socket listens on exits non-zero with one line naming the port."""
    config = ROOT / "tests" / "graphs" / "langgraph.json"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_error_line(run_dev(config, tmp_path, port=port))
    assert str(port) in line
    assert "in use" in line


def test_graph_import_error_names_the_file_and_line(tmp_path: Path) -> None:
    """A graph file raising during import names the file and the line that raised, in one line."""
    write(tmp_path / "agent.py", "import os\n\nvalue = 1 / 0\n")
    config = write(tmp_path / "langgraph.json", {"graphs": {"agent": "./agent.py:graph"}})
    line = one_error_line(run_dev(config, tmp_path))
    assert f"{(tmp_path / 'agent.py').resolve()}:3" in line
    assert "ZeroDivisionError" in line
