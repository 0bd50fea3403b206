"""Structured logging: structlog over the standard library, one JSON-ish line per event."""

from __future__ import annotations

import logging
import random
import sys
import time

import structlog


def configure(level: str = "INFO", *, json: bool = False) -> None:
    """Set up structlog once; run and thread ids are bound by callers with `log.bind(...)`."""
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(message)s")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


class Outage:
    """Says once when a dependency stops answering and once when it is back (with how long it was away),
    instead of a line (or a traceback) per failed attempt."""

    def __init__(self, log: structlog.stdlib.BoundLogger, dependency: str) -> None:
        self._log = log
        self.dependency = dependency
        self._since: float | None = None

    @property
    def down_since(self) -> float | None:
        """Monotonic time the current outage began, or None while the dependency answers."""
        return self._since

    def down(self, exc: BaseException) -> None:
        if self._since is None:
            self._since = time.monotonic()
            self._log.warning(f"{self.dependency} unreachable; retrying with backoff", error=str(exc))

    def up(self) -> None:
        if self._since is not None:
            away = time.monotonic() - self._since
            self._since = None
            self._log.warning(f"{self.dependency} reachable again", outage_seconds=round(away, 2))


def backoff(attempt: int, *, base: float = 0.2, cap: float = 5.0) -> float:
    """Exponential backoff with full jitter: a random wait in [0, min(cap, base * 2**attempt)], so that
    many processes retrying after one outage do not come back in lockstep."""
    return random.uniform(0.0, min(cap, base * 2 ** min(attempt, 30)))
