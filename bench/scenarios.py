"""The scenarios. Each drives a running server and returns its parameters, results and a summary line."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamMode

from bench.graphs import TOKENS
from bench.server import Server
from bench.stats import brief, summarize


@dataclass(frozen=True)
class Params:
    """What the command line asked for; `runs` and `warmup` of None mean the scenario's defaults."""

    runs: int | None
    warmup: int | None
    clients: int
    max_seconds: float
    settle_seconds: float


@dataclass
class Outcome:
    params: dict[str, Any]
    results: dict[str, Any]
    summary: str


def _client(server: Server) -> LangGraphClient:
    # api_key=None: never pick up a LangSmith key from the environment and send it to the bench server.
    return get_client(url=server.url, api_key=None, timeout=60.0)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class Deadline:
    """The scenario's time bound: loops stop early, and the results say so (`hit`)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds
        self.hit = False

    def passed(self) -> bool:
        if time.monotonic() >= self._end:
            self.hit = True
            return True
        return False

    def share(self, fraction: float) -> None:
        """Start one variant's share of the bound from now, so a slow server still measures every variant."""
        self._end = time.monotonic() + self.seconds * fraction


async def _timed(action: Callable[[], Awaitable[object]], count: int, deadline: Deadline) -> list[float]:
    samples: list[float] = []
    for _ in range(count):
        if deadline.passed():
            break
        start = time.perf_counter()
        await action()
        samples.append(_ms(start))
    return samples


async def _repeat(action: Callable[[], Awaitable[object]], count: int) -> None:
    for _ in range(count):
        await action()


def _cpu_per_run(server: Server, cpu_before: float, runs: int) -> float | None:
    if runs == 0:
        return None
    return round((server.cpu_seconds() - cpu_before) * 1000.0 / runs, 3)


# --------------------------------------------------------------------------- wait_latency


async def wait_latency(server: Server, p: Params) -> Outcome:
    """Sequential `runs.wait` of the noop graph on one thread, then stateless, plus the floor."""
    runs = p.runs or 300
    warmup = 30 if p.warmup is None else p.warmup
    deadline = Deadline(p.max_seconds)
    client = _client(server)
    results: dict[str, Any] = {}
    try:
        thread_id = (await client.threads.create())["thread_id"]

        async def stateful() -> object:
            return await client.runs.wait(thread_id, "noop", input={})

        async def stateless() -> object:
            return await client.runs.wait(None, "noop", input={})

        for name, action in (("stateful", stateful), ("stateless", stateless)):
            await _repeat(action, warmup)
            deadline.share(1 / 2)
            cpu = server.cpu_seconds()
            samples = await _timed(action, runs, deadline)
            results[name] = {
                "latency_ms": summarize(samples),
                "server_cpu_ms_per_run": _cpu_per_run(server, cpu, len(samples)),
            }
        results["floor"] = await _floor(server, runs)
    finally:
        await client.aclose()
    results["truncated_by_deadline"] = deadline.hit
    s, sl = results["stateful"]["latency_ms"], results["stateless"]["latency_ms"]
    floor = results["floor"]
    summary = (
        f"wait_latency: thread {brief(s)} | stateless p50 {sl['p50']:.2f} p90 {sl['p90']:.2f} p99 {sl['p99']:.2f} ms"
        f" | floor: GET /ok p50 {floor['http_ok_ms']['p50']:.2f} ms + ainvoke p50 {floor['ainvoke_ms']['p50']:.3f} ms"
    )
    return Outcome({"runs": runs, "warmup": warmup, "max_seconds": p.max_seconds}, results, summary)


async def _floor(server: Server, count: int) -> dict[str, Any]:
    """DESIGN's floor: one bare HTTP round trip to the server, and a bare in-process `graph.ainvoke`."""
    from bench.graphs import noop

    async with httpx.AsyncClient(base_url=server.url) as http:

        async def ok() -> object:
            return (await http.get("/ok")).raise_for_status()

        await _repeat(ok, 30)
        http_samples = await _timed(ok, count, Deadline(60))

    async def invoke() -> object:
        return await noop.ainvoke({})

    await _repeat(invoke, 30)
    invoke_samples = await _timed(invoke, count, Deadline(60))
    return {"http_ok_ms": summarize(http_samples), "ainvoke_ms": summarize(invoke_samples)}


