"""Run `python -m graphyard <operator command>` as an operator would, and read what it printed."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from graphyard.cli import main
from tests.api.support import ROOT

CLI_DEADLINE = 120.0


@dataclass(frozen=True)
class Result:
    """What an operator command did: exit status and output."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The command's `--json` output, parsed; the command must have succeeded."""
        assert self.code == 0, f"exit {self.code}: {self.stderr}"
        return orjson.loads(self.stdout)


def _in_process(args: tuple[str, ...]) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse refusing the arguments: a result, not the end of the test session
            code = exc.code if isinstance(exc.code, int) else 2
    return Result(code, out.getvalue(), err.getvalue())


async def graphyard(*args: str) -> Result:
    """`graphyard ARGS` through the CLI's entry point, in a thread of this process (importing
    graphyard again for each command would take seconds on a loaded machine)."""
    return await asyncio.wait_for(asyncio.to_thread(_in_process, args), CLI_DEADLINE)


async def graphyard_process(*args: str, env: Mapping[str, str] | None = None) -> Result:
    """`python -m graphyard ARGS` in a subprocess, with a deadline."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "graphyard",
        *args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), CLI_DEADLINE)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())
