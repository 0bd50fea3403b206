"""The thread protocol's subscription filter and wire framing (pure functions of graphyard.services.protocol)."""

from __future__ import annotations

import orjson
import pytest

from graphyard.broker.ports import StreamEvent
from graphyard.services.protocol import CommandError, EventFilter, event_name, parse_filter, wire_event


def stored(method: str, namespace: list[str], data: object = None, seq: int = 7) -> StreamEvent:
    """A protocol event as the broker keeps it."""
    params = {"namespace": namespace, "timestamp": 1, "data": data}
    return StreamEvent(f"{seq}-0", event_name(method, namespace), orjson.dumps(params))


def test_channels_select_methods_and_input_means_input_requested() -> None:
    """An event passes when its channel is asked for; `input.requested` is the `input` channel."""
    found = EventFilter(frozenset({"values", "input"}))
    assert found.matches(stored("values", []))
    assert found.matches(stored("input.requested", []))
    assert not found.matches(stored("messages", []))


def test_custom_name_channels_select_by_payload_name() -> None:
    """`custom:<name>` selects writer payloads with that name; `custom` selects all of them."""
    named = EventFilter(frozenset({"custom:progress"}))
    assert named.matches(stored("custom", [], {"name": "progress", "step": 1}))
    assert not named.matches(stored("custom", [], {"name": "other"}))
    assert not named.matches(stored("custom", [], {"no": "name"}))
    assert EventFilter(frozenset({"custom"})).matches(stored("custom", [], {"name": "other"}))


@pytest.mark.parametrize(
    ("prefix", "depth", "namespace", "expected"),
    [
        ([], None, ["child:1", "grand:2"], True),
        ([], 0, ["child:1"], False),
        ([], 1, ["child:1"], True),
        (["child"], 0, ["child:1"], True),
        (["child:1"], 0, ["child:1"], True),
        (["child:2"], None, ["child:1"], False),
        (["child"], 0, ["child:1", "grand:2"], False),
        (["child", "grand"], None, ["child:1", "grand:2"], True),
        (["other"], None, ["child:1"], False),
    ],
)
def test_namespace_prefixes_and_depth(
    prefix: list[str], depth: int | None, namespace: list[str], expected: bool
) -> None:
    """A prefix segment without a task id matches any invocation; depth counts levels below the prefix."""
    found = EventFilter(frozenset({"values"}), (tuple(prefix),), depth)
    assert found.matches(stored("values", namespace)) is expected


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"channels": []},
        {"channels": "values"},
        {"channels": ["values", 3]},
        {"channels": ["everything"]},
        {"channels": ["custom:"]},
        {"channels": ["values"], "namespaces": ["a"]},
        {"channels": ["values"], "depth": -1},
        {"channels": ["values"], "depth": True},
        {"channels": ["values"], "since": "3"},
    ],
)
def test_bad_subscriptions_are_invalid_arguments(params: dict[str, object]) -> None:
    """Malformed subscription parameters are refused with invalid_argument, never accepted loosely."""
    with pytest.raises(CommandError) as refused:
        parse_filter(params)
    assert refused.value.code == "invalid_argument"


def test_wire_event_wraps_the_stored_params_with_its_seq() -> None:
    """The wire event is the stored params inside the protocol envelope, with event_id and seq from the id."""
    seq, method, body = wire_event(stored("lifecycle", ["child:1"], {"event": "started"}, seq=42))
    event = orjson.loads(body)
    assert (seq, method) == (42, "lifecycle")
    assert event == {
        "type": "event",
        "event_id": "42",
        "seq": 42,
        "method": "lifecycle",
        "params": {"namespace": ["child:1"], "timestamp": 1, "data": {"event": "started"}},
    }
