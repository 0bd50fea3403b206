"""Structured logging: structlog over stderr, console lines by default or JSON lines with LOG_JSON=true."""

from __future__ import annotations

import logging
import os
import sys

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
