"""The four scenarios. Each drives a running server and returns its parameters, results and a summary line."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from bench.server import Server
from bench.stats import brief, summarize

_CLK_TCK = os.sysconf("SC_CLK_TCK")


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


def server_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of the server process so far (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the ")" closing the command name, utime and stime are fields 12 and 13 (0-based).
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


class Deadline:
    """The scenario's time bound: loops stop early, and the results say so."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds
        self.hit = False

    def passed(self) -> bool:
        if time.monotonic() >= self._end:
            self.hit = True
        return self.hit


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
    return round((server_cpu_seconds(server.pid) - cpu_before) * 1000.0 / runs, 3)


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
            cpu = server_cpu_seconds(server.pid)
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


async def _raw_stream(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> _StreamTiming:
    """POST a streaming run; time headers, first body byte, first event, first custom and end from the send."""
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
                if event == "custom" and first_custom < 0:
                    first_custom = now
    end = _ms(start)
    if first_custom < 0:
        raise RuntimeError("stream ended without a custom event")
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
                cpu = server_cpu_seconds(server.pid)
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


# --------------------------------------------------------------------------- throughput


async def throughput(server: Server, p: Params) -> Outcome:
    """`clients` concurrent clients, each doing sequential `runs.wait` of noop on its own thread."""
    per_client = p.runs or 20
    warmup = 2 if p.warmup is None else p.warmup
    deadline = Deadline(p.max_seconds)
    clients = [_client(server) for _ in range(p.clients)]
    latencies: list[float] = []
    errors: list[str] = []
    try:
        threads = [(await c.threads.create())["thread_id"] for c in clients]

        async def warm(client: LangGraphClient, thread_id: str) -> None:
            for _ in range(warmup):
                await client.runs.wait(thread_id, "noop", input={})

        async def worker(client: LangGraphClient, thread_id: str) -> int:
            done = 0
            for _ in range(per_client):
                if deadline.passed():
                    break
                start = time.perf_counter()
                try:
                    await client.runs.wait(thread_id, "noop", input={})
                except Exception as exc:  # noqa: BLE001 - counted and reported in the results, not hidden
                    errors.append(repr(exc))
                    continue
                latencies.append(_ms(start))
                done += 1
            return done

        pairs = list(zip(clients, threads, strict=True))
        await asyncio.gather(*(warm(c, t) for c, t in pairs))
        cpu = server_cpu_seconds(server.pid)
        start = time.perf_counter()
        completed = sum(await asyncio.gather(*(worker(c, t) for c, t in pairs)))
        wall = time.perf_counter() - start
        cpu_per_run = _cpu_per_run(server, cpu, completed)
    finally:
        for c in clients:
            await c.aclose()
    rate = completed / wall if wall > 0 else 0.0
    latency = summarize(latencies)
    results: dict[str, Any] = {
        "completed_runs": completed,
        "errors": len(errors),
        "error_samples": errors[:5],
        "wall_seconds": round(wall, 3),
        "runs_per_second": round(rate, 2),
        "latency_ms": latency,
        "server_cpu_ms_per_run": cpu_per_run,
        "truncated_by_deadline": deadline.hit,
    }
    summary = (
        f"throughput: {rate:.1f} runs/s ({completed} runs, {p.clients} clients, {len(errors)} errors)"
        f" | latency {brief(latency)}"
    )
    params = {"clients": p.clients, "runs_per_client": per_client, "warmup_per_client": warmup}
    return Outcome({**params, "max_seconds": p.max_seconds}, results, summary)


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
        end = done + count
        while done < end and not deadline.passed():
            start = time.perf_counter()
            await streamed_run()
            latencies.append(_ms(start))
            done += 1
            if done % every == 0 or done == end:
                samples.append(sample(done, label))
        return done

    try:
        samples.append(sample(0, "started"))
        await _repeat(streamed_run, warmup)
        samples.append(sample(0, "after warm-up"))
        done = await batch(total, 0, "measured")
        first_done = done
        if p.settle_seconds > 0:
            # Finished runs' stream buffers are kept for a grace period; wait it out, then run again:
            # if the freed memory is reused, RSS stays where it was instead of growing at the same rate.
            await asyncio.sleep(p.settle_seconds)
            samples.append(sample(done, "idle"))
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


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Server, Params], Awaitable[Outcome]]
    n_jobs: int


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("wait_latency", wait_latency, n_jobs=10),
        Scenario("first_custom_event", first_custom_event, n_jobs=10),
        Scenario("throughput", throughput, n_jobs=32),
        Scenario("memory", memory, n_jobs=10),
    )
}