# --------------------------------------------------------------------------- first_custom_event


@dataclass
class _StreamTiming:
    headers_ms: float
    first_byte_ms: float
    first_event_ms: float
    first_custom_ms: float
    end_ms: float


async def _raw_stream(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], first_of: str = "custom"
) -> _StreamTiming:
    """POST a streaming run; time headers, first body byte, first event, the first `first_of` event (its name,
    or a name under it: `messages` also matches `messages/partial`) and end of stream, all from the send."""
    first_byte = first_event = first_custom = -1.0
    buffer = b""
    start = time.perf_counter()
    async with http.stream("POST", path, json=body, headers={"Accept": "text/event-stream"}) as response:
        response.raise_for_status()
        headers = _ms(start)
        async for chunk in response.aiter_raw():
            now = _ms(start)
            if first_byte < 0:
                first_byte = now
            buffer += chunk.replace(b"\r\n", b"\n")
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                event = _event_name(block)
                if event is None:
                    continue  # a comment (keep-alive) or an empty block
                if first_event < 0:
                    first_event = now
                if event == "error":
                    raise RuntimeError(f"run streamed an error event: {block!r}")
                if first_custom < 0 and (event == first_of or event.startswith(first_of + "/")):
                    first_custom = now
    end = _ms(start)
    if first_custom < 0:
        raise RuntimeError(f"stream ended without a {first_of} event")
    return _StreamTiming(headers, first_byte, first_event, first_custom, end)


def _event_name(block: bytes) -> str | None:
    for line in block.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip().decode()
    return None


async def first_custom_event(server: Server, p: Params) -> Outcome:
    """Sequential streamed runs of the custom graph: time to the first `custom` event (raw SSE and through the SDK)."""
    runs = p.runs or 300
    warmup = 30 if p.warmup is None else p.warmup
    deadline = Deadline(p.max_seconds)
    client = _client(server)
    results: dict[str, Any] = {}
    body = {"assistant_id": "custom", "input": {}, "stream_mode": ["custom"]}
    try:
        thread_id = (await client.threads.create())["thread_id"]
        async with httpx.AsyncClient(base_url=server.url, timeout=60.0) as http:
            for name, path in (("thread", f"/threads/{thread_id}/runs/stream"), ("stateless", "/runs/stream")):
                for _ in range(warmup):
                    await _raw_stream(http, path, body)
                deadline.share(1 / 3)
                cpu = server.cpu_seconds()
                timings: list[_StreamTiming] = []
                for _ in range(runs):
                    if deadline.passed():
                        break
                    timings.append(await _raw_stream(http, path, body))
                results[f"raw_{name}"] = {
                    "headers_ms": summarize([t.headers_ms for t in timings]),
                    "first_byte_ms": summarize([t.first_byte_ms for t in timings]),
                    "first_event_ms": summarize([t.first_event_ms for t in timings]),
                    "first_custom_ms": summarize([t.first_custom_ms for t in timings]),
                    "end_of_stream_ms": summarize([t.end_ms for t in timings]),
                    "server_cpu_ms_per_run": _cpu_per_run(server, cpu, len(timings)),
                }

        async def sdk_first_custom() -> float:
            start = time.perf_counter()
            first = -1.0
            async for part in client.runs.stream(thread_id, "custom", input={}, stream_mode="custom"):
                if part.event == "custom" and first < 0:
                    first = _ms(start)
                elif part.event == "error":
                    raise RuntimeError(f"run streamed an error event: {part.data!r}")
            if first < 0:
                raise RuntimeError("stream ended without a custom event")
            return first

        for _ in range(warmup):
            await sdk_first_custom()
        deadline.share(1 / 3)
        sdk_samples: list[float] = []
        for _ in range(runs):
            if deadline.passed():
                break
            sdk_samples.append(await sdk_first_custom())
        results["sdk_thread"] = {"first_custom_ms": summarize(sdk_samples)}
    finally:
        await client.aclose()
    results["truncated_by_deadline"] = deadline.hit
    raw, sdk = results["raw_thread"], results["sdk_thread"]
    stateless = results["raw_stateless"]["first_custom_ms"]
    summary = (
        f"first_custom_event: thread {brief(raw['first_custom_ms'])} (first byte p50 {raw['first_byte_ms']['p50']:.2f}"
        f" ms) | stateless p50 {stateless['p50']:.2f} p90 {stateless['p90']:.2f} p99 {stateless['p99']:.2f} ms"
        f" | via SDK p50 {sdk['first_custom_ms']['p50']:.2f} ms"
    )
    return Outcome({"runs": runs, "warmup": warmup, "max_seconds": p.max_seconds}, results, summary)


