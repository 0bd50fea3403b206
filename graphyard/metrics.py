"""Prometheus metrics of this process (prometheus_client's default registry, with its process metrics).

Names are the reference's (`lg_api_*`) where it has one, `graphyard_*` otherwise. Times are in
milliseconds, as the reference's. Numbers that are global (runs by status, queue depth) are read from
the database when /metrics is scraped, so every process reports the same value; the rest are this
process's own (its HTTP requests, its worker slots, its stream subscribers, its finished runs).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Milliseconds: from a quick request to a long agent run.
_MS_BUCKETS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 3_600_000)

HTTP_REQUESTS = Counter(
    "lg_api_http_requests", "HTTP requests answered, by method, route template and status", ["method", "path", "status"]
)
HTTP_LATENCY = Histogram(
    "lg_api_http_requests_latency",
    "HTTP request time in ms, by method and route template",
    ["method", "path"],
    buckets=_MS_BUCKETS,
)

RUNS_PENDING = Gauge("lg_api_num_pending_runs", "Runs waiting in the queue (due or delayed), whole database")
RUNS_RUNNING = Gauge("lg_api_num_running_runs", "Runs executing on any worker, whole database")
RUNS_BY_STATUS = Gauge("graphyard_runs", "Runs in the database by status", ["status"])
QUEUE_DEPTH = Gauge(
    "graphyard_queue_depth", "Pending runs: `due` may start now, `delayed` wait for after_seconds", ["state"]
)
QUEUE_OLDEST_SECONDS = Gauge("graphyard_queue_oldest_pending_seconds", "How long the oldest due run has waited")
EXPIRED_LEASES = Gauge("graphyard_runs_expired_leases", "Running runs whose worker stopped renewing its lease")

WORKERS_MAX = Gauge("lg_api_workers_max", "Runs this process may execute at once (N_JOBS_PER_WORKER)")
WORKERS_ACTIVE = Gauge("lg_api_workers_active", "Runs this process is executing")
WORKERS_AVAILABLE = Gauge("lg_api_workers_available", "Free run slots in this process")

RUN_WAIT = Histogram(
    "lg_api_run_queue_wait_time_1st_attempt", "Time from a run being due to its first start, ms", buckets=_MS_BUCKETS
)
RUN_EXECUTION = Histogram(
    "lg_api_run_execution_latency",
    "Time a run executed on this process, ms, by final status",
    ["status"],
    buckets=_MS_BUCKETS,
)
RUNS_FINISHED = Counter("graphyard_runs_finished", "Runs this process finished, by final status", ["status"])

STREAM_SUBSCRIBERS = Gauge("graphyard_stream_subscribers", "Clients streaming run or thread events from this process")


class _Slots:
    """This process's run slots, kept beside the gauges so /metrics?format=json can read them."""

    max = 0
    active = 0


SLOTS = _Slots()


def set_worker_slots(maximum: int, active: int) -> None:
    SLOTS.max, SLOTS.active = maximum, active
    WORKERS_MAX.set(maximum)
    WORKERS_ACTIVE.set(active)
    WORKERS_AVAILABLE.set(max(0, maximum - active))
