"""Domain records and enums shared by every layer: assistants, threads, runs and their states."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

Json = dict[str, Any]

# The namespace the reference derives system assistant ids from: uuid5(NAMESPACE_GRAPH, graph_id).
NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"


RUN_INFLIGHT = (RunStatus.PENDING, RunStatus.RUNNING)
RUN_TERMINAL = (RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.TIMEOUT, RunStatus.INTERRUPTED)


class ThreadStatus(StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    INTERRUPTED = "interrupted"
    ERROR = "error"


class MultitaskStrategy(StrEnum):
    REJECT = "reject"
    INTERRUPT = "interrupt"
    ROLLBACK = "rollback"
    ENQUEUE = "enqueue"


class CancelAction(StrEnum):
    INTERRUPT = "interrupt"
    ROLLBACK = "rollback"


class IfNotExists(StrEnum):
    CREATE = "create"
    REJECT = "reject"


def now() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    """A fixed-width ISO timestamp, so that string order is time order."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # isoformat with fixed microseconds spells exactly "%Y-%m-%dT%H:%M:%S.%f+00:00" in UTC, several times
    # faster than strftime (several stamps per run).
    return moment.isoformat(timespec="microseconds")


def uuid7() -> str:
    """A time-ordered UUID (version 7), as the reference mints for threads, runs and crons."""
    ms = time.time_ns() // 1_000_000
    rand = uuid.uuid4().int
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 66) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def system_assistant_id(graph_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE_GRAPH, graph_id))


@dataclass(frozen=True, slots=True)
class Assistant:
    assistant_id: str
    graph_id: str
    config: Json
    context: Json
    metadata: Json
    name: str
    description: str | None
    version: int
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class AssistantVersion:
    assistant_id: str
    graph_id: str
    config: Json
    context: Json
    metadata: Json
    name: str
    description: str | None
    version: int
    created_at: str


@dataclass(frozen=True, slots=True)
class Thread:
    thread_id: str
    created_at: str
    updated_at: str
    state_updated_at: str
    metadata: Json
    status: ThreadStatus
    config: Json
    values: Any
    interrupts: Json
    error: Json | None


@dataclass(frozen=True, slots=True)
class Run:
    run_id: str
    thread_id: str
    assistant_id: str
    created_at: str
    updated_at: str
    status: RunStatus
    metadata: Json
    kwargs: Json
    multitask_strategy: MultitaskStrategy
    available_at: float
    attempt: int = 0
    cancel_action: CancelAction | None = None
    output: Any = None
    temporary: bool = False
    lease_owner: str | None = None
    # The at-rest encryption context the run was created under (see services/encryption.py): its
    # worker writes checkpoints and thread values under it. None without encryption.
    encryption_context: Json | None = None

    @property
    def is_inflight(self) -> bool:
        return self.status in RUN_INFLIGHT

    def log_fields(self) -> dict[str, Any]:
        """The keys every log line and span about this run carries (the reference's names)."""
        configurable = (self.kwargs.get("config") or {}).get("configurable") or {}
        return {
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "assistant_id": self.assistant_id,
            "graph_id": configurable.get("graph_id"),
            "run_attempt": self.attempt,
        }

    @property
    def lease(self) -> Lease | None:
        """The lease of a running run: who executes it, and which attempt."""
        if self.lease_owner is None:
            return None
        return Lease(self.run_id, self.lease_owner, self.attempt)


@dataclass(frozen=True, slots=True)
class Lease:
    """One worker's right to execute one attempt of a run. The attempt number is the fencing token: every
    claim increments it, so a lease taken over (requeued and claimed again, even by the same worker) never
    matches the old one, and writes guarded by the old lease are refused."""

    run_id: str
    owner: str
    attempt: int


@dataclass(frozen=True, slots=True)
class LeasedRun:
    """A run with the lease a worker holds on it (for operators: who runs it, until when)."""

    run: Run
    lease_owner: str | None
    lease_expires_at: float | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The queue at one moment, whole database."""

    runs_by_status: dict[str, int]
    pending_due: int
    pending_delayed: int
    oldest_due_at: float | None
    running_by_worker: dict[str, int]
    expired_leases: int


@dataclass(frozen=True, slots=True)
class Cron:
    """A schedule that creates runs from `payload`: on its thread, or stateless when thread_id is None.
    Times are fixed-width ISO strings in UTC; `timezone` is the IANA zone the schedule is read in."""

    cron_id: str
    assistant_id: str
    thread_id: str | None
    user_id: str
    schedule: str
    timezone: str | None
    end_time: str | None
    payload: Json
    metadata: Json
    on_run_completed: str | None
    enabled: bool
    next_run_date: str | None
    created_at: str
    updated_at: str
    # The at-rest encryption context the cron was saved under: the runs it fires are created under it.
    encryption_context: Json | None = None


@dataclass(frozen=True, slots=True)
class ThreadSnapshot:
    """What a finished run leaves on its thread: values, pending interrupts, error, next nodes."""

    values: Any
    interrupts: Json
    error: Json | None
    has_next: bool


class AuthUser:
    """The authenticated user as handlers and graphs see it: identity, display_name, is_authenticated,
    permissions, plus whatever else the authenticate handler returned (by key, or by attribute)."""

    __slots__ = ("_extra", "_source", "display_name", "identity", "is_authenticated", "permissions")

    def __init__(
        self,
        identity: str,
        *,
        display_name: str | None = None,
        is_authenticated: bool = True,
        permissions: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
        source: Any = None,
    ) -> None:
        self.identity = identity
        self.display_name = display_name if display_name is not None else identity
        self.is_authenticated = is_authenticated
        self.permissions: list[str] = list(permissions)
        self._extra = dict(extra or {})
        self._source = source

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuthUser:
        """The user a run carries (`configurable.langgraph_auth_user`), for the graph it executes."""
        return cls(
            str(data.get("identity") or ""),
            display_name=data.get("display_name"),
            is_authenticated=bool(data.get("is_authenticated", True)),
            permissions=list(data.get("permissions") or []),
        )

    def dict(self) -> Json:
        return {**self._extra, **self.json()}

    def json(self) -> Json:
        """The four standard fields: what runs carry in `configurable.langgraph_auth_user`."""
        return {
            "identity": self.identity,
            "is_authenticated": self.is_authenticated,
            "display_name": self.display_name,
            "permissions": list(self.permissions),
        }

    def __getitem__(self, key: str) -> Any:
        return self.dict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.dict()

    def __iter__(self) -> Iterator[str]:
        return iter(self.dict())

    def get(self, key: str, default: Any = None) -> Any:
        return self.dict().get(key, default)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not slots: extra keys, then the handler's own user object.
        extra = object.__getattribute__(self, "_extra")
        if name in extra:
            return extra[name]
        source = object.__getattribute__(self, "_source")
        if source is not None and not isinstance(source, str | Mapping):
            return getattr(source, name)
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"AuthUser(identity={self.identity!r}, permissions={self.permissions!r})"
