"""Structured logging: structlog over stderr, console lines by default or JSON lines with LOG_JSON=true."""

from __future__ import annotations

import logging
import os
import random
import sys
import time

import structlog

# The reference's switch for JSON logs; any of these values turns it on.
_TRUE = frozenset({"1", "true", "yes", "on"})


def json_from_env() -> bool:
    """Whether LOG_JSON asks for one JSON object per line."""
    return os.environ.get("LOG_JSON", "").strip().lower() in _TRUE


def _logger_key(_: object, __: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    # `logger` cannot be an initial value of structlog.get_logger (it is a parameter name there).
    if "logger_name" in event:
        event["logger"] = event.pop("logger_name")
    return event


def configure(level: str = "INFO", *, json: bool | None = None) -> None:
    """Set up structlog once; run and thread ids are bound by callers with `log.bind(...)`.
    Below-level calls return at once (a filtering bound logger): nothing is formatted for them.
    `json=None` reads LOG_JSON from the environment."""
    if json is None:
        json = json_from_env()
    level_number = logging.getLevelName(level.upper())
    if not isinstance(level_number, int):
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    logging.basicConfig(stream=sys.stderr, level=level_number, format="%(message)s")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _logger_key,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # The full traceback, as text under "exception" (JSON) or after the line (console).
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    # Lazy: the logger is assembled at first use, after configure() has run.
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name, logger_name=name)
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