# --------------------------------------------------------------------------- first_messages_event


async def first_messages_event(server: Server, p: Params) -> Outcome:
    """Sequential streamed runs of the 200-token graph with `stream_mode=["messages-tuple"]` over raw SSE: time
    from sending the run-creating POST to the first `messages` event (each on a new thread, created untimed,
    so history never grows), then the same stateless."""
    runs = p.runs or 100
    warmup = 10 if p.warmup is None else p.warmup
    deadline = Deadline(p.max_seconds)
    client = _client(server)
    results: dict[str, Any] = {}
    body = {"assistant_id": "tokens", "input": TOKENS_INPUT, "stream_mode": ["messages-tuple"]}
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60.0) as http:
            for name in ("thread", "stateless"):

                async def one(variant: str = name) -> _StreamTiming:
                    if variant == "stateless":
                        return await _raw_stream(http, "/runs/stream", body, first_of="messages")
                    thread_id = (await client.threads.create())["thread_id"]
                    return await _raw_stream(http, f"/threads/{thread_id}/runs/stream", body, first_of="messages")

                for _ in range(warmup):
                    await one()
                deadline.share(1 / 2)
                cpu = server.cpu_seconds()
                timings: list[_StreamTiming] = []
                for _ in range(runs):
                    if deadline.passed():
                        break
                    timings.append(await one())
                results[name] = {
                    "headers_ms": summarize([t.headers_ms for t in timings]),
                    "first_event_ms": summarize([t.first_event_ms for t in timings]),
                    "first_messages_ms": summarize([t.first_custom_ms for t in timings]),
                    "end_of_stream_ms": summarize([t.end_ms for t in timings]),
                    "server_cpu_ms_per_run": _cpu_per_run(server, cpu, len(timings)),
                }
    finally:
        await client.aclose()
    results["truncated_by_deadline"] = deadline.hit
    thread, stateless = results["thread"], results["stateless"]
    summary = (
        f"first_messages_event: new thread {brief(thread['first_messages_ms'])} (end of stream p50"
        f" {thread['end_of_stream_ms']['p50']:.1f} ms) | stateless p50 {stateless['first_messages_ms']['p50']:.2f}"
        f" p99 {stateless['first_messages_ms']['p99']:.2f} ms"
    )
    return Outcome({"runs": runs, "warmup": warmup, "max_seconds": p.max_seconds}, results, summary)


# --------------------------------------------------------------------------- protocol_first_values


