"""serde.dumps: what an encoded event costs to hold."""

from __future__ import annotations

import tracemalloc

from graphyard.serde import dumps, loads


def test_encoded_bytes_own_only_their_length() -> None:
    """Held encodings cost about their length, not the encoder's whole buffer (orjson keeps >= 4 KiB)."""
    value = {"content": "x" * 700, "type": "AIMessageChunk"}
    tracemalloc.start()
    try:
        held = [dumps(value) for _ in range(1000)]
        allocated, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    length = len(held[0])
    assert loads(held[0]) == value
    assert allocated < 1000 * (length + 200), f"{allocated / 1000:.0f} bytes held per {length}-byte encoding"
