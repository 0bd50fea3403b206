"""Deliver a finished run to its webhook: POST JSON, with a deadline and a few retries."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from graphyard.logs import get_logger
from graphyard.records import Json, Run, isoformat, now
from graphyard.serde import dumps

log = get_logger("graphyard.webhooks")

ATTEMPTS = 3
TIMEOUT_SECONDS = 10.0


def payload(run: Run, status: str, values: Any, error: Json | None, started_at: str, ended_at: str) -> Json:
    body: Json = {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "created_at": run.created_at,
        "updated_at": ended_at,
        "metadata": run.metadata,
        "kwargs": run.kwargs,
        "multitask_strategy": str(run.multitask_strategy),
        "status": status,
        "run_started_at": started_at,
        "run_ended_at": ended_at,
        "webhook_sent_at": isoformat(now()),
        "values": values,
    }
    if error is not None:
        body["error"] = error
    return body


async def deliver(url: str, body: Json, *, run: Run) -> bool:
    """POST the body; retry transport errors and 5xx with backoff. Failures are logged, never raised."""
    content = dumps(body)
    fields = run.log_fields()
    async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = await client.post(url, content=content, headers={"Content-Type": "application/json"})
                if response.status_code < 500:
                    log.info("webhook delivered", **fields, status=response.status_code, attempt=attempt)
                    return True
                log.warning("webhook answered an error", **fields, status=response.status_code, attempt=attempt)
            except httpx.HTTPError as exc:
                log.warning("webhook failed", **fields, error=repr(exc), attempt=attempt)
            if attempt < ATTEMPTS:
                await asyncio.sleep(0.5 * 2 ** (attempt - 1))
    return False
