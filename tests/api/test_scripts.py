"""Project hygiene an outside contributor meets first: the licence and the README's test command."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.api.support import ROOT


def test_license_is_mit_as_pyproject_says() -> None:
    """LICENSE holds the MIT licence of "The graphyard authors", as pyproject.toml declares."""
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "The graphyard authors" in text
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "MIT"


@pytest.mark.timeout(900)
def test_scripts_test_without_shared_runs_own_tests_and_says_conformance_was_skipped(tmp_path: Path) -> None:
    """Without the shared conformance suite, scripts/test runs the project's tests (and the fuzz stages, cut
    to 10 s here: one second left no time for a single request on a busy machine), explains that the
    conformance stage needs the suite, and succeeds."""
    args = [str(ROOT / "scripts" / "test"), "tests/unit/test_config.py", "-q", "-p", "no:cacheprovider"]
    env = {**os.environ, "SHARED_DIR": str(tmp_path / "no-shared"), "CI": "", "FUZZ_SECONDS": "10"}
    local = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=840, check=False)
    assert local.returncode == 0, local.stderr
    assert "passed" in local.stdout
    assert "skipped the conformance stage" in local.stderr
    assert str(tmp_path / "no-shared" / "conformance") in local.stderr