async def _protocol_run(http: httpx.AsyncClient, thread_id: str) -> tuple[float, float, float]:
    """run.start (noop) then the thread's event stream from the reply's `applied_through_seq`: ms from sending
    run.start to its reply, to the first `values` event, and to the root `completed` event."""
    start = time.perf_counter()
    command = {"id": 1, "method": "run.start", "params": {"assistant_id": "noop", "input": {"n": 1}}}
    reply = (await http.post(f"/threads/{thread_id}/commands", json=command)).json()
    if reply.get("type") != "success":
        raise RuntimeError(f"run.start failed: {reply!r}")
    replied = _ms(start)
    body = {"channels": ["values", "lifecycle"], "since": reply["meta"]["applied_through_seq"]}
    first_values = -1.0
    buffer = b""
    async with http.stream("POST", f"/threads/{thread_id}/stream/events", json=body) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            buffer += chunk.replace(b"\r\n", b"\n")
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                event = _event_name(block)
                if event == "values" and first_values < 0:
                    first_values = _ms(start)
                elif event == "lifecycle" and (b'"completed"' in block or b'"failed"' in block):
                    if b'"failed"' in block or first_values < 0:
                        raise RuntimeError(f"protocol run ended without values: {block!r}")
                    return replied, first_values, _ms(start)
    raise RuntimeError("thread stream ended before the run did")


async def protocol_first_values(server: Server, p: Params) -> Outcome:
    """Sequential runs through the thread protocol (`client.threads.stream`'s wire): time from run.start to
    the first `values` event, on a new client-minted thread each time and on one reused thread."""
    runs = p.runs or 300
    warmup = 30 if p.warmup is None else p.warmup
    deadline = Deadline(p.max_seconds)
    results: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=server.url, timeout=60.0) as http:
        reused = str(uuid.uuid4())
        for name in ("new_thread", "same_thread"):

            def thread_id(variant: str = name) -> str:
                return str(uuid.uuid4()) if variant == "new_thread" else reused

            for _ in range(warmup):
                await _protocol_run(http, thread_id())
            deadline.share(1 / 2)
            cpu = server.cpu_seconds()
            samples: list[tuple[float, float, float]] = []
            for _ in range(runs):
                if deadline.passed():
                    break
                samples.append(await _protocol_run(http, thread_id()))
            results[name] = {
                "run_start_reply_ms": summarize([s[0] for s in samples]),
                "first_values_ms": summarize([s[1] for s in samples]),
                "completed_ms": summarize([s[2] for s in samples]),
                "server_cpu_ms_per_run": _cpu_per_run(server, cpu, len(samples)),
            }
    results["truncated_by_deadline"] = deadline.hit
    new, same = results["new_thread"], results["same_thread"]
    summary = (
        f"protocol_first_values: new thread {brief(new['first_values_ms'])} (run.start reply p50"
        f" {new['run_start_reply_ms']['p50']:.2f} ms) | same thread p50 {same['first_values_ms']['p50']:.2f}"
        f" p90 {same['first_values_ms']['p90']:.2f} ms"
    )
    return Outcome({"runs": runs, "warmup": warmup, "max_seconds": p.max_seconds}, results, summary)


# --------------------------------------------------------------------------- throughput


