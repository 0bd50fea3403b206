"""The encrypting session must cover every Session query that carries an encrypted field: one added to
the storage port later would otherwise read ciphertext out (or write plaintext in) silently."""

from __future__ import annotations

import inspect
import typing

from graphyard.services.encryption import EncryptingSession
from graphyard.storage.ports import Session

# Records whose fields are encrypted, and the parameters that carry encrypted data or filters on it.
RECORDS = ("Assistant", "AssistantVersion", "Thread", "Run", "LeasedRun", "Cron")
PARAMETERS = {"metadata", "values", "kwargs", "payload", "output"}


def _carries_encrypted_data(name: str) -> bool:
    method = getattr(Session, name)
    hints = typing.get_type_hints(method)
    returned = str(hints.get("return", ""))
    if any(record in returned.replace("graphyard.records.", "").split("[")[-1] for record in RECORDS):
        return True
    params = set(inspect.signature(method).parameters) - {"self"}
    if params & PARAMETERS:
        return True
    return any(str(hints.get(p, "")).rsplit(".", 1)[-1].strip("'>") in RECORDS for p in params)


def test_every_session_query_with_encrypted_fields_is_wrapped() -> None:
    """Each Session method that returns a record or takes one (or takes metadata/values/kwargs/payload/
    output) is defined on EncryptingSession itself, not left to the pass-through."""
    queries = [n for n in dir(Session) if not n.startswith("_") and callable(getattr(Session, n))]
    carrying = [n for n in queries if _carries_encrypted_data(n)]
    assert "get_thread" in carrying
    assert "insert_run" in carrying
    missing = [n for n in carrying if n not in vars(EncryptingSession)]
    assert missing == [], f"add these to EncryptingSession (services/encryption.py): {missing}"
