"""Operator commands against a live deployment's database: `graphyard runs …`, `threads unlock`, `queue`.

They open the same database (and, on PostgreSQL, the same Redis) as the servers and go through the
same services, so a cancel reaches the worker executing the run exactly as an API cancel does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson

from graphyard.broker import open_broker
from graphyard.config import ConfigError, apply_project, load_project_config
from graphyard.errors import GraphyardError
from graphyard.graphs import GraphRegistry
from graphyard.plugins import Plugins, load_encryption
from graphyard.records import CancelAction, LeasedRun, QueueStats
from graphyard.services import operators
from graphyard.services.context import Services
from graphyard.services.encryption import encrypting
from graphyard.settings import Settings
from graphyard.storage import open_storage

_DATABASE_HELP = (
    "the deployment's database: a postgresql:// URI or a SQLite file "
    "(default: $DATABASE_URI, else .graphyard/graphyard.sqlite beside --config, as `graphyard dev` uses)"
)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database", default=None, help=_DATABASE_HELP)
    parser.add_argument(
        "--config", default="langgraph.json", help="the project's langgraph.json (default: %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--log-level", default="WARNING", help="(default: %(default)s)")


def add_admin_commands(sub: Any) -> None:
    """Add `runs`, `threads` and `queue` to the CLI's subcommands."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    runs = sub.add_parser("runs", help="list, show, cancel or requeue runs of a live deployment")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)
    listing = runs_sub.add_parser("list", help="runs of every thread, oldest first", formatter_class=fmt)
    listing.add_argument("--status", choices=["pending", "running", "success", "error", "timeout", "interrupted"])
    listing.add_argument("--thread", default=None, help="only this thread's runs")
    listing.add_argument(
        "--older-than", type=float, default=None, metavar="SECONDS", help="created at least this long ago"
    )
    listing.add_argument("--limit", type=int, default=100)
    for name, text in (
        ("show", "one run with its lease"),
        ("cancel", "stop a run (a running run stops on its worker)"),
        ("requeue", "return a running run whose worker died to the queue"),
    ):
        command = runs_sub.add_parser(name, help=text, formatter_class=fmt)
        command.add_argument("run_id")
        if name == "cancel":
            command.add_argument("--action", choices=["interrupt", "rollback"], default="interrupt")
    for parser in (listing, *(runs_sub.choices[n] for n in ("show", "cancel", "requeue"))):
        _common(parser)
    threads = sub.add_parser("threads", help="repair threads of a live deployment")
    threads_sub = threads.add_subparsers(dest="threads_command", required=True)
    unlock = threads_sub.add_parser(
        "unlock", help="make a thread left busy with no run in flight idle", formatter_class=fmt
    )
    unlock.add_argument("thread_id")
    _common(unlock)
    queue = sub.add_parser("queue", help="queue depth, oldest pending run, running runs per worker, expired leases")
    _common(queue)


def _database(args: argparse.Namespace) -> str:
    chosen = args.database or os.environ.get("DATABASE_URI") or os.environ.get("POSTGRES_URI")
    if chosen and chosen.startswith(("postgres://", "postgresql://")):
        return str(chosen)
    path = Path(chosen) if chosen else Path(args.config).resolve().parent / ".graphyard" / "graphyard.sqlite"
    # Opening a missing file would create an empty database and report an empty queue: a typo must fail.
    if not path.is_file():
        raise GraphyardError(f"no database at {path}; pass --database (a SQLite file or a postgresql:// URI)")
    return str(path)


@contextlib.asynccontextmanager
async def _services(args: argparse.Namespace) -> AsyncIterator[Services]:
    database = _database(args)
    postgres = database.startswith(("postgres://", "postgresql://"))
    settings = Settings.from_env(config_path=Path(args.config), database_url=database)
    # SQLite deployments are one process with an in-process broker: a cancel reaches the run through
    # its row, which the server's lease heartbeat reads. PostgreSQL ones signal through Redis at once.
    broker_url = settings.broker_url if postgres else None
    if postgres and broker_url is None and args.command == "runs" and args.runs_command == "cancel":
        print(
            "graphyard: REDIS_URI is not set: the cancel reaches the run's worker at its next lease heartbeat, "
            "not at once",
            file=sys.stderr,
        )
    storage = encrypting(await open_storage(database), _encryption(Path(args.config)))
    broker = await open_broker(broker_url, prefix=settings.redis_prefix, ttl_seconds=settings.stream_ttl_seconds)
    try:
        yield Services(storage=storage, broker=broker, graphs=GraphRegistry({}), settings=settings)
    finally:
        await broker.close()
        await storage.close()


