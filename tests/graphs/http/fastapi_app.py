"""A project's FastAPI app: a validated body, a dependency, app state set by its lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Mark the app started; its routes read the mark from `request.app.state`."""
    app.state.started = True
    yield


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    """What POST /items accepts."""

    name: str
    size: int


def caller(request: Request) -> str:
    """A dependency: who asked (the x-caller header)."""
    return request.headers.get("x-caller", "anonymous")


@app.post("/items")
async def make_item(item: Item, who: Annotated[str, Depends(caller)]) -> dict[str, Any]:
    """Echo a validated item and its caller."""
    return {"name": item.name, "size": item.size, "by": who}


@app.get("/started")
async def started(request: Request) -> dict[str, Any]:
    """Whether the app's own lifespan ran."""
    return {"started": bool(getattr(request.app.state, "started", False))}
