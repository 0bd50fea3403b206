"""Structured logging: structlog over stderr, console lines by default or JSON lines with LOG_JSON=true."""

from __future__ import annotations

import json as stdjson
import logging
import os
import random
import sys
import time
from typing import Any

import orjson
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


# Console lines: `<timestamp> [<level>] <event> [<logger>] key=value ...`, the layout of structlog's
# ConsoleRenderer without colours, written out directly: that renderer builds a StringIO per field
# and was most of the cost of a log line, and the run engine logs a few lines per run.
_LEVEL_WIDTH = 9  # the longest level name structlog pads to ("exception")
_EVENT_WIDTH = 30
_QUOTED = frozenset(" \t=\r\n\"'")


def _console_value(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if _QUOTED.intersection(value) else value
    return repr(value)


def _console(_: object, __: str, event: structlog.typing.EventDict) -> str:
    stack = event.pop("stack", None)
    exception = event.pop("exception", None)
    parts: list[str] = []
    timestamp = event.pop("timestamp", None)
    if timestamp is not None:
        parts.append(str(timestamp))
    level = event.pop("level", None)
    if level is not None:
        parts.append(f"[{level:<{_LEVEL_WIDTH}}]")
    message = event.pop("event", None)
    if message is not None:
        parts.append(f"{message!s:<{_EVENT_WIDTH}}")
    for key in ("logger", "logger_name"):
        name = event.pop(key, None)
        if name is not None:
            parts.append(f"[{name}]")
    parts.extend(f"{key}={_console_value(event[key])}" for key in sorted(event))
    line = " ".join(parts).rstrip(" ")
    if stack is not None:
        line += "\n" + str(stack)
        if exception is not None:
            line += "\n\n" + "=" * 79 + "\n"
    if exception is not None:
        line += "\n" + str(exception)
    return line


def _json_default(value: Any) -> Any:
    structlog_repr = getattr(value, "__structlog__", None)
    return structlog_repr() if callable(structlog_repr) else repr(value)


def _json(_: object, __: str, event: structlog.typing.EventDict) -> str:
    try:
        return orjson.dumps(event, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):
        # Integers beyond 64 bits, nesting past orjson's limit: the standard library takes them.
        return stdjson.dumps(event, default=_json_default)


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
    renderer: structlog.typing.Processor = _json if json else _console
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
