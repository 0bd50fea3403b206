"""A priority handler for tests: a thread's `tier` (thread metadata, else run metadata) sets its priority."""

from __future__ import annotations

import warnings

from langgraph_sdk import Priority, PriorityContext, PrioritySettings
from langgraph_sdk.encryption import LangGraphBetaWarning

TIERS = {"urgent": -5, "normal": 0, "low": 5}

with warnings.catch_warnings():
    warnings.simplefilter("ignore", LangGraphBetaWarning)
    priority = Priority()


@priority.assign
async def assign(ctx: PriorityContext) -> PrioritySettings | None:
    """Urgent threads run first and low ones last; a thread without a tier gets the defaults."""
    tier = ctx.thread_metadata.get("tier") or ctx.run_metadata.get("tier")
    if tier == "broken":
        return {"priority": 99}
    if tier is None:
        return None
    return {"priority": TIERS[tier], "fairness_group": f"group-{tier}"}