def _encryption(config: Path) -> Plugins:
    """The project's encryption handlers, so that run metadata prints decrypted (none without the file
    or the key: the commands also serve a database whose project is elsewhere)."""
    if not config.is_file():
        return Plugins()
    project = load_project_config(config.resolve())
    apply_project(project)
    encryption, ref = load_encryption(project)
    return Plugins(encryption=encryption, encryption_ref=ref)


def _run_json(found: LeasedRun) -> dict[str, Any]:
    run = found.run
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "status": run.status.value,
        "attempt": run.attempt,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "lease_owner": found.lease_owner,
        "lease_expires_at": found.lease_expires_at,
        "cancel_action": run.cancel_action.value if run.cancel_action else None,
        "metadata": run.metadata,
    }


def _lease_text(found: LeasedRun) -> str:
    if found.lease_owner is None or found.lease_expires_at is None:
        return "-"
    left = found.lease_expires_at - time.time()
    return f"{found.lease_owner} ({left:.0f}s left)" if left > 0 else f"{found.lease_owner} (EXPIRED {-left:.0f}s ago)"


def _print_runs(found: list[LeasedRun], as_json: bool) -> None:
    if as_json:
        print(orjson.dumps([_run_json(r) for r in found]).decode())
        return
    print(f"{'RUN':36}  {'THREAD':36}  {'STATUS':11}  {'ATTEMPT':7}  {'CREATED':26}  LEASE")
    for r in found:
        run = r.run
        print(
            f"{run.run_id:36}  {run.thread_id:36}  {run.status.value:11}  {run.attempt:<7}  "
            f"{run.created_at:26}  {_lease_text(r)}"
        )


def _print_run(found: LeasedRun, as_json: bool) -> None:
    body = _run_json(found)
    if as_json:
        print(orjson.dumps(body).decode())
        return
    body["lease"] = _lease_text(found)
    for key in ("run_id", "thread_id", "assistant_id", "status", "attempt", "created_at", "updated_at", "lease"):
        print(f"{key:13} {body[key]}")
    if body["cancel_action"]:
        print(f"{'cancel':13} {body['cancel_action']} requested")


def _print_queue(stats: QueueStats, as_json: bool) -> None:
    waited = None if stats.oldest_due_at is None else round(max(0.0, time.time() - stats.oldest_due_at), 1)
    body = {
        "pending_due": stats.pending_due,
        "pending_delayed": stats.pending_delayed,
        "oldest_pending_seconds": waited,
        "running": sum(stats.running_by_worker.values()),
        "running_by_worker": stats.running_by_worker,
        "expired_leases": stats.expired_leases,
        "runs_by_status": stats.runs_by_status,
    }
    if as_json:
        print(orjson.dumps(body).decode())
        return
    print(f"pending         {stats.pending_due} due, {stats.pending_delayed} delayed (after_seconds)")
    print(f"oldest pending  {'-' if waited is None else f'{waited} s waiting'}")
    print(f"running         {body['running']}")
    for worker, count in sorted(stats.running_by_worker.items()):
        print(f"  {worker or '(no lease)'}  {count}")
    print(
        f"expired leases  {stats.expired_leases}"
        + ("  (see `graphyard runs list --status running`)" if stats.expired_leases else "")
    )


async def _dispatch(args: argparse.Namespace) -> None:
    async with _services(args) as svc:
        if args.command == "queue":
            _print_queue(await operators.queue_stats(svc), args.json)
        elif args.command == "threads":
            status = await operators.unlock_thread(svc, args.thread_id)
            print(
                orjson.dumps({"thread_id": args.thread_id, "status": status.value}).decode()
                if args.json
                else f"thread {args.thread_id} is {status.value} now"
            )
        elif args.runs_command == "list":
            found = await operators.list_runs(
                svc, status=args.status, thread_id=args.thread, older_than_seconds=args.older_than, limit=args.limit
            )
            _print_runs(found, args.json)
        elif args.runs_command == "show":
            _print_run(await operators.show_run(svc, args.run_id), args.json)
        elif args.runs_command == "cancel":
            _print_run(await operators.cancel_run(svc, args.run_id, CancelAction(args.action)), args.json)
        elif args.runs_command == "requeue":
            _print_run(await operators.requeue_run(svc, args.run_id), args.json)


def admin(args: argparse.Namespace) -> int:
    """Run one operator command; a refusal or a missing id is one line on stderr and exit status 1."""
    try:
        asyncio.run(_dispatch(args))
    except (GraphyardError, ConfigError) as exc:
        print(f"graphyard: {exc}", file=sys.stderr)
        return 1
    return 0


ADMIN_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"runs": admin, "threads": admin, "queue": admin}
