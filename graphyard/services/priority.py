"""Run priority: the project's `@priority.assign` function decides a thread's settings at its first run.

The settings are stored on the thread, and every run enqueued on it takes the thread's priority, so the
claim (lowest priority first, then oldest) never reorders one thread's own runs. The function is called
outside the run's transaction (it is user code and may be slow); when two first runs race, the first
to commit stores its result and the other's is dropped, as the reference documents.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from langgraph_sdk import PriorityContext

from graphyard.logs import get_logger
from graphyard.records import Assistant, Json
from graphyard.services.context import Services
from graphyard.storage.ports import Session

log = get_logger("graphyard.priority")

DEFAULT_PRIORITY = 0
DEFAULT_GROUP = "default"
MAX_GROUP_LENGTH = 256


class PriorityUser(Mapping[str, Any]):
    """The caller as `PriorityContext.user`: identity, display_name, is_authenticated, permissions, and
    every other key the project's authenticate handler returned (empty identity without auth)."""

    def __init__(self, fields: Mapping[str, Any] | None) -> None:
        self._fields = dict(fields or {})
        self.identity: str = str(self._fields.get("identity") or "")
        self.display_name: str = str(self._fields.get("display_name") or self.identity)
        self.is_authenticated: bool = bool(self._fields.get("is_authenticated", bool(self.identity)))
        self.permissions: list[str] = list(self._fields.get("permissions") or [])

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


async def decide(
    svc: Services,
    *,
    thread_id: str | None,
    thread_metadata: Json,
    assistant: Assistant,
    run_metadata: Json,
    user: Mapping[str, Any] | None,
    cron_id: str | None,
) -> Json | None:
    """The settings to store on a thread that has none, from the project's assign function: {"priority",
    "fairness_group"}. None without a priority handler, or when it failed (logged; asked again next run)."""
    handler = svc.plugins.priority._assign_handler if svc.plugins.priority is not None else None
    if handler is None:
        return None
    caller = PriorityUser(user)
    ctx = PriorityContext(
        user=caller,
        permissions=caller.permissions,
        thread_id=thread_id,
        thread_metadata=dict(thread_metadata),
        assistant_id=assistant.assistant_id,
        graph_id=assistant.graph_id,
        assistant_metadata=dict(assistant.metadata),
        run_metadata=dict(run_metadata),
        cron_id=cron_id,
    )
    try:
        settings = await handler(ctx)
    except Exception:
        # The project's function failed: this run takes the default priority, and the next run asks again.
        log.exception("priority assign function raised; using the default priority", thread_id=thread_id)
        return None
    problem = _problem(settings)
    if problem is not None:
        log.error("priority assign function returned bad settings; using the default priority", problem=problem)
        return None
    found = dict(settings or {})
    return {
        "priority": DEFAULT_PRIORITY if found.get("priority") is None else found["priority"],
        "fairness_group": found.get("fairness_group") or DEFAULT_GROUP,
    }


def _problem(settings: Any) -> str | None:
    if settings is None:
        return None
    if not isinstance(settings, Mapping):
        return f"expected a PrioritySettings dict or None, got {type(settings).__name__}"
    value = settings.get("priority")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not -5 <= value <= 5):
        return f"priority must be an integer from -5 to 5, got {value!r}"
    group = settings.get("fairness_group")
    if group is not None and (not isinstance(group, str) or len(group) > MAX_GROUP_LENGTH):
        return f"fairness_group must be a string of at most {MAX_GROUP_LENGTH} characters"
    return None


async def store(tx: Session, thread_id: str, settings: Json | None) -> None:
    """Record the settings on the thread unless it already has some (the first stored result wins)."""
    if settings is None or await tx.thread_priority(thread_id) is not None:
        return
    await tx.set_thread_priority(thread_id, settings["priority"], settings["fairness_group"])
