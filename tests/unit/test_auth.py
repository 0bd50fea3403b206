"""graphyard.auth without a server: user normalization, handler dispatch, results and filter checks."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph_sdk import Auth

from graphyard.auth import AuthUser, ProjectAuth, check_filter, to_user
from graphyard.errors import Forbidden


class _Member:
    identity = "carol"
    display_name = "Carol C."
    permissions = ("read",)
    team = "red"


def test_users_normalize_from_every_accepted_shape() -> None:
    """A str, a mapping, an object with .identity and a (permissions, user) tuple all become an AuthUser."""
    plain = to_user("alice")
    assert (plain.identity, plain.display_name, plain.is_authenticated, plain.permissions) == (
        "alice",
        "alice",
        True,
        [],
    )
    mapped = to_user({"identity": "bob", "permissions": ["w"], "org": "acme", "is_authenticated": False})
    assert mapped.json() == {"identity": "bob", "is_authenticated": False, "display_name": "bob", "permissions": ["w"]}
    assert mapped["org"] == "acme"
    assert mapped.org == "acme"
    assert "org" in mapped
    member = to_user(_Member())
    assert (member.identity, member.display_name, member.permissions) == ("carol", "Carol C.", ["read"])
    assert member.team == "red"
    tupled = to_user((["admin"], "dave"))
    assert (tupled.identity, tupled.permissions) == ("dave", ["admin"])


@pytest.mark.parametrize("bad", [{"permissions": []}, {"identity": ""}, 42, None])
def test_a_user_without_identity_is_refused(bad: Any) -> None:
    """A result without a non-empty string identity is the handler's bug, not a user."""
    with pytest.raises(TypeError):
        to_user(bad)


def _project_auth() -> ProjectAuth:
    auth = Auth()

    @auth.authenticate
    async def _authenticate(authorization: str | None) -> str:
        return "alice"

    @auth.on
    async def _everything(ctx: Auth.types.AuthContext, value: Any) -> dict[str, Any]:
        return {"level": "global"}

    @auth.on.threads
    async def _threads(ctx: Auth.types.AuthContext, value: Any) -> dict[str, Any]:
        return {"level": "threads"}

    @auth.on.threads.read
    async def _threads_read(ctx: Auth.types.AuthContext, value: Any) -> dict[str, Any]:
        value["seen_by"] = ctx.user.identity
        return {"level": f"{ctx.resource}.{ctx.action}"}

    @auth.on(actions=["delete"])
    async def _any_delete(ctx: Auth.types.AuthContext, value: Any) -> bool:
        return False

    @auth.on.assistants.update
    async def _assistants_update(ctx: Auth.types.AuthContext, value: Any) -> None:
        assert "admin" in ctx.permissions, "admins only"

    @auth.on.assistants.search
    async def _assistants_search(ctx: Auth.types.AuthContext, value: Any) -> bool:
        return True

    return ProjectAuth(auth, "test")


async def test_the_most_specific_handler_wins() -> None:
    """(resource, action) beats (resource, *), which beats (*, action), which beats the global handler."""
    auth = _project_auth()
    user = AuthUser("alice")
    value: dict[str, Any] = {}
    assert await auth.authorize(user, "threads", "read", value) == {"level": "threads.read"}
    assert value == {"seen_by": "alice"}
    assert await auth.authorize(user, "threads", "delete", {}) == {"level": "threads"}
    assert await auth.authorize(user, "crons", "read", {}) == {"level": "global"}
    with pytest.raises(Forbidden, match="Forbidden"):
        await auth.authorize(user, "crons", "delete", {})


async def test_results_map_to_allow_filter_or_403() -> None:
    """True allows without a filter; a failed assertion is a 403 with its message."""
    auth = _project_auth()
    assert await auth.authorize(AuthUser("alice"), "assistants", "search", {}) is None
    with pytest.raises(Forbidden, match="admins only"):
        await auth.authorize(AuthUser("alice"), "assistants", "update", {})
    assert await auth.authorize(AuthUser("root", permissions=["admin"]), "assistants", "update", {}) is None


async def test_authenticate_without_a_handler_is_refused() -> None:
    """An Auth object with no authenticate handler cannot be served."""
    with pytest.raises(ValueError, match="authenticate"):
        ProjectAuth(Auth(), "test")


@pytest.mark.parametrize(
    "flt",
    [
        {"owner": "a"},
        {"owner": {"$eq": "a"}},
        {"tags": {"$contains": ["x", "y"]}},
        {"$or": [{"owner": "a"}, {"readers": {"$contains": "a"}}], "org": "o"},
        {"$and": [{"$or": [{"a": 1}, {"b": 2}]}, {"c": 3}]},
    ],
)
def test_well_formed_filters_pass(flt: dict[str, Any]) -> None:
    """Every form of the filter language is accepted unchanged."""
    assert check_filter(flt) == flt


@pytest.mark.parametrize(
    "flt",
    [
        {"$or": [{"a": 1}]},
        {"$or": {"a": 1}},
        {"$nor": [{"a": 1}, {"b": 2}]},
        {"a": {"$gt": 1}},
        {"$or": [{"$or": [{"$or": [{"a": 1}, {"b": 1}]}, {"c": 1}]}, {"d": 1}]},
    ],
)
def test_malformed_filters_are_refused(flt: dict[str, Any]) -> None:
    """A one-item $or, an unknown operator or nesting deeper than two levels is the handler's bug."""
    with pytest.raises(TypeError):
        check_filter(flt)