async def throughput(server: Server, p: Params, *, clients: int | None = None) -> Outcome:
    """`clients` concurrent clients, each doing sequential `runs.wait` of noop on its own thread, while a probe
    times `GET /ok` every 50 ms: its latency above the idle floor is how long the server's event loop stalls."""
    n_clients = clients or p.clients
    per_client = p.runs or 20
    warmup = 2 if p.warmup is None else p.warmup
    deadline = Deadline(p.max_seconds)
    sdk_clients = [_client(server) for _ in range(n_clients)]
    latencies: list[float] = []
    errors: list[str] = []
    transport_errors = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=60.0) as probe_http:
        probe_idle = await _probe_samples(probe_http, 40)
        try:
            threads = [(await c.threads.create())["thread_id"] for c in sdk_clients]

            async def warm(client: LangGraphClient, thread_id: str) -> None:
                for _ in range(warmup):
                    await client.runs.wait(thread_id, "noop", input={})

            async def worker(client: LangGraphClient, thread_id: str) -> int:
                nonlocal transport_errors
                done = 0
                for _ in range(per_client):
                    if deadline.passed():
                        break
                    start = time.perf_counter()
                    try:
                        await client.runs.wait(thread_id, "noop", input={})
                    except Exception as exc:  # noqa: BLE001 - counted and reported in the results, not hidden
                        errors.append(repr(exc))
                        # A connection refused, reset or timed out, as opposed to an HTTP error status.
                        transport_errors += isinstance(exc, httpx.TransportError)
                        continue
                    latencies.append(_ms(start))
                    done += 1
                return done

            pairs = list(zip(sdk_clients, threads, strict=True))
            await asyncio.gather(*(warm(c, t) for c, t in pairs))
            cpu = server.cpu_seconds()
            stop_probe = asyncio.Event()
            probe = asyncio.create_task(_probe_until(probe_http, stop_probe))
            start = time.perf_counter()
            completed = sum(await asyncio.gather(*(worker(c, t) for c, t in pairs)))
            wall = time.perf_counter() - start
            cpu_per_run = _cpu_per_run(server, cpu, completed)
            stop_probe.set()
            probe_loaded = await probe
        finally:
            for c in sdk_clients:
                await c.aclose()
    rate = completed / wall if wall > 0 else 0.0
    latency = summarize(latencies)
    idle, loaded = summarize(probe_idle), summarize(probe_loaded)
    results: dict[str, Any] = {
        "completed_runs": completed,
        "errors": len(errors),
        "transport_errors": transport_errors,
        "error_samples": errors[:5],
        "wall_seconds": round(wall, 3),
        "runs_per_second": round(rate, 2),
        "latency_ms": latency,
        "server_cpu_ms_per_run": cpu_per_run,
        "probe_ok_idle_ms": idle,
        "probe_ok_under_load_ms": loaded,
        "truncated_by_deadline": deadline.hit,
    }
    summary = (
        f"throughput: {rate:.1f} runs/s ({completed} runs, {n_clients} clients, {len(errors)} errors,"
        f" {transport_errors} transport)"
        f" | latency {brief(latency)} | GET /ok under load p50 {loaded['p50']:.1f} p99 {loaded['p99']:.1f}"
        f" max {loaded['max']:.1f} ms (idle p50 {idle['p50']:.1f})"
    )
    params = {"clients": n_clients, "runs_per_client": per_client, "warmup_per_client": warmup}
    return Outcome({**params, "max_seconds": p.max_seconds}, results, summary)


async def throughput_64(server: Server, p: Params) -> Outcome:
    """The throughput scenario at 64 clients: twice the server's 32 run slots, so half always queue."""
    return await throughput(server, p, clients=64)


async def _probe_samples(http: httpx.AsyncClient, count: int) -> list[float]:
    samples: list[float] = []
    for _ in range(count):
        start = time.perf_counter()
        (await http.get("/ok")).raise_for_status()
        samples.append(_ms(start))
        await asyncio.sleep(0.05)
    return samples


async def _probe_until(http: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    """`GET /ok` every 50 ms until stop: a health check does no work, so its latency is the loop's lag."""
    samples: list[float] = []
    while not stop.is_set():
        start = time.perf_counter()
        (await http.get("/ok")).raise_for_status()
        samples.append(_ms(start))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)
    return samples


# --------------------------------------------------------------------------- memory


