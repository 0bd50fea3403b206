"""A deterministic, reversible test encryption: JSON values become "enc:<tenant>:<base64 of their JSON>",
blobs become b"ENC:<tenant>:" + the bytes XOR 0x5A. The tenant comes from the encryption context and
decryption insists on it, so a value read back under another context fails loudly. Values without the
prefix (written before encryption was enabled) pass through. A metadata key `break_encryptor` makes
the JSON encryptor add a key, which the server must refuse."""

from __future__ import annotations

import base64
import json
import warnings
from typing import Any

from langgraph_sdk import Encryption, EncryptionContext
from langgraph_sdk.encryption import LangGraphBetaWarning
from starlette.authentication import BaseUser

PREFIX = "enc:"
BLOB_PREFIX = b"ENC:"
PLAIN_KEYS = {"owner"}

with warnings.catch_warnings():
    warnings.simplefilter("ignore", LangGraphBetaWarning)
    encryption = Encryption()


def _tenant(ctx: EncryptionContext) -> str:
    return str(ctx.metadata.get("tenant", "none"))


@encryption.encrypt.json
async def encrypt_json(ctx: EncryptionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Every value but `owner` (left plain for filters) and None, encrypted for the context's tenant."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in PLAIN_KEYS or value is None:
            out[key] = value
        else:
            encoded = base64.b64encode(json.dumps(value, sort_keys=True).encode()).decode()
            out[key] = f"{PREFIX}{_tenant(ctx)}:{encoded}"
    if "break_encryptor" in data:
        out["added_by_a_buggy_encryptor"] = True
    return out


@encryption.decrypt.json
async def decrypt_json(ctx: EncryptionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Values with the prefix, decrypted if they belong to the context's tenant; others as they are."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, str) and value.startswith(PREFIX):
            tenant, _, encoded = value[len(PREFIX) :].partition(":")
            if tenant != _tenant(ctx):
                raise ValueError(f"{key} was encrypted for tenant {tenant}, read as {_tenant(ctx)}")
            out[key] = json.loads(base64.b64decode(encoded))
        else:
            out[key] = value
    return out


@encryption.encrypt.blob
async def encrypt_blob(ctx: EncryptionContext, blob: bytes) -> bytes:
    """The tenant's prefix, then the bytes XOR 0x5A."""
    return BLOB_PREFIX + _tenant(ctx).encode() + b":" + bytes(b ^ 0x5A for b in blob)


@encryption.decrypt.blob
async def decrypt_blob(ctx: EncryptionContext, blob: bytes) -> bytes:
    """The inverse of encrypt_blob; a blob of another tenant is refused."""
    head = BLOB_PREFIX + _tenant(ctx).encode() + b":"
    if not blob.startswith(head):
        raise ValueError(f"blob not encrypted for tenant {_tenant(ctx)}: {blob[:20]!r}")
    return bytes(b ^ 0x5A for b in blob[len(head) :])


@encryption.context
async def tenant_of_user(user: BaseUser, ctx: EncryptionContext) -> dict[str, Any]:
    """With auth (tenants.json), the tenant is the user, whatever the header said."""
    return {**ctx.metadata, "tenant": user.identity}
