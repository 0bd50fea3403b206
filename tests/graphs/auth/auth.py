"""Bearer-token auth for graphyard's own auth tests: one filter form per thread action.

Threads are stamped with their creator as `owner`. Reading uses `$or` with `$contains` (the owner,
or anyone listed in `readers`); update and delete use `$eq`; search uses the plain form. The
create_run handler records the payload it was given in the run's metadata.
"""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

USERS: dict[str, dict[str, Any]] = {
    "token-alice": {"identity": "alice", "permissions": ["read", "write"]},
    "token-bob": {"identity": "bob", "permissions": ["read"]},
    "token-admin": {"identity": "admin", "permissions": ["read", "write", "admin"]},
}

auth = Auth()


@auth.authenticate  # type: ignore[type-var]  # the SDK types only async handlers; sync ones work too
def _authenticate(headers: dict[bytes, bytes], path: str) -> dict[str, Any]:
    # Synchronous on purpose: graphyard runs it in a thread, and supplies raw ASGI headers.
    raw = headers.get(b"authorization")
    if not raw:
        raise Auth.exceptions.HTTPException(status_code=401, detail="Missing bearer token")
    scheme, _, token = raw.decode().partition(" ")
    user = USERS.get(token) if scheme.lower() == "bearer" else None
    if user is None:
        raise Auth.exceptions.HTTPException(
            status_code=401, detail="Invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    return {"identity": user["identity"], "permissions": list(user["permissions"]), "team": "blue"}


@auth.on.threads.create
async def _stamp_owner(ctx: Auth.types.AuthContext, value: Auth.types.ThreadsCreate) -> dict[str, Any]:
    metadata = value.get("metadata")
    if metadata is None:
        metadata = {}
        value["metadata"] = metadata
    metadata["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}


@auth.on.threads.read
async def _owner_or_reader(ctx: Auth.types.AuthContext, value: Any) -> dict[str, Any]:
    me = ctx.user.identity
    return {"$or": [{"owner": me}, {"readers": {"$contains": me}}]}


@auth.on.threads.update
async def _owner_updates(ctx: Auth.types.AuthContext, value: Any) -> dict[str, Any]:
    return {"owner": {"$eq": ctx.user.identity}}


@auth.on.threads.delete
async def _owner_deletes(ctx: Auth.types.AuthContext, value: Any) -> dict[str, Any]:
    return {"owner": {"$eq": ctx.user.identity}}


@auth.on.threads.search
async def _owner_searches(ctx: Auth.types.AuthContext, value: Any) -> dict[str, Any]:
    return {"owner": ctx.user.identity}


@auth.on.threads.create_run
async def _record_run(ctx: Auth.types.AuthContext, value: Auth.types.RunsCreate) -> dict[str, Any]:
    metadata = value.get("metadata")
    if metadata is None:
        metadata = {}
        value["metadata"] = metadata
    if metadata.get("forbidden"):
        raise Auth.exceptions.HTTPException(status_code=403, detail="Run forbidden by policy")
    kwargs = value.get("kwargs") or {}
    metadata["owner"] = ctx.user.identity
    metadata["saw"] = {
        "types": {k: type(value.get(k)).__name__ for k in ("assistant_id", "thread_id", "run_id")},
        "assistant_id": str(value.get("assistant_id")),
        "thread_id": None if value.get("thread_id") is None else str(value.get("thread_id")),
        "run_id": str(value.get("run_id")),
        "status": value.get("status"),
        "multitask_strategy": value.get("multitask_strategy"),
        "if_not_exists": value.get("if_not_exists"),
        "after_seconds": value.get("after_seconds"),
        "prevent_insert_if_inflight": value.get("prevent_insert_if_inflight"),
        "kwargs_keys": sorted(kwargs),
        "input": kwargs.get("input"),
        "action": ctx.action,
        "resource": ctx.resource,
    }
    return {"owner": ctx.user.identity}


@auth.on.assistants.create
async def _no_forbidden_names(ctx: Auth.types.AuthContext, value: Any) -> bool:
    return bool(value.get("name") != "forbidden")


@auth.on.assistants.delete
async def _only_admins_delete(ctx: Auth.types.AuthContext, value: Any) -> None:
    assert "admin" in ctx.permissions, "Only admins may delete assistants"
