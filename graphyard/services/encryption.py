"""At-rest encryption with the project's `langgraph_sdk.Encryption` handlers (langgraph.json `encryption`).

Rows are encrypted above storage: `encrypting(storage, plugins)` wraps the Storage port so that every
session encrypts the JSON fields of the records it writes (assistant metadata/context, thread
metadata/values, run metadata/kwargs/output, cron metadata/payload) and decrypts the records it reads,
and it swaps the checkpointer's serializer for one that passes checkpoint blobs through the blob handlers.
Without an `encryption` key nothing is wrapped: the hot path is the plain storage.

The encryption context (`ctx.metadata` of the handlers) comes from the request: the `X-Encryption-Context`
header (a JSON object, or base64 of one) passed through the project's `@encryption.context` handler with
the authenticated user. It is stored in plaintext beside the ciphertext (a reserved key in each encrypted
JSON field, a header in each encrypted blob) so that whoever reads the row later, a worker included,
decrypts it with the context it was written with; a worker executes a run under the run's context.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, cast

import orjson
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.base import CipherProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.store.base import BaseStore, Item, Op, PutOp, Result, SearchOp
from langgraph_sdk import Encryption
from langgraph_sdk.encryption.types import DecryptResult, EncryptionContext

from graphyard.errors import EncryptionFailed, Unprocessable
from graphyard.logs import get_logger
from graphyard.plugins import Plugins
from graphyard.records import Assistant, AssistantVersion, Cron, Json, LeasedRun, Run, Thread
from graphyard.serde import to_jsonable
from graphyard.storage.ports import Session, Storage

__all__ = [
    "CONTEXT_KEY",
    "AtRest",
    "BlobCipher",
    "at_rest_for",
    "at_rest_of",
    "context_scope",
    "encrypting",
    "parse_context_header",
]

log = get_logger("graphyard.encryption")

# Stored (in plaintext) beside the ciphertext of a JSON field: the encryption context it was written
# under. Never shown to clients; metadata filters ignore it (containment).
CONTEXT_KEY = "__encryption_context__"

# Keys the server reads or that identify things: never handed to the JSON encryptor, at any level we
# encrypt (the reference's list of system-managed fields).
SYSTEM_KEYS = frozenset(
    {
        "thread_id",
        "run_id",
        "assistant_id",
        "graph_id",
        "checkpoint_id",
        "checkpoint_ns",
        "task_id",
        "cron_id",
        "user_id",
        "langgraph_version",
        "langgraph_api_version",
        "langgraph_plan",
        "langgraph_host",
        "langgraph_api_url",
        "langgraph_request_id",
        "langgraph_auth_user",
        "langgraph_auth_user_id",
        "langgraph_auth_permissions",
        "source",
        "step",
        "parents",
        "run_attempt",
        "__after_seconds__",
        "__request_start_time_ms__",
        CONTEXT_KEY,
    }
)

# A blob handler runs on its own event loop thread: LangGraph's savers serialize synchronously (the
# SQLite one on the server's loop), and the handlers are coroutines. A handler that never returns
# fails the checkpoint write instead of hanging the server.
BLOB_HANDLER_TIMEOUT_SECONDS = 30.0

# The type tag of an encrypted checkpoint blob: LangGraph's own "<serializer type>+<cipher>" convention,
# so a blob written before encryption was enabled (no "+") still loads as it is.
BLOB_CIPHER = "custom"
_BLOB_HEADER_VERSION = 1

_CONTEXT: ContextVar[Json | None] = ContextVar("graphyard_encryption_context", default=None)


def current_context() -> Json:
    """The encryption context of the request (or run) being served; {} when none was given."""
    return _CONTEXT.get() or {}


@contextlib.contextmanager
def context_scope(context: Json | None) -> Iterator[None]:
    """Serve what follows under `context` (a run executing under the context it was created with)."""
    token = _CONTEXT.set(context or None)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def set_request_context(context: Json) -> None:
    """Set the context for the rest of this request (called once by the request middleware)."""
    _CONTEXT.set(context or None)


def parse_context_header(value: str) -> Json:
    """`X-Encryption-Context`: a JSON object, or the base64 (standard or URL-safe) of one."""
    text = value.strip()
    if not text.startswith("{"):
        try:
            padded = text + "=" * (-len(text) % 4)
            text = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise Unprocessable(
                "X-Encryption-Context must be a JSON object or the base64 of one; it is neither"
            ) from None
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Unprocessable("X-Encryption-Context must be a JSON object or the base64 of one; it is not JSON") from None
    if not isinstance(parsed, dict):
        raise Unprocessable(f"X-Encryption-Context must be a JSON object, got {type(parsed).__name__}")
    return parsed


def _split_system(data: Json) -> tuple[Json, Json]:
    """(what the encryptor sees, the system keys kept out of its reach)."""
    if not SYSTEM_KEYS.intersection(data):
        return data, {}
    return (
        {k: v for k, v in data.items() if k not in SYSTEM_KEYS},
        {k: v for k, v in data.items() if k in SYSTEM_KEYS and k != CONTEXT_KEY},
    )


class AtRest:
    """The project's handlers, called the way the reference calls them, with errors that name them."""

    def __init__(self, encryption: Encryption, ref: str) -> None:
        self.encryption = encryption
        self.ref = ref
        self.json_enabled = encryption._json_encryptor is not None
        self.blob_enabled = encryption._blob_encryptor is not None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()

    # --- request context -------------------------------------------------------------------------
    async def request_context(self, user: Any, header: Json) -> Json:
        """The context for one request: the header's, through the project's context handler if any."""
        handler = self.encryption._context_handler
        if handler is None or user is None:
            return header
        try:
            found = await handler(user, EncryptionContext(metadata=dict(header)))
        except Exception as exc:
            log.error("encryption context handler failed", handler=self.ref, exc_info=exc)
            raise EncryptionFailed(
                f"The encryption context handler of {self.ref} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(found, dict):
            raise EncryptionFailed(
                f"The encryption context handler of {self.ref} returned {type(found).__name__}, not a dict"
            )
        return found

    # --- JSON fields -----------------------------------------------------------------------------
    async def encrypt(self, model: str, field: str, data: Any) -> Any:
        """`data` as stored: its values encrypted (system keys untouched), with the context it was
        encrypted under. Anything but a non-empty dict is stored as it is."""
        if not isinstance(data, dict) or not data or not self.json_enabled:
            return data
        context = current_context()
        # The handler sees what the row will hold: JSON (graph values may hold LangChain messages).
        plain, system = _split_system(to_jsonable(data))
        stored: Json = {}
        if plain:
            encryptor = self.encryption._json_encryptor
            assert encryptor is not None
            try:
                out = await encryptor(EncryptionContext(model=model, metadata=dict(context), field=field), plain)
            except Exception as exc:
                log.error("JSON encryptor failed", handler=self.ref, model=model, field=field, exc_info=exc)
                raise EncryptionFailed(
                    f"The JSON encryptor of {self.ref} failed on {model}.{field}: {type(exc).__name__}: {exc}"
                ) from exc
            _check_keys(self.ref, model, field, plain, out)
            stored = out
        stored.update(system)
        # Always, even when empty: a row must decrypt under the context it was written with, not the
        # reader's (an absent key means "written before encryption was enabled").
        stored[CONTEXT_KEY] = context
        return stored

    async def decrypt(self, model: str, field: str, data: Any) -> tuple[Any, Json | None]:
        """(`data` as the client sees it, the context it was stored with)."""
        if not isinstance(data, dict) or not data:
            return data, None
        stored_context = data.get(CONTEXT_KEY)
        context = stored_context if isinstance(stored_context, dict) else None
        decryptor = self.encryption._json_decryptor
        if decryptor is None:
            return ({k: v for k, v in data.items() if k != CONTEXT_KEY} if context is not None else data), context
        encrypted, system = _split_system(data)
        if not encrypted:
            return system, context
        metadata = dict(context if context is not None else current_context())
        try:
            out = await decryptor(EncryptionContext(model=model, metadata=metadata, field=field), encrypted)
        except Exception as exc:
            log.error("JSON decryptor failed", handler=self.ref, model=model, field=field, exc_info=exc)
            raise EncryptionFailed(
                f"The JSON decryptor of {self.ref} failed on {model}.{field}: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(out, DecryptResult):
            # A replacement ciphertext (key rotation) is not written back: the read still succeeds.
            out = out.plaintext
        if not isinstance(out, dict):
            raise EncryptionFailed(
                f"The JSON decryptor of {self.ref} returned {type(out).__name__} for {model}.{field}, not a dict"
            )
        return {**out, **system}, context

    async def encrypt_filter(self, model: str, field: str, filter: Json | None) -> Json | None:
        """A containment filter on an encrypted field, encrypted the same way: it matches encrypted
        values only if the encryptor is deterministic (same input, same ciphertext)."""
        if not filter:
            return filter
        encrypted = await self.encrypt(model, field, filter)
        if isinstance(encrypted, dict):
            encrypted.pop(CONTEXT_KEY, None)
        return cast(Json, encrypted)

    async def encrypt_config(self, model: str, config: Json) -> Json:
        """A config's `configurable` (assistant context is mirrored there); its other keys stay plain."""
        if not self.json_enabled or not isinstance(config.get("configurable"), dict):
            return config
        return {**config, "configurable": await self.encrypt(model, "config", config["configurable"])}

    async def decrypt_config(self, model: str, config: Json) -> Json:
        if not isinstance(config.get("configurable"), dict):
            return config
        configurable, _ = await self.decrypt(model, "config", config["configurable"])
        return {**config, "configurable": configurable}

    async def encrypt_kwargs(self, kwargs: Json) -> Json:
        """A run's kwargs: its top-level values but `config`, and in `config` the values of
        `configurable` and `metadata`; limits and other config keys the server reads stay plain."""
        if not kwargs or not self.json_enabled:
            return kwargs
        config = kwargs.get("config")
        stored = await self.encrypt("run", "kwargs", {k: v for k, v in kwargs.items() if k != "config"})
        if "config" in kwargs:
            if isinstance(config, dict):
                config = dict(config)
                for key in ("configurable", "metadata"):
                    if isinstance(config.get(key), dict):
                        config[key] = await self.encrypt("run", "kwargs", config[key])
            stored = {**stored, "config": config}
        return cast(Json, stored)

    async def decrypt_kwargs(self, kwargs: Json) -> tuple[Json, Json | None]:
        if not kwargs:
            return kwargs, None
        config = kwargs.get("config")
        plain, context = await self.decrypt("run", "kwargs", {k: v for k, v in kwargs.items() if k != "config"})
        if "config" in kwargs:
            if isinstance(config, dict):
                config = dict(config)
                for key in ("configurable", "metadata"):
                    if isinstance(config.get(key), dict):
                        config[key], _ = await self.decrypt("run", "kwargs", config[key])
            plain = {**plain, "config": config}
        return cast(Json, plain), context

    # --- blobs -----------------------------------------------------------------------------------
    def _call_blocking(self, make: Callable[[], Awaitable[Any]]) -> Any:
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="graphyard-encryption", daemon=True).start()
                self._loop = loop

        # The handlers run on the helper loop's own task: hand them the caller's encryption context.
        context = _CONTEXT.get()

        async def call() -> Any:
            _CONTEXT.set(context)
            return await make()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(BLOB_HANDLER_TIMEOUT_SECONDS)

    def encrypt_blob(self, data: bytes) -> bytes:
        """Header (version, the context as JSON) + the blob encryptor's ciphertext."""
        encryptor = self.encryption._blob_encryptor
        assert encryptor is not None
        context = current_context()
        ctx = EncryptionContext(model="checkpoint", metadata=dict(context), field="blob")
        try:
            ciphertext = self._call_blocking(lambda: encryptor(ctx, data))
        except Exception as exc:
            log.error("blob encryptor failed", handler=self.ref, exc_info=exc)
            raise EncryptionFailed(f"The blob encryptor of {self.ref} failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(ciphertext, bytes | bytearray):
            raise EncryptionFailed(f"The blob encryptor of {self.ref} returned {type(ciphertext).__name__}, not bytes")
        header = orjson.dumps(context)
        return bytes([_BLOB_HEADER_VERSION]) + len(header).to_bytes(4, "big") + header + bytes(ciphertext)

    def decrypt_blob(self, stored: bytes) -> bytes:
        decryptor = self.encryption._blob_decryptor
        if decryptor is None or not stored or stored[0] != _BLOB_HEADER_VERSION:
            raise EncryptionFailed(
                f"A checkpoint blob is encrypted but {self.ref} has no @encryption.decrypt.blob that reads it"
            )
        size = int.from_bytes(stored[1:5], "big")
        context = orjson.loads(stored[5 : 5 + size])
        ciphertext = stored[5 + size :]
        ctx = EncryptionContext(model="checkpoint", metadata=context, field="blob")
        try:
            out = self._call_blocking(lambda: decryptor(ctx, ciphertext))
        except Exception as exc:
            log.error("blob decryptor failed", handler=self.ref, exc_info=exc)
            raise EncryptionFailed(f"The blob decryptor of {self.ref} failed: {type(exc).__name__}: {exc}") from exc
        if isinstance(out, DecryptResult):
            out = out.plaintext
        if not isinstance(out, bytes | bytearray):
            raise EncryptionFailed(f"The blob decryptor of {self.ref} returned {type(out).__name__}, not bytes")
        return bytes(out)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None


def _check_keys(ref: str, model: str, field: str, given: Json, out: Any) -> None:
    """JSON encryptors transform values only: stored fields are merged key by key."""
    if not isinstance(out, dict):
        raise EncryptionFailed(
            f"The JSON encryptor of {ref} returned {type(out).__name__} for {model}.{field}, not a dict"
        )
    if out.keys() == given.keys():
        return
    added = sorted(str(k) for k in out.keys() - given.keys())
    removed = sorted(str(k) for k in given.keys() - out.keys())
    log.error("JSON encryptor changed keys", handler=ref, model=model, field=field, added=added, removed=removed)
    raise EncryptionFailed(
        f"The JSON encryptor of {ref} changed the keys of {model}.{field} (added {added}, removed {removed}); "
        "a JSON encryptor must return the same keys it was given and transform only their values"
    )


class BlobCipher(CipherProtocol):
    """LangGraph's cipher interface over the project's blob handlers, for its EncryptedSerializer: blobs
    are tagged "<type>+custom", and blobs without a cipher tag (written before encryption was enabled)
    load as they are."""

    def __init__(self, at_rest: AtRest) -> None:
        self.at_rest = at_rest

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        return BLOB_CIPHER, self.at_rest.encrypt_blob(plaintext)

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        if ciphername != BLOB_CIPHER:
            raise EncryptionFailed(f"A checkpoint blob is encrypted with an unknown cipher {ciphername!r}")
        return self.at_rest.decrypt_blob(ciphertext)


class CheckpointMetadataEncryption:
    """The checkpoint metadata codec: the JSON handlers, as model "checkpoint", field "metadata"."""

    def __init__(self, at_rest: AtRest) -> None:
        self.at_rest = at_rest

    async def encode(self, metadata: Json) -> Json:
        return cast(Json, await self.at_rest.encrypt("checkpoint", "metadata", metadata))

    async def decode(self, metadata: Json) -> Json:
        plain, _ = await self.at_rest.decrypt("checkpoint", "metadata", metadata)
        return cast(Json, plain)

    async def encode_filter(self, filter: Json | None) -> Json | None:
        return await self.at_rest.encrypt_filter("checkpoint", "metadata", filter)


class EncryptingStore(BaseStore):
    """LangGraph's store with item values encrypted (model "store", field "value"): for the API's /store
    routes and for graphs (`runtime.store`) alike. Search filters and the semantic index see what is
    stored, so they only work on fields the encryptor leaves plain."""

    def __init__(self, inner: BaseStore, at_rest: AtRest) -> None:
        self.inner = inner
        self.at_rest = at_rest
        self.supports_ttl = inner.supports_ttl
        self.ttl_config = inner.ttl_config

    async def _encrypt_ops(self, ops: Iterable[Op]) -> list[Op]:
        out: list[Op] = []
        for op in ops:
            if isinstance(op, PutOp) and op.value is not None:
                op = op._replace(value=await self.at_rest.encrypt("store", "value", op.value))
            elif isinstance(op, SearchOp) and op.filter:
                op = op._replace(filter=await self._encrypt_filter(op.filter))
            out.append(op)
        return out

    async def _encrypt_filter(self, filter: dict[str, Any]) -> dict[str, Any]:
        """Equality operands (`{"k": v}`, `$eq`, `$ne`) encrypted like a value, as metadata filters are:
        they match encrypted fields when the encryptor is deterministic. Range operators are left as
        given (they compare with what is stored)."""
        plain: dict[str, Any] = {}
        for key, cond in filter.items():
            if not isinstance(cond, dict):
                plain[key] = cond
            elif "$eq" in cond or "$ne" in cond:
                plain[key] = cond.get("$eq", cond.get("$ne"))
        if not plain:
            return filter
        encrypted = await self.at_rest.encrypt_filter("store", "value", plain) or {}
        out = dict(filter)
        for key, value in encrypted.items():
            cond = filter[key]
            if not isinstance(cond, dict):
                out[key] = value
            else:
                out[key] = {**cond, **{op: value for op in ("$eq", "$ne") if op in cond}}
        return out

    async def _decrypt_item(self, item: Any) -> Any:
        if isinstance(item, Item):
            item.value, _ = await self.at_rest.decrypt("store", "value", item.value)
        return item

    async def _decrypt_results(self, results: list[Result]) -> list[Result]:
        for result in results:
            if isinstance(result, list):
                for item in result:
                    await self._decrypt_item(item)
            else:
                await self._decrypt_item(result)
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        results = await self.inner.abatch(await self._encrypt_ops(ops))
        return await self._decrypt_results(results)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        # Sync callers (a graph's sync node, on a worker thread): the handlers run on the helper loop.
        encrypted = self.at_rest._call_blocking(lambda: self._encrypt_ops(list(ops)))
        results = self.inner.batch(encrypted)
        return cast(list[Result], self.at_rest._call_blocking(lambda: self._decrypt_results(results)))


# --- the storage wrapper ---------------------------------------------------------------------------


async def decrypted_run(at: AtRest, r: Run) -> Run:
    """A run row as read, with its metadata, kwargs and output decrypted and its encryption context set."""
    metadata, _ = await at.decrypt("run", "metadata", r.metadata)
    kwargs, context = await at.decrypt_kwargs(r.kwargs)
    output, _ = await at.decrypt("run", "output", r.output)
    return dataclasses.replace(r, metadata=metadata, kwargs=kwargs, output=output, encryption_context=context)


class EncryptingSession:
    """A Session whose records are encrypted on the way in and decrypted on the way out; every other
    query passes through untouched."""

    def __init__(self, inner: Session, at_rest: AtRest) -> None:
        self._inner = inner
        self._at = at_rest

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    # assistants
    async def _enc_assistant(self, a: Assistant) -> Assistant:
        return dataclasses.replace(
            a,
            metadata=await self._at.encrypt("assistant", "metadata", a.metadata),
            context=await self._at.encrypt("assistant", "context", a.context),
            config=await self._at.encrypt_config("assistant", a.config),
        )

    async def _dec_assistant(self, a: Assistant | None) -> Assistant | None:
        if a is None:
            return None
        metadata, _ = await self._at.decrypt("assistant", "metadata", a.metadata)
        context, _ = await self._at.decrypt("assistant", "context", a.context)
        config = await self._at.decrypt_config("assistant", a.config)
        return dataclasses.replace(a, metadata=metadata, context=context, config=config)

    async def _dec_version(self, v: AssistantVersion) -> AssistantVersion:
        metadata, _ = await self._at.decrypt("assistant", "metadata", v.metadata)
        context, _ = await self._at.decrypt("assistant", "context", v.context)
        config = await self._at.decrypt_config("assistant", v.config)
        return dataclasses.replace(v, metadata=metadata, context=context, config=config)

    async def insert_assistant(self, assistant: Assistant) -> None:
        await self._inner.insert_assistant(await self._enc_assistant(assistant))

    async def get_assistant(self, assistant_id: str, auth: Json | None = None) -> Assistant | None:
        return await self._dec_assistant(await self._inner.get_assistant(assistant_id, auth))

    async def update_assistant(self, assistant: Assistant, *, new_version: bool) -> None:
        await self._inner.update_assistant(await self._enc_assistant(assistant), new_version=new_version)

    async def search_assistants(self, *, metadata: Json | None, **kwargs: Any) -> list[Assistant]:
        metadata = await self._at.encrypt_filter("assistant", "metadata", metadata)
        found = await self._inner.search_assistants(metadata=metadata, **kwargs)
        return [cast(Assistant, await self._dec_assistant(a)) for a in found]

    async def count_assistants(self, *, metadata: Json | None, **kwargs: Any) -> int:
        metadata = await self._at.encrypt_filter("assistant", "metadata", metadata)
        return await self._inner.count_assistants(metadata=metadata, **kwargs)

    async def assistant_versions(
        self, assistant_id: str, *, metadata: Json | None, **kwargs: Any
    ) -> list[AssistantVersion]:
        metadata = await self._at.encrypt_filter("assistant", "metadata", metadata)
        found = await self._inner.assistant_versions(assistant_id, metadata=metadata, **kwargs)
        return [await self._dec_version(v) for v in found]

    async def assistant_version(self, assistant_id: str, version: int) -> AssistantVersion | None:
        found = await self._inner.assistant_version(assistant_id, version)
        return None if found is None else await self._dec_version(found)

    # threads
    async def _dec_thread(self, t: Thread | None) -> Thread | None:
        if t is None:
            return None
        metadata, _ = await self._at.decrypt("thread", "metadata", t.metadata)
        values, _ = await self._at.decrypt("thread", "values", t.values)
        config = await self._at.decrypt_config("thread", t.config)
        return dataclasses.replace(t, metadata=metadata, values=values, config=config)

    async def insert_thread(self, thread: Thread) -> None:
        await self._inner.insert_thread(
            dataclasses.replace(
                thread,
                metadata=await self._at.encrypt("thread", "metadata", thread.metadata),
                values=await self._at.encrypt("thread", "values", thread.values),
                config=await self._at.encrypt_config("thread", thread.config),
            )
        )

    async def get_thread(
        self, thread_id: str, auth: Json | None = None, *, values: bool = True, encoded_values: bool = False
    ) -> Thread | None:
        # Values are decrypted here, so they are always read decoded.
        return await self._dec_thread(await self._inner.get_thread(thread_id, auth, values=values))

    async def update_thread_metadata(self, thread_id: str, metadata: Json, updated_at: str) -> None:
        await self._inner.update_thread_metadata(
            thread_id, await self._at.encrypt("thread", "metadata", metadata), updated_at
        )

    async def set_thread_state(self, thread_id: str, *, values: Any, **kwargs: Any) -> None:
        await self._inner.set_thread_state(
            thread_id, values=await self._at.encrypt("thread", "values", values), **kwargs
        )

    async def search_threads(self, *, metadata: Json | None, values: Json | None, **kwargs: Any) -> list[Thread]:
        metadata = await self._at.encrypt_filter("thread", "metadata", metadata)
        values = await self._at.encrypt_filter("thread", "values", values)
        found = await self._inner.search_threads(metadata=metadata, values=values, **kwargs)
        return [cast(Thread, await self._dec_thread(t)) for t in found]

    async def count_threads(self, *, metadata: Json | None, values: Json | None, **kwargs: Any) -> int:
        metadata = await self._at.encrypt_filter("thread", "metadata", metadata)
        values = await self._at.encrypt_filter("thread", "values", values)
        return await self._inner.count_threads(metadata=metadata, values=values, **kwargs)

    # runs
    async def _dec_run(self, r: Run | None) -> Run | None:
        return None if r is None else await decrypted_run(self._at, r)

    async def _dec_runs(self, runs: Sequence[Run]) -> list[Run]:
        return [cast(Run, await self._dec_run(r)) for r in runs]

    async def insert_run(self, run: Run) -> None:
        await self._inner.insert_run(
            dataclasses.replace(
                run,
                metadata=await self._at.encrypt("run", "metadata", run.metadata),
                kwargs=await self._at.encrypt_kwargs(run.kwargs),
            )
        )

    async def get_run(self, run_id: str, thread_id: str | None = None) -> Run | None:
        return await self._dec_run(await self._inner.get_run(run_id, thread_id))

    async def list_runs(self, thread_id: str, *, metadata: Json | None = None, **kwargs: Any) -> list[Run]:
        metadata = await self._at.encrypt_filter("run", "metadata", metadata)
        return await self._dec_runs(await self._inner.list_runs(thread_id, metadata=metadata, **kwargs))

    async def inflight_runs(self, thread_id: str) -> list[Run]:
        return await self._dec_runs(await self._inner.inflight_runs(thread_id))

    async def claim_run(self, worker_id: str, now: float, lease_seconds: float) -> Run | None:
        return await self._dec_run(await self._inner.claim_run(worker_id, now, lease_seconds))

    async def finish_run(self, run_id: str, status: Any, output: Any, updated_at: str) -> None:
        await self._inner.finish_run(run_id, status, await self._at.encrypt("run", "output", output), updated_at)

    async def runs_leased_by_others(self, now: float) -> list[Run]:
        return await self._dec_runs(await self._inner.runs_leased_by_others(now))

    async def running_runs(self) -> list[Run]:
        return await self._dec_runs(await self._inner.running_runs())

    async def cancellable_runs(self, **kwargs: Any) -> list[Run]:
        return await self._dec_runs(await self._inner.cancellable_runs(**kwargs))

    async def leased_runs(self, **kwargs: Any) -> list[LeasedRun]:
        found = await self._inner.leased_runs(**kwargs)
        return [dataclasses.replace(x, run=cast(Run, await self._dec_run(x.run))) for x in found]

    async def leased_run(self, run_id: str) -> LeasedRun | None:
        found = await self._inner.leased_run(run_id)
        if found is None:
            return None
        return dataclasses.replace(found, run=cast(Run, await self._dec_run(found.run)))

    # crons
    async def _enc_cron(self, c: Cron) -> Cron:
        return dataclasses.replace(
            c,
            metadata=await self._at.encrypt("cron", "metadata", c.metadata),
            payload=await self._at.encrypt("cron", "payload", c.payload),
        )

    async def _dec_cron(self, c: Cron | None) -> Cron | None:
        if c is None:
            return None
        metadata, _ = await self._at.decrypt("cron", "metadata", c.metadata)
        payload, context = await self._at.decrypt("cron", "payload", c.payload)
        return dataclasses.replace(c, metadata=metadata, payload=payload, encryption_context=context)

    async def insert_cron(self, cron: Cron) -> None:
        await self._inner.insert_cron(await self._enc_cron(cron))

    async def get_cron(self, cron_id: str, auth: Json | None = None) -> Cron | None:
        return await self._dec_cron(await self._inner.get_cron(cron_id, auth))

    async def update_cron(self, cron: Cron) -> None:
        await self._inner.update_cron(await self._enc_cron(cron))

    async def search_crons(self, *, metadata: Json | None, **kwargs: Any) -> list[Cron]:
        metadata = await self._at.encrypt_filter("cron", "metadata", metadata)
        found = await self._inner.search_crons(metadata=metadata, **kwargs)
        return [cast(Cron, await self._dec_cron(c)) for c in found]

    async def count_crons(self, *, metadata: Json | None, **kwargs: Any) -> int:
        metadata = await self._at.encrypt_filter("cron", "metadata", metadata)
        return await self._inner.count_crons(metadata=metadata, **kwargs)

    async def due_crons(self, now: str, limit: int) -> list[Cron]:
        return [cast(Cron, await self._dec_cron(c)) for c in await self._inner.due_crons(now, limit)]


class EncryptingStorage:
    """The Storage port with encrypting sessions; the saver's serializer is swapped at construction."""

    def __init__(self, inner: Storage, at_rest: AtRest) -> None:
        self._inner = inner
        self.at_rest = at_rest
        self._store: BaseStore = EncryptingStore(inner.store, at_rest) if at_rest.json_enabled else inner.store
        if at_rest.blob_enabled:
            saver: BaseCheckpointSaver[Any] = inner.checkpointer
            if not isinstance(saver.serde, EncryptedSerializer):
                saver.serde = EncryptedSerializer(BlobCipher(at_rest), saver.serde)
        if at_rest.json_enabled:
            # Checkpoint metadata holds the run's metadata and configurable values, merged in by LangGraph.
            # Both of graphyard's savers take a codec (storage.ports.CheckpointMetadataCodec).
            cast(Any, inner.checkpointer).metadata_codec = CheckpointMetadataEncryption(at_rest)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def store(self) -> BaseStore:
        return self._store

    @contextlib.asynccontextmanager
    async def transaction(self) -> Any:
        async with self._inner.transaction() as session:
            # Blob handlers alone leave our rows as they are: no per-row detour then.
            yield EncryptingSession(session, self.at_rest) if self.at_rest.json_enabled else session

    async def claim_next(self, worker_id: str, now: float, lease_seconds: float) -> tuple[Run | None, float | None]:
        # Claimed outside a session (one round trip on PostgreSQL): its run is decrypted here instead.
        run, next_at = await self._inner.claim_next(worker_id, now, lease_seconds)
        if run is not None and self.at_rest.json_enabled:
            run = await decrypted_run(self.at_rest, run)
        return run, next_at

    @contextlib.asynccontextmanager
    async def read(self) -> Any:
        async with self._inner.read() as session:
            yield EncryptingSession(session, self.at_rest) if self.at_rest.json_enabled else session

    async def close(self) -> None:
        await self._inner.close()
        self.at_rest.close()


def at_rest_for(plugins: Plugins) -> AtRest | None:
    """The project's encryption handlers, or None when langgraph.json has no `encryption` key."""
    if plugins.encryption is None:
        return None
    return AtRest(plugins.encryption, plugins.encryption_ref or "encryption")


def encrypting(storage: Storage, plugins: Plugins) -> Storage:
    """`storage` with the project's encryption applied; `storage` itself when there is none."""
    at_rest = at_rest_for(plugins)
    if at_rest is None:
        return storage
    return cast(Storage, EncryptingStorage(storage, at_rest))


def at_rest_of(storage: Storage) -> AtRest | None:
    """The encryption a storage applies, if any (for the request middleware)."""
    return storage.at_rest if isinstance(storage, EncryptingStorage) else None
