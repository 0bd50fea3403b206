"""MCP tool names from assistant names: valid for the MCP SDK's rule, and distinct however names repeat."""

from __future__ import annotations

import uuid

from mcp.shared.tool_name_validation import validate_tool_name

from graphyard.api.mcp import tool_name
from graphyard.records import Assistant


def _assistant(name: str, assistant_id: str | None = None) -> Assistant:
    return Assistant(
        assistant_id=assistant_id or str(uuid.uuid4()),
        graph_id="g",
        config={},
        context={},
        metadata={},
        name=name,
        description=None,
        version=1,
        created_at="2026-01-01T00:00:00+00:00",
        updated_at="2026-01-01T00:00:00+00:00",
    )


def test_names_are_made_valid_tool_names() -> None:
    """Characters MCP does not allow become `_`; an empty name and an overlong one still give a valid name."""
    for raw, expected in [("My agent!", "My_agent_"), ("ok.v2-b_c", "ok.v2-b_c"), ("", "assistant"), ("é", "_")]:
        assert tool_name(_assistant(raw), set()) == expected
    long = tool_name(_assistant("x" * 300), set())
    assert len(long) == 128
    assert validate_tool_name(long).is_valid


def test_repeated_names_stay_distinct_and_valid() -> None:
    """A taken name gets the id's head; if even that is taken, the whole id, which is unique."""
    shared = "0000abcd-0000-4000-8000-00000000000"
    taken: set[str] = set()
    names = []
    for i in range(3):
        name = tool_name(_assistant("x" * 200, f"{shared}{i}"), taken)
        taken.add(name)
        names.append(name)
    assert len(set(names)) == 3
    assert names[1].endswith("_0000abcd")
    assert names[2].endswith(f"_{shared}2")
    assert all(validate_tool_name(n).is_valid and len(n) <= 128 for n in names)
