"""Domain errors: each class names a condition, its docstring is the default message. No HTTP here."""

from __future__ import annotations


class GraphyardError(Exception):
    """Something went wrong."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (type(self).__doc__ or "").strip()
        super().__init__(self.message)


class NotFound(GraphyardError):
    """Not Found"""


class AssistantNotFound(NotFound):
    """Assistant not found."""


class GraphNotFound(NotFound):
    """Graph not found."""


class ThreadNotFound(NotFound):
    """Thread not found."""


class RunNotFound(NotFound):
    """Run not found."""


class CronNotFound(NotFound):
    """Cron not found."""


class CheckpointNotFound(NotFound):
    """Checkpoint not found."""


class ThreadOrAssistantNotFound(NotFound):
    """Thread or assistant not found."""


class NothingToCancel(NotFound):
    """No runs found to cancel."""


class Conflict(GraphyardError):
    """Conflict"""


class AssistantExists(Conflict):
    """Assistant already exists."""


class ThreadExists(Conflict):
    """Thread already exists."""


class ThreadBusy(Conflict):
    """Thread is already running a task. Wait for it to finish or choose a different multitask strategy."""


class InvalidRequest(GraphyardError):
    """The request is not valid."""


class Unprocessable(GraphyardError):
    """The request body does not match the schema."""


class InvalidNamespace(Unprocessable):
    """Namespace labels must be non-empty strings without periods."""


class InvalidCronSchedule(Unprocessable):
    """Invalid cron schedule."""


class Forbidden(GraphyardError):
    """Forbidden"""


class Unauthorized(GraphyardError):
    """Unauthorized"""


class ServiceUnavailable(GraphyardError):
    """Service Unavailable"""


class EncryptionFailed(GraphyardError):
    """The project's encryption handler failed."""
