"""The broker contract: every rule of graphyard.broker.ports, run on the memory and the Redis adapter."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis import exceptions as redis_errors

from graphyard.broker.memory import MemoryBroker
from graphyard.broker.ports import Broker, StreamEvent, Subscription
from graphyard.broker.redis import RedisBroker

DEADLINE = 10.0
ID_PATTERN = re.compile(r"^\d+-\d+$")


# --- fixtures -------------------------------------------------------------------------------------


@dataclass
class RedisEnv:
    """A reachable Redis and a key prefix of this test's own, deleted at teardown."""

    url: str
    prefix: str


@pytest.fixture
def redis_env() -> Iterator[RedisEnv]:
    """Redis at GRAPHYARD_TEST_REDIS_URL with a fresh prefix; skip if unreachable, fail if CI=true."""
    # Synchronous on purpose: the parametrized `backend` fixture pulls it in with getfixturevalue,
    # which cannot set up an async fixture from inside a running event loop.
    url = os.environ.get("GRAPHYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = SyncRedis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        try:
            client.ping()
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(f"Redis unreachable at {url} (CI=true makes this a failure): {exc}")
            pytest.skip(f"Redis unreachable at {url}: {exc}")
        env = RedisEnv(url, f"graphyard-test:{uuid.uuid4().hex}:")
        yield env
        keys = list(client.scan_iter(match=f"{env.prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@dataclass
class Backend:
    """Opens brokers of one adapter that share one namespace, and closes them all at teardown."""

    kind: str
    redis: RedisEnv | None = None
    opened: list[Broker] = field(default_factory=list)

    async def open(self, **options: Any) -> Broker:
        """A new broker instance (Redis), or the one shared instance (memory: there is no other process)."""
        if self.redis is None:
            if not self.opened:
                self.opened.append(MemoryBroker(**options))
            return self.opened[0]
        broker = await RedisBroker.connect(self.redis.url, prefix=self.redis.prefix, **options)
        self.opened.append(broker)
        return broker


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """Each adapter in turn (ids `memory`, `redis`); every broker it opened is closed afterwards."""
    kind: str = request.param
    env: RedisEnv | None = request.getfixturevalue("redis_env") if kind == "redis" else None
    backend = Backend(kind, env)
    try:
        yield backend
    finally:
        for broker in backend.opened:
            await broker.close()


@pytest.fixture
async def broker(backend: Backend) -> Broker:
    """The broker under test."""
    return await backend.open()


@pytest.fixture
async def peer(backend: Backend, broker: Broker) -> Broker:
    """Another process's broker on the same namespace (for memory, the same instance)."""
    return await backend.open()


# --- helpers --------------------------------------------------------------------------------------


def channel() -> str:
    """A fresh channel named like the engine's run channels."""
    return f"run:{uuid.uuid4()}"


def key(event_id: str) -> tuple[int, int]:
    """An event id as the (ms, seq) pair it sorts by."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


async def collect(sub: Subscription, timeout: float = DEADLINE) -> list[StreamEvent]:
    """Every event until the subscription ends; fails if it does not end within timeout."""
    events: list[StreamEvent] = []
    try:
        async with asyncio.timeout(timeout):
            async for event in sub:
                events.append(event)
    finally:
        await sub.aclose()
    return events


async def publish_many(
    broker: Broker, ch: str, count: int, *, keep: bool | None = True, tag: str = "e"
) -> list[StreamEvent]:
    """Publish count events (keep=None alternates kept and not kept); returns them with their ids."""
    out = []
    for i in range(count):
        data = f'{{"{tag}":{i}}}'.encode()
        kept = (i % 2 == 0) if keep is None else keep
        event_id = await broker.publish(ch, "values", data, keep=kept)
        out.append(StreamEvent(event_id, "values", data))
    return out


async def until(condition: Any, resend: Any, timeout: float = DEADLINE) -> None:
    """Call resend() until condition() holds: pub/sub reaches only listeners already subscribed."""
    async with asyncio.timeout(timeout):
        while not condition():
            await resend()
            await asyncio.sleep(0.05)


# --- ids ------------------------------------------------------------------------------------------


async def test_ids_unique_and_increasing_under_burst(broker: Broker) -> None:
    """Ids of a burst of 1000 publishes are `<ms>-<seq>`, unique and strictly increasing as (ms, seq)."""
    ch = channel()
    sent = await publish_many(broker, ch, 1000)
    ids = [e.id for e in sent]
    assert all(ID_PATTERN.match(i) for i in ids)
    assert len(set(ids)) == 1000
    assert all(key(a) < key(b) for a, b in itertools.pairwise(ids))
    await broker.close_channel(ch)
    assert [e.id for e in await collect(await broker.subscribe(ch, last_event_id="-"))] == ids


# --- live delivery --------------------------------------------------------------------------------


async def test_subscribe_before_publish_misses_nothing(broker: Broker) -> None:
    """A subscription made before the first publish receives every event, kept or not, in order."""
    ch = channel()
    sub = await broker.subscribe(ch)
    sent = await publish_many(broker, ch, 50, keep=None)
    await broker.close_channel(ch)
    assert await collect(sub) == sent


async def test_subscriber_sees_only_events_after_it_subscribed(broker: Broker) -> None:
    """Without last_event_id, a subscription starts at now: earlier events are not delivered."""
    ch = channel()
    await publish_many(broker, ch, 5, tag="before")
    sub = await broker.subscribe(ch)
    after = await publish_many(broker, ch, 5, tag="after")
    await broker.close_channel(ch)
    assert await collect(sub) == after


async def test_two_subscribers_get_identical_sequences(broker: Broker, peer: Broker) -> None:
    """Two subscribers, reading while events are published, receive the same events in the same order."""
    ch = channel()
    subs = [await broker.subscribe(ch), await peer.subscribe(ch)]
    readers = [asyncio.create_task(collect(sub)) for sub in subs]
    sent: list[StreamEvent] = []
    for _ in range(20):
        sent += await publish_many(broker, ch, 5, keep=None)
        await asyncio.sleep(0)
    await broker.close_channel(ch)
    first, second = await asyncio.gather(*readers)
    assert first == second == sent


async def test_subscription_ends_when_channel_closes(broker: Broker) -> None:
    """A live subscriber waiting for events ends once the channel is closed, after what was published."""
    ch = channel()
    sub = await broker.subscribe(ch)
    reader = asyncio.create_task(collect(sub))
    sent = await publish_many(broker, ch, 3)
    assert not await broker.is_closed(ch)
    await broker.close_channel(ch)
    assert await asyncio.wait_for(reader, DEADLINE) == sent
    assert await broker.is_closed(ch)


async def test_waiting_reader_survives_cancelled_waits(broker: Broker) -> None:
    """Abandoning a wait for the next event (a heartbeat timeout) loses no event."""
    ch = channel()
    sub = await broker.subscribe(ch)
    it = aiter(sub)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(it), 0.05)
    sent = await publish_many(broker, ch, 2)
    await broker.close_channel(ch)
    assert await collect(sub) == sent


async def test_aclose_never_suspends(broker: Broker) -> None:
    """aclose finishes without suspending, even with a read in flight (it runs in finally of cancelled tasks)."""
    ch = channel()
    sub = await broker.subscribe(ch)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(aiter(sub)), 0.05)
    closing = sub.aclose()
    with pytest.raises(StopIteration):
        closing.send(None)


async def test_data_bytes_and_names_delivered_unchanged(broker: Broker) -> None:
    """Event data is opaque bytes (including empty and non-UTF-8) and names arrive as published."""
    ch = channel()
    payloads = [bytes(range(256)), b"", b"\xff\xfe\x00\x80", '{"k":"é✓"}'.encode(), b"\r\n\r\ndata: x"]
    names = ["values", "custom|sub:1|é", "messages/partial", "error", "metadata"]
    sub = await broker.subscribe(ch)
    sent = [StreamEvent(await broker.publish(ch, n, d, keep=True), n, d) for n, d in zip(names, payloads, strict=True)]
    await broker.close_channel(ch)
    assert await collect(sub) == sent
    assert await collect(await broker.subscribe(ch, last_event_id="0")) == sent


# --- replay ---------------------------------------------------------------------------------------


async def test_replay_after_every_position(broker: Broker) -> None:
    """For each id of a resumable stream, subscribing with it replays exactly the events after it."""
    ch = channel()
    sent = await publish_many(broker, ch, 25)
    await broker.close_channel(ch)
    for i, event in enumerate(sent):
        assert await collect(await broker.subscribe(ch, last_event_id=event.id)) == sent[i + 1 :]


@pytest.mark.parametrize("start", ["-", "0"])
async def test_replay_from_start_markers(broker: Broker, start: str) -> None:
    """`-` and `0` as last_event_id replay every kept event."""
    ch = channel()
    sent = await publish_many(broker, ch, 10)
    await broker.close_channel(ch)
    assert await collect(await broker.subscribe(ch, last_event_id=start)) == sent


async def test_replay_only_kept_events(broker: Broker) -> None:
    """Replay delivers the kept events after last_event_id and none of the events published with keep=False."""
    ch = channel()
    sent = await publish_many(broker, ch, 20, keep=None)
    kept = sent[0::2]
    await broker.close_channel(ch)
    assert await collect(await broker.subscribe(ch, last_event_id="-")) == kept
    assert await collect(await broker.subscribe(ch, last_event_id=sent[9].id)) == [e for e in kept if e in sent[10:]]


async def test_replay_then_live_without_gap(broker: Broker) -> None:
    """Resuming on an open channel replays the kept events after the id, then continues live, no duplicates."""
    ch = channel()
    before = await publish_many(broker, ch, 10, tag="before")
    sub = await broker.subscribe(ch, last_event_id=before[3].id)
    reader = asyncio.create_task(collect(sub))
    live = await publish_many(broker, ch, 10, keep=None, tag="live")
    await broker.close_channel(ch)
    assert await asyncio.wait_for(reader, DEADLINE) == before[4:] + live


async def test_closed_channel_with_last_event_id_replays_and_ends(broker: Broker) -> None:
    """Subscribing to a closed channel replays what last_event_id asks for and then ends."""
    ch = channel()
    sent = await publish_many(broker, ch, 6)
    await broker.close_channel(ch)
    assert await broker.is_closed(ch)
    assert await collect(await broker.subscribe(ch, last_event_id=sent[1].id)) == sent[2:]
    assert await collect(await broker.subscribe(ch, last_event_id=sent[-1].id)) == []


async def test_closed_channel_without_last_event_id_ends_at_once(broker: Broker) -> None:
    """Subscribing to a closed channel without last_event_id yields nothing and ends."""
    ch = channel()
    await publish_many(broker, ch, 3)
    await broker.close_channel(ch)
    assert await collect(await broker.subscribe(ch), timeout=2.0) == []


async def test_unknown_channel_is_not_closed(broker: Broker) -> None:
    """A channel nobody published to or closed is not closed."""
    assert not await broker.is_closed(channel())


async def test_dropped_channel_replays_nothing_it_kept(broker: Broker, peer: Broker) -> None:
    """drop_channel forgets kept events, numbering and the closed flag at once, for every instance."""
    ch, numbered = channel(), channel()
    await publish_many(broker, ch, 3)
    await broker.close_channel(ch)
    await broker.append_numbered(numbered, "values", b"n", mark=True)
    await peer.drop_channel(ch)
    await peer.drop_channel(numbered)
    assert not await broker.is_closed(ch)
    assert await broker.numbered_head(numbered) == (0, 0)
    assert await broker.append_numbered(numbered, "values", b"again") == 1
    await broker.drop_channel(channel())  # an unknown channel: nothing to do
    after = await publish_many(broker, ch, 1, tag="after")
    await broker.close_channel(ch)
    assert await collect(await peer.subscribe(ch, last_event_id="-")) == after


async def test_live_subscriber_of_a_dropped_channel_gets_later_events(broker: Broker, peer: Broker) -> None:
    """A listener attached when its channel is dropped is not ended: it gets what is published there later."""
    ch = channel()
    await publish_many(broker, ch, 2)
    sub = await peer.subscribe(ch)
    await broker.drop_channel(ch)
    later = await publish_many(broker, ch, 2, tag="later")
    await broker.close_channel(ch)
    assert await collect(sub) == later


# --- cancel signals -------------------------------------------------------------------------------


async def test_numbered_events_count_from_one_across_instances(broker: Broker, peer: Broker) -> None:
    """append_numbered gives 1, 2, 3, ... on a channel whoever appends, with ids `<n>-0`, and reports the head."""
    ch = channel()
    assert await broker.numbered_head(ch) == (0, 0)
    numbers = [await (broker if i % 2 else peer).append_numbered(ch, "values", b"%d" % i) for i in range(6)]
    assert numbers == [1, 2, 3, 4, 5, 6]
    assert await peer.numbered_head(ch) == (6, 0)
    sub = await broker.subscribe(ch, last_event_id="0-0")
    replayed = [await anext(sub) for _ in range(6)]
    await sub.aclose()
    assert [e.id for e in replayed] == [f"{n}-0" for n in numbers]
    assert [e.data for e in replayed] == [b"%d" % i for i in range(6)]


async def test_numbered_replay_after_a_number_then_live(broker: Broker, peer: Broker) -> None:
    """Subscribing after `<n>-0` replays the numbered events after n, then delivers later ones live."""
    ch = channel()
    for i in range(5):
        await broker.append_numbered(ch, "values", b"%d" % i)
    sub = await peer.subscribe(ch, last_event_id="3-0")
    await broker.append_numbered(ch, "values", b"live")
    got = [await asyncio.wait_for(anext(sub), DEADLINE) for _ in range(3)]
    await sub.aclose()
    assert [e.id for e in got] == ["4-0", "5-0", "6-0"]
    assert got[-1].data == b"live"


async def test_numbered_mark_is_the_last_marked_number(broker: Broker, peer: Broker) -> None:
    """A mark remembers the number it was given with, until a later mark replaces it."""
    ch = channel()
    await broker.append_numbered(ch, "a", b"")
    marked = await broker.append_numbered(ch, "b", b"", mark=True)
    await peer.append_numbered(ch, "c", b"")
    assert await peer.numbered_head(ch) == (3, marked)
    again = await peer.append_numbered(ch, "d", b"", mark=True)
    assert await broker.numbered_head(ch) == (4, again)


async def test_cancel_reaches_callback_on_another_instance(broker: Broker, peer: Broker) -> None:
    """send_cancel on one broker calls the callback registered for that run on another broker, only for that run."""
    run_id, other_run = str(uuid.uuid4()), str(uuid.uuid4())
    got: list[str] = []
    other: list[str] = []
    peer.on_cancel(run_id, got.append)
    peer.on_cancel(other_run, other.append)
    await until(lambda: bool(got), lambda: broker.send_cancel(run_id, "interrupt"))
    assert set(got) == {"interrupt"}
    assert other == []


async def test_unregister_stops_delivery(broker: Broker, peer: Broker) -> None:
    """After its unregister function is called, a callback receives no more cancels for the run."""
    run_id = str(uuid.uuid4())
    removed: list[str] = []
    staying: list[str] = []
    unregister = peer.on_cancel(run_id, removed.append)
    peer.on_cancel(run_id, staying.append)
    await until(lambda: bool(removed) and bool(staying), lambda: broker.send_cancel(run_id, "interrupt"))
    unregister()
    # Both callbacks are called for the same message, so once `staying` has it, `removed` would have too.
    await until(lambda: "rollback" in staying, lambda: broker.send_cancel(run_id, "rollback"))
    assert "rollback" not in removed


# --- Redis only -----------------------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_streams_expire(redis_env: RedisEnv) -> None:
    """Every publish and close sets the stream's TTL; an expired channel is gone and no longer closed."""
    broker = await RedisBroker.connect(redis_env.url, prefix=redis_env.prefix, ttl_seconds=0.5)
    try:
        ch = channel()
        stream = f"{redis_env.prefix}stream:{ch}"
        await broker.publish(ch, "values", b"{}", keep=True)
        assert 0 < await broker.redis.pttl(stream) <= 500
        await broker.close_channel(ch)
        assert 0 < await broker.redis.pttl(stream) <= 500
        assert await broker.is_closed(ch)
        deadline = time.monotonic() + DEADLINE
        while await broker.redis.exists(stream):
            assert time.monotonic() < deadline, "the stream did not expire"
            await asyncio.sleep(0.05)
        assert not await broker.is_closed(ch)
    finally:
        await broker.close()


@pytest.mark.redis
async def test_redis_a_worker_listens_before_its_first_run(redis_env: RedisEnv) -> None:
    """listen_for_cancels subscribes before any run registers, so the very first signal for a run
    registered afterwards arrives once (a lazily started listener would miss it)."""
    sender = await RedisBroker.connect(redis_env.url, prefix=redis_env.prefix)
    worker = await RedisBroker.connect(redis_env.url, prefix=redis_env.prefix)
    try:
        worker.listen_for_cancels()
        channel_name = f"{redis_env.prefix}cancel"
        deadline = time.monotonic() + DEADLINE
        while dict(await sender.redis.pubsub_numsub(channel_name)).get(channel_name.encode(), 0) < 1:
            assert time.monotonic() < deadline, "the listener never subscribed"
            await asyncio.sleep(0.02)
        run_id = str(uuid.uuid4())
        got: list[str] = []
        arrived = asyncio.Event()

        def received(action: str) -> None:
            got.append(action)
            arrived.set()

        worker.on_cancel(run_id, received)
        await sender.send_cancel(run_id, "rollback")
        async with asyncio.timeout(DEADLINE):
            await arrived.wait()
        assert got == ["rollback"]
    finally:
        await worker.close()
        await sender.close()


@pytest.mark.redis
async def test_redis_numbered_channel_expires_with_its_counter(redis_env: RedisEnv) -> None:
    """A numbered channel's stream, counter and mark share one TTL, so numbering restarts after expiry."""
    broker = await RedisBroker.connect(redis_env.url, prefix=redis_env.prefix, ttl_seconds=0.5)
    try:
        ch = channel()
        await broker.append_numbered(ch, "values", b"{}", mark=True)
        for key in (f"stream:{ch}", f"number:{ch}", f"mark:{ch}"):
            assert 0 < await broker.redis.pttl(f"{redis_env.prefix}{key}") <= 500
        deadline = time.monotonic() + DEADLINE
        while await broker.numbered_head(ch) != (0, 0):
            assert time.monotonic() < deadline, "the numbered channel did not expire"
            await asyncio.sleep(0.05)
        assert await broker.append_numbered(ch, "values", b"{}") == 1
    finally:
        await broker.close()


@pytest.mark.redis
async def test_redis_stream_bounded_by_maxlen(redis_env: RedisEnv) -> None:
    """A channel's stream is trimmed to about maxlen entries (MAXLEN ~)."""
    broker = await RedisBroker.connect(redis_env.url, prefix=redis_env.prefix, maxlen=100)
    try:
        ch = channel()
        await publish_many(broker, ch, 1000)
        length = await broker.redis.xlen(f"{redis_env.prefix}stream:{ch}")
        assert 100 <= length < 1000
    finally:
        await broker.close()


async def test_memory_history_is_bounded_by_bytes() -> None:
    """The in-process broker keeps at most its byte budget of a channel's history, dropping the oldest."""

    small = MemoryBroker(history_bytes=1000)
    name = channel()
    ids = [await small.publish(name, "values", bytes([i]) * 300, keep=True) for i in range(10)]
    await small.close_channel(name)
    kept = await collect(await small.subscribe(name, last_event_id="-"))
    assert [e.id for e in kept] == ids[-3:]
    assert [e.data for e in kept] == [bytes([i]) * 300 for i in (7, 8, 9)]
    await small.close()


async def test_memory_broker_holds_no_channel_past_its_retention() -> None:
    """The in-process broker keeps no state for a channel once it is dropped, nor for one idle (closed or
    never closed, as a thread's is) past the retention window."""
    brief = MemoryBroker(grace_seconds=0.2)
    try:
        thread, run, deleted = channel(), channel(), channel()
        for name in (thread, run, deleted):
            await publish_many(brief, name, 3)
        await brief.close_channel(run)
        await brief.drop_channel(deleted)
        assert brief.held_channels() == 2
        deadline = time.monotonic() + DEADLINE
        while brief.held_channels():
            assert time.monotonic() < deadline, "idle channels were kept past the retention window"
            await asyncio.sleep(0.05)
    finally:
        await brief.close()
