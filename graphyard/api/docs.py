"""/openapi.json and /docs: the document of the app's routes, and Swagger UI served from the package.

Swagger UI comes from the swagger-ui-bundle-v2 wheel and is served from this process under
/docs/static, so /docs works on a machine with no internet access."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from graphyard import __version__
from graphyard.api.deps import project_auth
from graphyard.api.middleware import OPEN_PATHS
from graphyard.api.openapi import document, security_for
from graphyard.api.schemas import json_response
from graphyard.api.ui import FILES_PATH
from graphyard.records import Json

TITLE = "graphyard"
STATIC = "/docs/static"

# validatorUrl null: no badge fetched from an outside validator, so the page makes no outside request.
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>graphyard API</title>
  <link rel="stylesheet" href="{static}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{static}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{static}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "{spec}", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null}});
  </script>
</body>
</html>
"""


def _document(request: Request) -> Json:
    # Built once per app, from the routes it has by its first request: routes added to the table
    # (a project's custom app, MCP, ...) are in it without being listed here.
    cached: Json | None = getattr(request.app.state, "openapi_document", None)
    if cached is None:
        security = None
        if project_auth(request) is not None:
            open_paths = OPEN_PATHS | {FILES_PATH}
            prefix: str = getattr(request.app.state, "mount_prefix", "")
            open_paths |= {prefix + path for path in open_paths}
            security = security_for(getattr(request.state, "auth_openapi", None), open_paths)
        # The project's own app (`http.app`) answers its routes itself; they are listed too.
        project_routes = getattr(request.app.state, "project_routes", [])
        table = [*request.app.routes, *project_routes]
        cached = document(table, title=TITLE, version=__version__, security=security)
        request.app.state.openapi_document = cached
    return cached


async def openapi_json(request: Request) -> Response:
    return json_response(_document(request))


async def docs(request: Request) -> Response:
    root = request.scope.get("root_path", "")
    return HTMLResponse(PAGE.format(static=root + STATIC, spec=root + "/openapi.json"))


def routes() -> list[BaseRoute]:
    return [
        Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False),
        Route("/docs", docs, methods=["GET"], include_in_schema=False),
        Mount(STATIC, app=StaticFiles(directory=str(swagger_ui_path)), name="docs-static"),
    ]