async def memory(server: Server, p: Params) -> Outcome:
    """Server RSS over many stateless streamed runs, sampled every 500 runs and once more after settling."""
    total = p.runs or 2000
    every = 500
    warmup = 100 if p.warmup is None else p.warmup
    deadline = Deadline(p.max_seconds)
    client = _client(server)
    latencies: list[float] = []
    started = time.monotonic()

    def sample(runs: int, label: str) -> dict[str, Any]:
        return {
            "label": label,
            "runs": runs,
            "elapsed_s": round(time.monotonic() - started, 2),
            "rss_kb": server.rss_kb(),
        }

    async def streamed_run() -> None:
        events = 0
        async for part in client.runs.stream(None, "custom", input={}, stream_mode=["custom", "values", "updates"]):
            if part.event == "error":
                raise RuntimeError(f"run streamed an error event: {part.data!r}")
            events += 1
        if events < 2:
            raise RuntimeError(f"stream had only {events} events")

    samples: list[dict[str, Any]] = []
    second = total // 2

    async def batch(count: int, done: int, label: str) -> int:
        first, end = done, done + count
        while done < end and not deadline.passed():
            start = time.perf_counter()
            await streamed_run()
            latencies.append(_ms(start))
            done += 1
            if done % every == 0 or done == end:
                samples.append(sample(done, label))
        if first < done < end and done % every:
            samples.append(sample(done, label))  # cut short by the deadline: where it got to
        return done

    try:
        samples.append(sample(0, "started"))
        await _repeat(streamed_run, warmup)
        samples.append(sample(0, "after warm-up"))
        deadline.share(2 / 3)
        done = await batch(total, 0, "measured")
        first_done = done
        if p.settle_seconds > 0:
            # Finished runs' stream buffers are kept for a grace period; wait it out, then run again:
            # if the freed memory is reused, RSS stays where it was instead of growing at the same rate.
            await asyncio.sleep(p.settle_seconds)
            samples.append(sample(done, "idle"))
            deadline.share(1 / 3)
            done = await batch(second, done, "after idle")
    finally:
        await client.aclose()
    base = samples[1]["rss_kb"]
    measured = [s for s in samples if s["label"] == "measured"]
    peak = max(s["rss_kb"] for s in samples)
    last_measured = measured[-1]["rss_kb"] if measured else base
    growth = last_measured - base
    per_1000 = growth * 1000 / first_done if first_done else 0.0
    idle = [s for s in samples if s["label"] == "idle"]
    after_idle = [s for s in samples if s["label"] == "after idle"]
    second_growth = after_idle[-1]["rss_kb"] - idle[0]["rss_kb"] if idle and after_idle else None
    results: dict[str, Any] = {
        "samples": samples,
        "baseline_rss_kb": base,
        "final_rss_kb": samples[-1]["rss_kb"],
        "peak_rss_kb": peak,
        "server_hwm_kb": server.hwm_kb(),
        "growth_kb": growth,
        "growth_kb_per_1000_runs": round(per_1000, 1),
        "second_batch_growth_kb": second_growth,
        "completed_runs": done,
        "stream_latency_ms": summarize(latencies),
        "truncated_by_deadline": deadline.hit,
    }
    trail = " -> ".join(f"{s['rss_kb'] / 1024:.1f}" for s in samples[1:])
    again = "" if second_growth is None else f"; {second_growth / 1024:+.1f} MiB over {second} more runs after idle"
    summary = (
        f"memory: RSS MiB {trail} (warm-up, every {every} runs, idle, {second} more) | "
        f"growth {growth / 1024:+.1f} MiB over {first_done} runs ({per_1000:+.0f} KiB/1000 runs){again}"
    )
    params = {
        "runs": total,
        "sample_every": every,
        "warmup": warmup,
        "settle_seconds": p.settle_seconds,
        "runs_after_idle": second,
    }
    return Outcome({**params, "max_seconds": p.max_seconds}, results, summary)


# --------------------------------------------------------------------------- memory_tokens

# The server keeps finished streams this long in memory_tokens, so the bench can wait it out.
TOKENS_TTL_SECONDS = 10.0
TOKENS_INPUT: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
TOKENS_MODES: list[StreamMode] = ["messages-tuple", "values"]


