"""/ui: generative UI (langgraph.json `ui`). POST /ui/{graph_id or assistant_id} answers the HTML snippet the JS
client's `LoadExternalComponent` puts in a shadow root: it loads the graph's bundle and renders the
named component into the element the client calls `{{shadowRootId}}`. GET /ui/{graph_id}/{file} serves
the bundle's files, without authentication (a browser loads them from plain tags)."""

from __future__ import annotations

import html
import uuid

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from graphyard.api import schemas as s
from graphyard.api.deps import authorize, services
from graphyard.api.openapi import operation
from graphyard.errors import NotFound
from graphyard.services import assistants
from graphyard.ui import UiBundle, UiBundles

COMPONENT = s.schema(
    {"name": {"type": "string", "description": "The component's name in the graph's UI file"}}, ["name"]
)
# The placeholder the client replaces (its first occurrence only) with the id of its shadow root's host.
SHADOW_ROOT_ID = "{{shadowRootId}}"
ASSET_ROUTE = "ui_asset"
# The files' route: answered without authentication (see api/http.py public_paths).
FILES_PATH = "/ui/{graph_id}/{file}"
MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".map": "application/json"}


def _bundle(request: Request) -> UiBundle:
    bundles: UiBundles | None = getattr(request.state, "ui", None)
    graph_id: str = request.path_params["graph_id"]
    bundle = bundles.get(graph_id) if bundles is not None else None
    if bundle is None:
        raise NotFound(f'Graph "{graph_id}" has no UI components (langgraph.json "ui")')
    return bundle


async def _bundle_of_graph_or_assistant(request: Request) -> UiBundle:
    """The JS client names a graph id or, as the reference accepts, an assistant's UUID (its graph's UI)."""
    bundles: UiBundles | None = getattr(request.state, "ui", None)
    raw: str = request.path_params["graph_id"]
    try:
        assistant_id = uuid.UUID(raw)
    except ValueError:
        assistant_id = None
    if bundles is None or assistant_id is None or bundles.get(raw) is not None:
        return _bundle(request)  # a graph id (even one that reads as a UUID), or 404
    flt = await authorize(request, "assistants", "read", {"assistant_id": assistant_id})
    assistant = await assistants.get(services(request), str(assistant_id), flt)
    bundle = bundles.get(assistant.graph_id)
    if bundle is None:
        raise NotFound(f'Graph "{assistant.graph_id}" of assistant {assistant_id} has no UI components')
    return bundle


@operation(
    "A graph's UI component as an HTML snippet that loads its bundle",
    "ui",
    body=COMPONENT,
    body_required=True,
    response={"type": "string"},
    media="text/html",
    errors=(404,),
)
async def component(request: Request) -> Response:
    bundle = await _bundle_of_graph_or_assistant(request)
    name: str = (await s.body(request, COMPONENT))["name"]
    tags: list[str] = []
    # Stylesheets first, so the component is styled from its first paint.
    for asset in sorted(bundle.assets, key=lambda a: not a.endswith(".css")):
        url = html.escape(str(request.url_for(ASSET_ROUTE, graph_id=bundle.graph_id, file=asset)))
        if asset.endswith(".css"):
            tags.append(f'<link rel="stylesheet" href="{url}" />')
        elif asset.endswith(".js"):
            # The name goes in as a JS string; its braces escaped so the client's placeholder is the
            # only "{{shadowRootId}}" in the snippet whatever the name is.
            quoted = orjson.dumps(name).decode().replace("{", "\\u007b").replace("}", "\\u007d")
            render = f'{bundle.global_name}.render({quoted}, "{SHADOW_ROOT_ID}")'
            tags.append(f'<script src="{url}" onload="{html.escape(render)}"></script>')
    return HTMLResponse("".join(tags))


@operation(
    "A file of a graph's UI bundle (JS or CSS); no authentication",
    "ui",
    response={"type": "string"},
    media="text/javascript",
    also={"text/css": {"type": "string"}},
    errors=(404,),
)
async def asset(request: Request) -> Response:
    bundle = _bundle(request)
    name: str = request.path_params["file"]
    path = bundle.file(name)
    if path is None or not path.is_file():
        raise NotFound(f'The UI of graph "{bundle.graph_id}" has no file "{name}"')
    media = MEDIA.get(path.suffix, "application/octet-stream")
    # The file keeps its name across rebuilds: browsers revalidate (ETag) instead of caching it blindly.
    return FileResponse(path, media_type=media, headers={"Cache-Control": "no-cache"})
