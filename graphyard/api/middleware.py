"""Pure-ASGI middleware: refuse request bodies over the configured size with 413; authenticate requests."""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphyard.api.errors import json_error, log, status_of
from graphyard.auth import AuthFailed, ProjectAuth
from graphyard.errors import GraphyardError
from graphyard.services.encryption import AtRest, parse_context_header, set_request_context

# Reachable without credentials whatever the project's auth says: health, server info and the API's
# documentation (its page and assets).
OPEN_PATHS = frozenset({"/ok", "/info", "/metrics", "/openapi.json", "/docs"})
OPEN_PREFIXES = ("/docs/",)


def is_open(path: str) -> bool:
    """Whether a request path (below any mount prefix) is served without authentication."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class BodyTooLarge(Exception):
    """The request body is larger than the limit."""


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await json_error(413, f"Request body exceeds {self.max_bytes} bytes")(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except BodyTooLarge:
            await json_error(413, f"Request body exceeds {self.max_bytes} bytes")(scope, receive, send)


class AuthMiddleware:
    """Authenticate every HTTP request but the public ones (by default /ok, /info and the docs) with the project's
    Auth object; the user goes into `request.state.auth_user` for the handlers' authorization calls."""

    def __init__(self, app: ASGIApp, auth: ProjectAuth, public: Callable[[Scope], bool] | None = None) -> None:
        self.app = app
        self.auth = auth
        self.public = public or (lambda scope: is_open(scope.get("path", "")))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.public(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        try:
            user = await self.auth.authenticate(Request(scope))
        except AuthFailed as exc:
            status = exc.status_code if 100 <= exc.status_code <= 599 else 500
            await json_error(status, exc.detail, dict(exc.headers or {}))(scope, receive, send)
            return
        except StarletteHTTPException as exc:
            await json_error(exc.status_code, exc.detail, dict(exc.headers or {}))(scope, receive, send)
            return
        except Exception as exc:  # noqa: BLE001 - the project's handler failed: logged, a 500, never a way in
            log.error("authenticate handler failed", path=scope.get("path"), exc_info=exc)
            await json_error(500, "Internal Server Error")(scope, receive, send)
            return
        scope.setdefault("state", {})["auth_user"] = user
        await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The handshake is authenticated like a GET; a refusal closes it before it is accepted, which
        the server answers with HTTP 403."""
        try:
            user = await self.auth.authenticate(Request({**scope, "type": "http", "method": "GET"}))
        except (AuthFailed, StarletteHTTPException):
            await send({"type": "websocket.close", "code": 1008})
            return
        except Exception as exc:  # noqa: BLE001 - the project's handler failed: logged, refused, never a way in
            log.error("authenticate handler failed", path=scope.get("path"), exc_info=exc)
            await send({"type": "websocket.close", "code": 1011})
            return
        scope.setdefault("state", {})["auth_user"] = user
        await self.app(scope, receive, send)


class EncryptionContextMiddleware:
    """With an `encryption` key: the request's encryption context, from the `X-Encryption-Context`
    header and the project's `@encryption.context` handler (given the authenticated user), for every
    encrypt and decrypt the request makes. Inside the auth middleware, so the user is known."""

    def __init__(self, app: ASGIApp, at_rest: AtRest) -> None:
        self.app = app
        self.at_rest = at_rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header_value = next((v for k, v in scope.get("headers", []) if k == b"x-encryption-context"), None)
        try:
            header = parse_context_header(header_value.decode("latin-1")) if header_value else {}
            user = scope.get("state", {}).get("auth_user")
            set_request_context(await self.at_rest.request_context(user, header))
        except GraphyardError as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await json_error(status_of(exc), exc.message)(scope, receive, send)
            return
        await self.app(scope, receive, send)