async def memory_tokens(server: Server, p: Params) -> Outcome:
    """Streamed 200-token runs, each on a new thread deleted afterwards; RSS after the retention window."""
    total = p.runs or 2000
    concurrency = 4
    every = 500
    warmup = 50 if p.warmup is None else p.warmup
    deadline = Deadline(p.max_seconds)
    client = _client(server)
    started = time.monotonic()
    samples: list[dict[str, Any]] = []
    latencies: list[float] = []
    events_per_run: list[int] = []

    def sample(runs: int, label: str) -> None:
        rss = server.rss_kb()
        samples.append({"label": label, "runs": runs, "elapsed_s": round(time.monotonic() - started, 2), "rss_kb": rss})

    async def one() -> None:
        thread_id = (await client.threads.create())["thread_id"]
        start = time.perf_counter()
        events = 0
        async for part in client.runs.stream(thread_id, "tokens", input=TOKENS_INPUT, stream_mode=TOKENS_MODES):
            if part.event == "error":
                raise RuntimeError(f"run streamed an error event: {part.data!r}")
            events += 1
        latencies.append(_ms(start))
        events_per_run.append(events)
        await client.threads.delete(thread_id)

    async def settle(label: str, done: int) -> None:
        # Past the retention window every finished stream has been dropped; what is left is what stays.
        await asyncio.sleep(TOKENS_TTL_SECONDS + 5.0)
        sample(done, label)

    done = 0
    try:
        sample(0, "started")
        await _repeat(one, warmup)
        await settle("warm baseline", 0)
        while done < total and not deadline.passed():
            batch = min(concurrency, total - done)
            await asyncio.gather(*(one() for _ in range(batch)))
            before = done
            done += batch
            if done // every != before // every or done == total:
                sample(done, "measured")
        await settle("after retention", done)
    finally:
        await client.aclose()
    base = next(s["rss_kb"] for s in samples if s["label"] == "warm baseline")
    after = samples[-1]["rss_kb"]
    peak = max(s["rss_kb"] for s in samples)
    results: dict[str, Any] = {
        "samples": samples,
        "baseline_rss_kb": base,
        "after_retention_rss_kb": after,
        "retained_growth_kb": after - base,
        "peak_rss_kb": peak,
        "server_hwm_kb": server.hwm_kb(),
        "completed_runs": done,
        "events_per_run": round(statistics.fmean(events_per_run), 1) if events_per_run else None,
        "stream_latency_ms": summarize(latencies),
        "truncated_by_deadline": deadline.hit,
    }
    trail = " -> ".join(f"{s['rss_kb'] / 1024:.1f}" for s in samples[1:])
    summary = (
        f"memory_tokens: RSS MiB {trail} (warm, every {every} runs, after {TOKENS_TTL_SECONDS:.0f}+5 s) | "
        f"{(after - base) / 1024:+.1f} MiB kept after {done} token runs, peak {peak / 1024:.1f} MiB"
    )
    params = {
        "runs": total,
        "concurrency": concurrency,
        "warmup": warmup,
        "stream_mode": TOKENS_MODES,
        "tokens_per_run": TOKENS,
        "stream_ttl_seconds": TOKENS_TTL_SECONDS,
    }
    return Outcome({**params, "max_seconds": p.max_seconds}, results, summary)


# --------------------------------------------------------------------------- large_state

MIB = 1024 * 1024


async def large_state(server: Server, p: Params) -> Outcome:
    """A thread whose state holds 1 MiB: `get_state`, `threads.get` and `get_history(limit=2)` latency."""
    runs = p.runs or 100
    warmup = 10 if p.warmup is None else p.warmup
    deadline = Deadline(p.max_seconds)
    client = _client(server)
    results: dict[str, Any] = {}
    try:
        thread_id = (await client.threads.create())["thread_id"]
        # Two runs, so the history has two checkpoints that both carry the 1 MiB value.
        await client.runs.wait(thread_id, "blob", input={"blob": "x" * MIB})
        await client.runs.wait(thread_id, "blob", input={})

        async def get_state() -> object:
            return await client.threads.get_state(thread_id)

        async def get_thread() -> object:
            return await client.threads.get(thread_id)

        async def get_history() -> object:
            return await client.threads.get_history(thread_id, limit=2)

        for name, action in (("get_state", get_state), ("get", get_thread), ("get_history_2", get_history)):
            await _repeat(action, warmup)
            deadline.share(1 / 3)
            cpu = server.cpu_seconds()
            samples = await _timed(action, runs, deadline)
            results[name] = {
                "latency_ms": summarize(samples),
                "server_cpu_ms_per_call": _cpu_per_run(server, cpu, len(samples)),
            }
    finally:
        await client.aclose()
    results["truncated_by_deadline"] = deadline.hit
    parts = " | ".join(
        f"{name} p50 {results[name]['latency_ms']['p50']:.2f} p99 {results[name]['latency_ms']['p99']:.2f} ms"
        for name in ("get_state", "get", "get_history_2")
    )
    summary = f"large_state (1 MiB): {parts}"
    return Outcome({"runs": runs, "warmup": warmup, "state_bytes": MIB, "max_seconds": p.max_seconds}, results, summary)


