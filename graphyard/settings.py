"""One frozen, typed Settings object, built once from the CLI flags and the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be a number, got {raw!r}") from exc


def _int_env(name: str, default: int) -> int:
    value = _float_env(name, default)
    if value != int(value) or value < 0:
        raise ValueError(f"environment variable {name} must be a non-negative integer, got {value!r}")
    return int(value)


@dataclass(frozen=True, slots=True)
class Settings:
    config_path: Path
    database_url: str
    broker_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 2024
    n_jobs_per_worker: int = 10
    run_timeout_seconds: float = 86400.0
    max_attempts: int = 3
    lease_seconds: float = 30.0
    drain_seconds: float = 10.0
    stream_ttl_seconds: float = 120.0
    max_body_bytes: int = 300 * 1024 * 1024
    run_graphs: bool = True
    webhooks: dict[str, Any] | None = None
    send_webhooks: bool = True  # false with `http.disable_webhooks`: runs execute, no webhook is sent
    redis_prefix: str = "graphyard:"
    cron_sleep_seconds: float = 5.0

    def without_workers(self) -> Settings:
        """The same settings for a process that serves HTTP but executes no runs."""
        return replace(self, run_graphs=False)

    @classmethod
    def from_env(cls, *, config_path: Path, database_url: str, **overrides: object) -> Settings:
        """Settings with the reference's variable names read from the environment."""
        values: dict[str, object] = {
            "n_jobs_per_worker": _int_env("N_JOBS_PER_WORKER", 10),
            "lease_seconds": _float_env("GRAPHYARD_LEASE_SECONDS", 30.0),
            "drain_seconds": _float_env("GRAPHYARD_DRAIN_SECONDS", 10.0),
            "run_timeout_seconds": _float_env("BG_JOB_TIMEOUT_SECS", 86400.0),
            "max_attempts": _int_env("BG_JOB_MAX_RETRIES", 3),
            "stream_ttl_seconds": _float_env("RESUMABLE_STREAM_TTL_SECONDS", 120.0),
            "max_body_bytes": _int_env("HTTP_MAX_REQUEST_BODY_BYTES", 300 * 1024 * 1024),
            "broker_url": os.environ.get("REDIS_URI") or None,
            "redis_prefix": os.environ.get("GRAPHYARD_REDIS_PREFIX") or "graphyard:",
            "cron_sleep_seconds": _float_env("CRON_SCHEDULER_SLEEP_TIME", 5.0),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(config_path=config_path, database_url=database_url, **values)  # type: ignore[arg-type]
