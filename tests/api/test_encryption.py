"""`encryption` in langgraph.json is not supported yet: startup refuses it in one line, never serving
the project with its data stored in plaintext."""

from __future__ import annotations

from pathlib import Path

from tests.api.support import GRAPHS_DIR
from tests.api.test_cli import one_error_line, run_dev, write


def test_encryption_key_stops_startup_naming_it(tmp_path: Path) -> None:
    """`graphyard dev` on a project with "encryption" exits non-zero with one line naming the key."""
    config = write(
        tmp_path / "langgraph.json",
        {"graphs": {"echo": f"{GRAPHS_DIR / 'graphs.py'}:echo"}, "encryption": {"path": "./encryption.py:enc"}},
    )
    line = one_error_line(run_dev(config, tmp_path))
    assert '"encryption"' in line
    assert str(config) in line