# --------------------------------------------------------------------------- burst


async def burst(server: Server, p: Params) -> Outcome:
    """2,000 runs created as fast as 32 clients can (each on its own thread): the create rate, then the
    rate at which they complete, from the first create to the moment every thread is idle again."""
    total = p.runs or 2000
    senders = 32
    deadline = Deadline(p.max_seconds)
    client = _client(server)
    try:
        thread_ids = [(await client.threads.create())["thread_id"] for _ in range(total)]
        queue: asyncio.Queue[str] = asyncio.Queue()
        for thread_id in thread_ids:
            queue.put_nowait(thread_id)
        create_ms: list[float] = []

        async def sender() -> None:
            while not queue.empty() and not deadline.passed():
                thread_id = queue.get_nowait()
                start = time.perf_counter()
                await client.runs.create(thread_id, "noop", input={})
                create_ms.append(_ms(start))

        cpu = server.cpu_seconds()
        start = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(senders)))
        created_s = time.perf_counter() - start
        created = len(create_ms)
        # Threads never sent a run (the deadline cut the senders short) are idle too: done = all idle.
        idle = 0
        while not deadline.passed():
            idle = await client.threads.count(status="idle")
            if idle >= total:
                break
            await asyncio.sleep(0.05)
        idle -= total - created
        completed_s = time.perf_counter() - start
        cpu_per_run = _cpu_per_run(server, cpu, created)
    finally:
        await client.aclose()
    results: dict[str, Any] = {
        "created_runs": created,
        "completed_runs": idle,
        "create_seconds": round(created_s, 3),
        "create_rate_per_second": round(created / created_s, 1) if created_s else None,
        "completion_seconds": round(completed_s, 3),
        "completion_rate_per_second": round(idle / completed_s, 1) if completed_s else None,
        "create_latency_ms": summarize(create_ms),
        "server_cpu_ms_per_run": cpu_per_run,
        "truncated_by_deadline": deadline.hit,
    }
    summary = (
        f"burst: {created} runs created at {results['create_rate_per_second']} runs/s "
        f"(create p50 {results['create_latency_ms']['p50']:.1f} ms), all done at "
        f"{results['completion_rate_per_second']} runs/s ({completed_s:.1f} s)"
    )
    return Outcome({"runs": total, "senders": senders, "max_seconds": p.max_seconds}, results, summary)


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Server, Params], Awaitable[Outcome]]
    n_jobs: int
    # Extra environment for the server process (never credentials).
    env: dict[str, str] = field(default_factory=dict)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("wait_latency", wait_latency, n_jobs=10),
        Scenario("first_custom_event", first_custom_event, n_jobs=10),
        Scenario("first_messages_event", first_messages_event, n_jobs=10),
        Scenario("protocol_first_values", protocol_first_values, n_jobs=10),
        Scenario("throughput", throughput, n_jobs=32),
        Scenario("throughput_64", throughput_64, n_jobs=32),
        Scenario("memory", memory, n_jobs=10),
        Scenario("large_state", large_state, n_jobs=10),
        Scenario("burst", burst, n_jobs=10),
        Scenario(
            "memory_tokens",
            memory_tokens,
            n_jobs=10,
            env={"RESUMABLE_STREAM_TTL_SECONDS": str(int(TOKENS_TTL_SECONDS))},
        ),
    )
}
