"""Any `Bearer token-<name>` is user <name>; no authorization handlers (everything is allowed)."""

from __future__ import annotations

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def _authenticate(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.startswith("token-"):
        raise Auth.exceptions.HTTPException(status_code=401, detail="Missing or invalid bearer token")
    return token.removeprefix("token-")
