"""`encryption` in langgraph.json: the project's langgraph_sdk.Encryption handlers encrypt what is stored
(read back from the SQLite file or the PostgreSQL database directly) while the API answers in plaintext."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import InternalServerError, UnprocessableEntityError

from tests.api.admin_cli import graphyard
from tests.api.backends import Backend
from tests.api.support import GRAPHS_DIR, Server, eventually

CONFIG = GRAPHS_DIR / "encryption" / "langgraph.json"
PLAIN_CONFIG = GRAPHS_DIR / "encryption" / "plain.json"
TENANTS_CONFIG = GRAPHS_DIR / "encryption" / "tenants.json"
ACME = {"X-Encryption-Context": json.dumps({"tenant": "acme"})}

# Graphyard's tables, and LangGraph's store.
OUR_TABLES = (
    "store",
    "graphyard_assistants",
    "graphyard_assistant_versions",
    "graphyard_threads",
    "graphyard_runs",
    "graphyard_crons",
)


@asynccontextmanager
async def client(server: Server, headers: dict[str, str] | None = None) -> AsyncIterator[Any]:
    """A langgraph_sdk client for `server` sending `headers` with every request (typed Any: the tests
    index the SDK's TypedDict answers freely)."""
    found = get_client(url=server.url, api_key=None, headers=headers, timeout=60)
    try:
        yield found
    finally:
        await found.http.client.aclose()


def stored_rows(backend: Backend) -> str:
    """Every row of graphyard's own tables, as text."""
    conn = backend.connect()
    if conn is None:
        with sqlite3.connect(backend.sqlite_path) as db:
            return "\n".join(str(row) for table in OUR_TABLES for row in db.execute(f"SELECT * FROM {table}"))
    with conn:
        return "\n".join(
            str(row) for table in OUR_TABLES for row in conn.execute(f"SELECT t::text FROM {table} t").fetchall()
        )


def stored_checkpoints(backend: Backend) -> list[tuple[str, bytes]]:
    """(type, bytes) of every serialized checkpoint value: LangGraph's checkpoints, blobs and writes, and
    the checkpoints' metadata (type "metadata")."""
    conn = backend.connect()
    if conn is None:
        with sqlite3.connect(backend.sqlite_path) as db:
            found = db.execute(
                "SELECT type, checkpoint FROM checkpoints UNION ALL SELECT type, value FROM writes "
                "UNION ALL SELECT 'metadata', metadata FROM checkpoints"
            ).fetchall()
            return [(str(t), bytes(b)) for t, b in found]
    with conn:
        rows = conn.execute(
            "SELECT type, blob FROM checkpoint_blobs WHERE blob IS NOT NULL "
            "UNION ALL SELECT type, blob FROM checkpoint_writes"
        ).fetchall()
        inline = conn.execute(
            "SELECT 'jsonb', checkpoint::text FROM checkpoints "
            "UNION ALL SELECT 'metadata', metadata::text FROM checkpoints"
        ).fetchall()
        return [(str(t), bytes(cast(bytes, b))) for t, b in rows] + [(str(t), str(b).encode()) for t, b in inline]


SECRETS = [
    "string-secret",
    "sauce-secret",
    "key-secret",
    "thread-secret",
    "card-secret",
    "run-secret",
    "cron-secret",
    "label-secret",
]


async def test_rows_hold_ciphertext_while_the_api_answers_plaintext(fresh_backend: Backend) -> None:
    """Assistants, threads (metadata and values), runs (metadata and kwargs), crons (metadata and payload),
    store items and checkpoints are stored encrypted; get, search, state, history and run listings decrypt them."""
    server = await fresh_backend.start(CONFIG)
    async with client(server, ACME) as c:
        assistant = await c.assistants.create(
            "echo", metadata={"recipe": "sauce-secret", "owner": "ann"}, context={"api_key": "key-secret"}
        )
        aid = assistant["assistant_id"]
        assert assistant["metadata"] == {"recipe": "sauce-secret", "owner": "ann"}
        thread = await c.threads.create(metadata={"topic": "thread-secret", "owner": "ann"})
        tid = thread["thread_id"]
        out = await c.runs.wait(
            tid,
            aid,
            input={"value": {"card": "card-secret"}},
            metadata={"note": "run-secret"},
            config={"configurable": {"token": "conf-secret"}},
        )
        assert out == {"echoed": {"card": "card-secret"}, "steps": ["echo"], "value": {"card": "card-secret"}}
        # A plain string channel value: PostgreSQL's saver would keep it inline in the checkpoint row.
        other = (await c.threads.create())["thread_id"]
        assert (await c.runs.wait(other, "echo", input={"value": "string-secret"}))["echoed"] == "string-secret"
        assert (await c.threads.get_state(other))["values"]["value"] == "string-secret"
        cron = await c.crons.create_for_thread(
            tid, aid, schedule="0 0 1 1 *", input={"value": "cron-secret"}, metadata={"label": "label-secret"}
        )

        assert (await c.assistants.get(aid))["context"] == {"api_key": "key-secret"}
        versions = await c.assistants.get_versions(aid)
        assert versions[0]["metadata"]["recipe"] == "sauce-secret"
        got = await c.threads.get(tid)
        assert got["metadata"] == {"topic": "thread-secret", "owner": "ann", "graph_id": "echo", "assistant_id": aid}
        assert got["values"]["echoed"] == {"card": "card-secret"}
        state = await c.threads.get_state(tid)
        assert state["values"]["value"] == {"card": "card-secret"}
        history = await c.threads.get_history(tid)
        assert history[0]["values"]["echoed"] == {"card": "card-secret"}
        # Checkpoint metadata holds the run's metadata and configurable values (LangGraph merges them in).
        assert history[0]["metadata"]["note"] == "run-secret"
        assert history[0]["metadata"]["token"] == "conf-secret"
        assert len(await c.threads.get_history(tid, metadata={"note": "run-secret"})) == len(history)
        runs = await c.runs.list(tid)
        assert runs[0]["metadata"]["note"] == "run-secret"
        assert runs[0]["kwargs"]["input"] == {"value": {"card": "card-secret"}}
        found_crons = await c.crons.search(thread_id=tid)
        assert [x["cron_id"] for x in found_crons] == [cron["cron_id"]]
        assert found_crons[0]["metadata"]["label"] == "label-secret"
        assert found_crons[0]["payload"]["input"] == {"value": "cron-secret"}

        seen = json.dumps([got, state, history, runs, found_crons, versions])
        assert "__encryption_context__" not in seen
        assert "enc:" not in seen

        # Store items, from the API and from a graph (runtime.store).
        await c.store.put_item(["notes"], "n1", {"pin": "store-secret", "owner": "ann"})
        assert (await c.store.get_item(["notes"], "n1"))["value"] == {"pin": "store-secret", "owner": "ann"}
        found = await c.store.search_items(["notes"], filter={"owner": "ann"})
        assert [item["value"]["pin"] for item in found["items"]] == ["store-secret"]
        by_pin = await c.store.search_items(["notes"], filter={"pin": {"$eq": "store-secret"}})
        assert [item["key"] for item in by_pin["items"]] == ["n1"]
        remembered = await c.runs.wait(
            None, "remember", input={"namespace": ["mem"], "key": "k", "value": {"fact": "graph-store-secret"}}
        )
        assert remembered["found"] == {"fact": "graph-store-secret"}
        assert (await c.store.get_item(["mem"], "k"))["value"] == {"fact": "graph-store-secret"}

        # Filters: a key the encryptor leaves plain matches; an encrypted one matches too, because
        # this encryptor is deterministic (the filter is encrypted the same way).
        assert [t["thread_id"] for t in await c.threads.search(metadata={"owner": "ann"})] == [tid]
        assert [t["thread_id"] for t in await c.threads.search(metadata={"topic": "thread-secret"})] == [tid]
        assert await c.threads.search(metadata={"topic": "other"}) == []
        assert [a["assistant_id"] for a in await c.assistants.search(metadata={"recipe": "sauce-secret"})] == [aid]

    rows = stored_rows(fresh_backend)
    for secret in SECRETS:
        assert secret not in rows, f"{secret} is stored in plaintext"
    assert "enc:acme:" in rows
    assert "ann" in rows  # the encryptor leaves `owner` plain
    checkpoints = stored_checkpoints(fresh_backend)
    assert checkpoints
    for type_, blob in checkpoints:
        for secret in SECRETS:
            assert secret.encode() not in blob, f"a checkpoint value ({type_}) holds {secret} in plaintext"
    assert any(type_.endswith("+custom") for type_, _ in checkpoints)


async def test_the_stored_context_decrypts_without_the_header_and_after_a_restart(fresh_backend: Backend) -> None:
    """What was written under one tenant's context reads back without the header (the context is stored
    beside the ciphertext), the worker encrypts under the run's context, and after a restart the thread
    resumes from its encrypted checkpoint."""
    server = await fresh_backend.start(CONFIG)
    async with client(server, ACME) as c:
        tid = (await c.threads.create(metadata={"topic": "thread-secret"}))["thread_id"]
        await c.runs.wait(tid, "echo", input={"value": {"card": "card-secret"}})
    server.stop()
    server = await fresh_backend.start(CONFIG)
    async with client(server) as c:
        assert (await c.threads.get(tid))["metadata"]["topic"] == "thread-secret"
        # A second run without the header writes under no context; the first run's checkpoints still
        # decrypt under the context stored in them.
        out = await c.runs.wait(tid, "echo", input={"value": "again"})
        assert out["steps"] == ["echo", "echo"]
        state = await c.threads.get_state(tid)
        assert state["values"]["steps"] == ["echo", "echo"]
        history = await c.threads.get_history(tid)
        assert any(h["values"].get("value") == {"card": "card-secret"} for h in history)
        # A copy re-writes the checkpoints (decrypted, then encrypted again) and the thread row.
        copied = await c.threads.copy(tid)
        assert (await c.threads.get_state(copied["thread_id"]))["values"]["steps"] == ["echo", "echo"]
        assert copied["metadata"]["topic"] == "thread-secret"
    assert "card-secret" not in stored_rows(fresh_backend)


async def test_the_context_handler_derives_the_tenant_from_the_user(fresh_backend: Backend) -> None:
    """With auth, @encryption.context gets the user (and the header's context): each user's data is
    encrypted under their own tenant, and reads back for anyone the API lets read it."""
    server = await fresh_backend.start(TENANTS_CONFIG)
    async with (
        client(server, {"Authorization": "Bearer alice"}) as alice,
        client(server, {"Authorization": "Bearer bob", **ACME}) as bob,
    ):
        mine = (await alice.threads.create(metadata={"topic": "alice-secret"}))["thread_id"]
        out = await alice.runs.wait(mine, "echo", input={"value": {"card": "alice-card"}})
        assert out["echoed"] == {"card": "alice-card"}
        theirs = (await bob.threads.create(metadata={"topic": "bob-secret"}))["thread_id"]
        assert (await bob.threads.get(mine))["metadata"]["topic"] == "alice-secret"
        assert (await alice.threads.get(theirs))["metadata"]["topic"] == "bob-secret"
        assert (await bob.threads.get_state(mine))["values"]["echoed"] == {"card": "alice-card"}
    rows = stored_rows(fresh_backend)
    assert "enc:alice:" in rows
    assert "enc:bob:" in rows
    assert "enc:acme:" not in rows  # the handler replaced the header's tenant
    for secret in ("alice-secret", "alice-card", "bob-secret"):
        assert secret not in rows
    for _, blob in stored_checkpoints(fresh_backend):
        assert b"alice-card" not in blob


async def test_a_cron_fires_its_run_under_the_context_it_was_saved_with(fresh_backend: Backend) -> None:
    """The scheduler has no request: the run a cron fires is encrypted under the cron's stored context,
    and its worker writes the thread's values under it too."""
    server = await fresh_backend.start(CONFIG, env={"CRON_SCHEDULER_SLEEP_TIME": "0.1"})
    async with client(server, ACME) as c:
        tid = (await c.threads.create())["thread_id"]
        cron = await c.crons.create_for_thread(
            tid, "echo", schedule="0 0 1 1 *", input={"value": "cron-secret"}, metadata={"label": "label-secret"}
        )
    make_due(fresh_backend, cron["cron_id"])
    async with client(server) as c:
        runs = await eventually(
            lambda: c.runs.list(tid), lambda found: any(r["status"] == "success" for r in found), what="cron run"
        )
        assert runs[0]["metadata"]["label"] == "label-secret"
        assert (await c.threads.get(tid))["values"]["echoed"] == "cron-secret"
    rows = stored_rows(fresh_backend)
    assert "cron-secret" not in rows
    assert "enc:none:" not in rows.replace("enc:none:InN5c3RlbSI=", "")  # only the system assistants'


def make_due(backend: Backend, cron_id: str) -> None:
    """Move a cron's next run into the past, straight in the database."""
    past = "2000-01-01T00:00:00.000000+00:00"
    conn = backend.connect()
    if conn is None:
        with sqlite3.connect(backend.sqlite_path, timeout=10) as db:
            db.execute("UPDATE graphyard_crons SET next_run_date = ? WHERE cron_id = ?", (past, cron_id))
        return
    with conn:
        conn.execute("UPDATE graphyard_crons SET next_run_date = %s WHERE cron_id = %s", (past, cron_id))


async def test_an_encryptor_that_adds_a_key_fails_the_request_naming_it(fresh_backend: Backend) -> None:
    """JSON encryptors must keep keys: the write is refused with a detail naming the handler and the key;
    nothing is stored."""
    server = await fresh_backend.start(CONFIG)
    async with client(server, ACME) as c:
        with pytest.raises(InternalServerError) as caught:
            await c.threads.create(metadata={"break_encryptor": True})
        detail = caught.value.response.json()["detail"]
        assert "encryption.py:encryption" in detail
        assert "added_by_a_buggy_encryptor" in detail
        assert "same keys" in detail
        assert await c.threads.search() == []
    async with client(server, {"X-Encryption-Context": "not json"}) as c:
        with pytest.raises(UnprocessableEntityError) as bad:
            await c.threads.create()
        assert "X-Encryption-Context" in bad.value.response.json()["detail"]


async def test_data_written_before_encryption_was_enabled_still_reads(fresh_backend: Backend) -> None:
    """Rows and checkpoints written without encryption read back once it is enabled, and the thread
    goes on; what is written from then on is encrypted."""
    server = await fresh_backend.start(PLAIN_CONFIG)
    async with client(server) as c:
        tid = (await c.threads.create(metadata={"topic": "plain-before"}))["thread_id"]
        await c.runs.wait(tid, "echo", input={"value": {"card": "plain-card"}})
    server.stop()
    assert "plain-before" in stored_rows(fresh_backend)
    server = await fresh_backend.start(CONFIG)
    async with client(server, ACME) as c:
        assert (await c.threads.get(tid))["metadata"]["topic"] == "plain-before"
        assert (await c.threads.get_state(tid))["values"]["echoed"] == {"card": "plain-card"}
        out = await c.runs.wait(tid, "echo", input={"value": {"card": "card-secret"}})
        assert out["steps"] == ["echo", "echo"]
        await c.threads.update(tid, metadata={"topic": "thread-secret"})
        assert (await c.threads.get(tid))["metadata"]["topic"] == "thread-secret"
    rows = stored_rows(fresh_backend)
    assert "thread-secret" not in rows
    assert "card-secret" not in rows


async def test_operator_commands_print_run_metadata_decrypted(fresh_backend: Backend) -> None:
    """`graphyard runs list|show --config` loads the project's encryption handlers and prints a run's
    metadata in plaintext; without the project it prints what is stored, never a crash."""
    server = await fresh_backend.start(CONFIG)
    async with client(server, ACME) as c:
        thread = await c.threads.create()
        run = await c.runs.create(thread["thread_id"], "echo", input={"value": 1}, metadata={"note": "run-secret"})
        await c.runs.join(thread["thread_id"], run["run_id"])
    database = fresh_backend.database_uri or str(fresh_backend.sqlite_path)
    common = ("--database", database, "--json")
    shown = (await graphyard("runs", "show", run["run_id"], "--config", str(CONFIG), *common)).json()
    assert shown["metadata"]["note"] == "run-secret"
    listed = (await graphyard("runs", "list", "--config", str(CONFIG), "--status", "success", *common)).json()
    assert [r["metadata"].get("note") for r in listed if r["run_id"] == run["run_id"]] == ["run-secret"]
    raw = await graphyard("runs", "show", run["run_id"], "--config", str(fresh_backend.tmp / "none.json"), *common)
    assert "run-secret" not in raw.stdout and raw.code == 0, raw.stderr
