"""Token auth for tests/api/test_ui.py: `Authorization: Bearer ui-token` or 401."""

from __future__ import annotations

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> str:
    """The one user, for the one token."""
    if authorization != "Bearer ui-token":
        raise Auth.exceptions.HTTPException(status_code=401, detail="bad token")
    return "ui-user"
