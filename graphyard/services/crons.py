"""Crons: create, patch, search, count, delete; the schedule arithmetic; the run payload a fire creates.

A cron's `payload` is its create body with `assistant_id` resolved and `config.configurable.cron_id`
set, as the reference stores it. Times are computed with croniter in the cron's timezone (UTC when
none) and stored as fixed-width ISO strings in UTC, like every other timestamp.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from graphyard.errors import (
    AssistantNotFound,
    CronNotFound,
    InvalidCronSchedule,
    InvalidRequest,
    ThreadNotFound,
    Unprocessable,
)
from graphyard.records import Cron, Json, isoformat, now, system_assistant_id, uuid7
from graphyard.services import assistants
from graphyard.services.context import Services
from graphyard.services.webhooks import validate_webhook

# Keys of a cron body that describe the schedule, not the runs it creates.
SCHEDULE_KEYS = frozenset({"schedule", "timezone", "end_time", "enabled", "on_run_completed"})
# How many due crons one scheduler pass takes; the rest wait for the next pass.
DUE_BATCH = 100


def zone(timezone: str | None) -> ZoneInfo | None:
    """The IANA zone a schedule is read in (None: UTC); unknown → 422."""
    if not timezone:
        return None
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Unprocessable(f"Invalid timezone '{timezone}'") from exc


def check_schedule(schedule: str) -> None:
    """A cron expression croniter accepts (5 fields, 6 with seconds, or an alias such as @daily) that
    has a next occurrence (not 31 February); anything else → 422."""
    fields = schedule.split()
    if not croniter.is_valid(schedule) or (not schedule.startswith("@") and len(fields) not in (5, 6)):
        raise InvalidCronSchedule(f"Invalid cron schedule '{schedule}'")
    next_run(schedule, None, now())


def next_run(schedule: str, timezone: str | None, after: datetime) -> str:
    """The first occurrence of `schedule` strictly after `after`, read in `timezone`, as a UTC ISO string."""
    tz = zone(timezone)
    start = after.astimezone(tz) if tz is not None else after.astimezone(UTC)
    try:
        following = croniter(schedule, start).get_next(datetime)
    except CroniterError as exc:
        raise InvalidCronSchedule(f"Cron schedule '{schedule}' has no next run: {exc}") from exc
    return isoformat(following)


def _end_time(raw: Any) -> str | None:
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(str(raw))
    except ValueError as exc:
        raise Unprocessable(f"Invalid end_time '{raw}': expected an ISO 8601 date-time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return isoformat(moment)


def _with_cron_id(config: Any, cron_id: str) -> Json:
    out: Json = copy.deepcopy(config) if isinstance(config, dict) else {}
    configurable = out.get("configurable")
    out["configurable"] = {**(configurable if isinstance(configurable, dict) else {}), "cron_id": cron_id}
    return out


async def create(
    svc: Services,
    body: Json,
    *,
    thread_id: str | None,
    cron_id: str | None = None,
    user_id: str = "",
    metadata: Json | None = None,
    auth: Json | None = None,
    assistant_auth: Json | None = None,
) -> Cron:
    """A new cron from a CronCreate / ThreadCronCreate body. `metadata` (default: the body's) is the
    cron's metadata after the auth handler; `auth` hides the thread as missing, `assistant_auth` the
    assistant. Unknown assistant or thread → 404, bad schedule, timezone or end_time → 422."""
    schedule = body["schedule"]
    check_schedule(schedule)
    timezone = body.get("timezone") or None
    zone(timezone)
    end_time = _end_time(body.get("end_time"))
    if body.get("webhook"):
        validate_webhook(body["webhook"], svc.settings.webhooks)
    config = body.get("config") or {}
    if isinstance(config, dict) and config.get("configurable") and body.get("context"):
        raise InvalidRequest(assistants.BOTH_CONFIGURABLE_AND_CONTEXT)
    ref = str(body["assistant_id"])
    assistant = await assistants.resolve(svc, ref, assistant_auth)
    if assistant is None:
        raise AssistantNotFound(f"Assistant '{ref}' not found")
    cron_id = cron_id or uuid7()
    metadata = dict(body.get("metadata") or {}) if metadata is None else dict(metadata)
    payload = copy.deepcopy(body)
    payload["assistant_id"] = assistant.assistant_id
    payload["config"] = _with_cron_id(config, cron_id)
    payload["metadata"] = metadata
    moment = now()
    stamp = isoformat(moment)
    cron = Cron(
        cron_id=cron_id,
        assistant_id=assistant.assistant_id,
        thread_id=thread_id,
        user_id=user_id,
        schedule=schedule,
        timezone=timezone,
        end_time=end_time,
        payload=payload,
        metadata=metadata,
        on_run_completed=None if thread_id is not None else (body.get("on_run_completed") or "delete"),
        enabled=body.get("enabled", True) is not False,
        next_run_date=next_run(schedule, timezone, moment),
        created_at=stamp,
        updated_at=stamp,
    )
    async with svc.storage.transaction() as tx:
        if thread_id is not None and await tx.get_thread(thread_id, auth) is None:
            raise ThreadNotFound(f"Thread '{thread_id}' not found")
        # The assistant may have been deleted since it was resolved; the foreign key needs it.
        if await tx.get_assistant(assistant.assistant_id) is None:
            raise AssistantNotFound(f"Assistant '{ref}' not found")
        await tx.insert_cron(cron)
    return cron


async def get(svc: Services, cron_id: str, auth: Json | None = None) -> Cron:
    async with svc.storage.read() as db:
        cron = await db.get_cron(cron_id, auth)
    if cron is None:
        raise CronNotFound(f"Cron '{cron_id}' not found")
    return cron


def patched(cron: Cron, body: Json, *, at: datetime) -> Cron:
    """The cron with a CronPatch body applied: schedule fields replaced (schedule, timezone or
    enabled recompute next_run_date), metadata merged, everything else shallow-merged into the
    payload, which keeps its assistant_id and config.configurable.cron_id."""
    schedule = body.get("schedule") or cron.schedule
    if "schedule" in body:
        check_schedule(schedule)
    timezone = cron.timezone
    if "timezone" in body:
        timezone = body["timezone"] or None
        zone(timezone)
    end_time = _end_time(body["end_time"]) if "end_time" in body else cron.end_time
    enabled = cron.enabled if body.get("enabled") is None else bool(body["enabled"])
    metadata = {**cron.metadata, **(body.get("metadata") or {})}
    payload = {**cron.payload, **{k: v for k, v in body.items() if k not in SCHEDULE_KEYS}}
    payload["assistant_id"] = cron.assistant_id
    payload["config"] = _with_cron_id(payload.get("config"), cron.cron_id)
    payload["metadata"] = {**(cron.payload.get("metadata") or {}), **(body.get("metadata") or {})}
    for key in ("schedule", "timezone", "end_time", "enabled"):
        if key in body:
            payload[key] = body[key]
    on_run_completed = cron.on_run_completed
    if cron.thread_id is None and body.get("on_run_completed") is not None:
        on_run_completed = body["on_run_completed"]
        payload["on_run_completed"] = on_run_completed
    next_run_date = cron.next_run_date
    if any(key in body for key in ("schedule", "timezone", "enabled")):
        next_run_date = next_run(schedule, timezone, at)
    return Cron(
        cron_id=cron.cron_id,
        assistant_id=cron.assistant_id,
        thread_id=cron.thread_id,
        user_id=cron.user_id,
        schedule=schedule,
        timezone=timezone,
        end_time=end_time,
        payload=payload,
        metadata=metadata,
        on_run_completed=on_run_completed,
        enabled=enabled,
        next_run_date=next_run_date,
        created_at=cron.created_at,
        updated_at=isoformat(at),
    )


async def patch(svc: Services, cron_id: str, body: Json, auth: Json | None = None) -> Cron:
    """Apply a CronPatch body (see `patched`); empty body → 400, unknown or hidden cron → 404."""
    if not body:
        raise InvalidRequest("Request body must not be empty")
    async with svc.storage.transaction() as tx:
        cron = await tx.get_cron(cron_id, auth)
        if cron is None:
            raise CronNotFound(f"Cron '{cron_id}' not found")
        updated = patched(cron, body, at=now())
        await tx.update_cron(updated)
    return updated


async def delete(svc: Services, cron_id: str, auth: Json | None = None) -> None:
    async with svc.storage.transaction() as tx:
        if not await tx.delete_cron(cron_id, auth):
            raise CronNotFound(f"Cron '{cron_id}' not found")


def _assistant_ref(svc: Services, assistant_id: str | None) -> str | None:
    if assistant_id is None:
        return None
    return system_assistant_id(assistant_id) if assistant_id in svc.graphs else assistant_id


async def search(
    svc: Services,
    *,
    assistant_id: str | None,
    thread_id: str | None,
    enabled: bool | None,
    metadata: Json | None,
    limit: int,
    offset: int,
    sort_by: str | None,
    sort_order: str | None,
    auth: Json | None = None,
) -> tuple[list[Cron], int]:
    """A page of crons and the total that match (a graph name stands for its system assistant)."""
    ref = _assistant_ref(svc, assistant_id)
    async with svc.storage.read() as db:
        items = await db.search_crons(
            assistant_id=ref,
            thread_id=thread_id,
            enabled=enabled,
            metadata=metadata,
            auth=auth,
            limit=limit,
            offset=offset,
            sort_by=sort_by or "created_at",
            sort_order=sort_order or "desc",
        )
        total = offset + len(items)
        if len(items) == limit:
            total = await db.count_crons(assistant_id=ref, thread_id=thread_id, metadata=metadata, auth=auth)
    return items, total


async def count(
    svc: Services,
    *,
    assistant_id: str | None,
    thread_id: str | None,
    metadata: Json | None,
    auth: Json | None = None,
) -> int:
    async with svc.storage.read() as db:
        return await db.count_crons(
            assistant_id=_assistant_ref(svc, assistant_id), thread_id=thread_id, metadata=metadata, auth=auth
        )


# --- firing -----------------------------------------------------------------------------------


async def due(svc: Services, at: datetime) -> list[Cron]:
    """Enabled crons due at `at` (next_run_date <= at, end_time not passed), earliest first."""
    async with svc.storage.read() as db:
        return await db.due_crons(isoformat(at), DUE_BATCH)


async def claim(svc: Services, cron: Cron, at: datetime) -> bool:
    """Claim the occurrence `cron` is due at and move its next run past `at`, in one transaction.
    False when another process fired it first (or the cron changed or vanished meanwhile). A missed
    stretch (every worker down) fires once, not once per missed occurrence."""
    if cron.next_run_date is None:
        return False
    following = next_run(cron.schedule, cron.timezone, at)
    stamp = isoformat(at)
    async with svc.storage.transaction() as tx:
        return await tx.claim_cron_fire(cron.cron_id, cron.next_run_date, following, stamp)


def run_payload(cron: Cron) -> Json:
    """The run-creation payload one fire of `cron` submits: its payload without the schedule keys,
    metadata = cron metadata ⊕ payload metadata, config.configurable.cron_id set (moved into context
    when the payload has one, since configurable and context may not both be given), and for a
    stateless cron on_completion = keep when on_run_completed is keep."""
    payload = {k: v for k, v in copy.deepcopy(cron.payload).items() if k not in SCHEDULE_KEYS}
    payload["assistant_id"] = cron.assistant_id
    payload["metadata"] = {**cron.metadata, **(payload.get("metadata") or {})}
    config = _with_cron_id(payload.get("config"), cron.cron_id)
    if payload.get("context"):
        configurable = config.pop("configurable")
        payload["context"] = {**payload["context"], **configurable}
    payload["config"] = config
    if cron.thread_id is None:
        payload["on_completion"] = "keep" if cron.on_run_completed == "keep" else "delete"
        payload.pop("multitask_strategy", None)
    return payload
