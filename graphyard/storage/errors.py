"""Storage-level errors: what adapters turn driver errors into."""

from __future__ import annotations


class StorageError(Exception):
    """A storage operation failed."""


class Unavailable(StorageError):
    """The database cannot be reached or is overloaded."""


class LeaseLost(StorageError):
    """This worker no longer holds the run's lease: another attempt owns the run, so nothing was written."""


class StoreUnsupported(StorageError):
    """The database cannot hold the store the project configured (a missing extension); the message says
    which key needs what."""


class UniqueViolation(StorageError):
    """A row with that key already exists."""

    def __init__(self, constraint: str) -> None:
        self.constraint = constraint
        super().__init__(f"unique violation on {constraint}")
