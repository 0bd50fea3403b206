"""`graphyard dev | serve | worker | migrate`: parse flags, build Settings, start the server."""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import socket
import sys
from pathlib import Path

import uvicorn

from graphyard.admin import ADMIN_COMMANDS, add_admin_commands
from graphyard.auth import ProjectAuth, load_auth
from graphyard.config import ConfigError, ProjectConfig, apply_project, load_project_config
from graphyard.graphs import GraphRegistry
from graphyard.logs import configure
from graphyard.server import FATAL, build_app, migrate_only, run_worker_only
from graphyard.settings import Settings

# langgraph.json keys a project may carry that graphyard does not act on yet (said once at startup).
IGNORED_KEYS = ("http", "store", "checkpointer", "ui", "encryption", "priority")


class CliError(Exception):
    """A problem the user fixes: printed as one line, exit status 2."""


def _common(parser: argparse.ArgumentParser, *, port: int | None, host: str | None) -> None:
    parser.add_argument("--config", default="langgraph.json", help="path to langgraph.json (default ./langgraph.json)")
    if port is not None:
        parser.add_argument("--host", default=host)
        parser.add_argument("--port", type=int, default=port)
    parser.add_argument(
        "--n-jobs-per-worker", type=int, default=None, help="runs executed at once (default: N_JOBS_PER_WORKER or 10)"
    )
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphyard", description="Serve LangGraph graphs over the Agent Server API.")
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="API and workers in one process on one SQLite file; no services needed")
    _common(dev, port=2024, host="127.0.0.1")
    dev.add_argument("--no-browser", action="store_true", help="accepted for langgraph dev compatibility")
    dev.add_argument("--no-reload", action="store_true", help="accepted for langgraph dev compatibility")
    # The rest of `langgraph dev`'s flags, so its command lines run unchanged; none changes anything here.
    dev.add_argument("--debug-port", type=int, default=None, help=argparse.SUPPRESS)
    dev.add_argument("--wait-for-client", action="store_true", help=argparse.SUPPRESS)
    dev.add_argument("--studio-url", default=None, help=argparse.SUPPRESS)
    dev.add_argument("--allow-blocking", action="store_true", help=argparse.SUPPRESS)
    dev.add_argument("--tunnel", action="store_true", help=argparse.SUPPRESS)
    dev.add_argument("--server-log-level", dest="log_level", default=None, help="same as --log-level")
    dev.add_argument(
        "--database", default=None, help="SQLite file (default .graphyard/graphyard.sqlite beside the config)"
    )
    serve = sub.add_parser("serve", help="production API (+ workers unless N_JOBS_PER_WORKER=0) on DATABASE_URI")
    _common(serve, port=int(os.environ.get("PORT", "8000")), host=os.environ.get("HOST", "0.0.0.0"))
    worker = sub.add_parser("worker", help="production workers only (no HTTP) on DATABASE_URI and REDIS_URI")
    _common(worker, port=None, host=None)
    migrate = sub.add_parser("migrate", help="apply database migrations to DATABASE_URI and exit")
    migrate.add_argument("--log-level", default="INFO")
    add_admin_commands(sub)
    return parser


def _project(config: str) -> tuple[Path, ProjectConfig, GraphRegistry]:
    path = Path(config).resolve()
    project = load_project_config(path)
    apply_project(project)
    ignored = [key for key in IGNORED_KEYS if project.raw.get(key)]
    if ignored:
        print(
            f"graphyard: {path}: these settings are not supported yet and are ignored: {', '.join(ignored)}",
            file=sys.stderr,
        )
    return path, project, GraphRegistry.load(project)


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _database_uri() -> str:
    uri = os.environ.get("DATABASE_URI") or os.environ.get("POSTGRES_URI")
    if not uri:
        raise CliError(
            "DATABASE_URI is not set: production mode needs PostgreSQL "
            "(e.g. DATABASE_URI=postgresql://user@host:5432/db); use `graphyard dev` for SQLite"
        )
    if not uri.startswith(("postgres://", "postgresql://")):
        raise CliError(f"DATABASE_URI must be a postgresql:// URI, got {uri.split('@')[-1]!r}")
    return uri


def _serve_http(app_settings: Settings, project: ProjectConfig, graphs: GraphRegistry, *, exclusive: bool) -> int:
    # Loaded before the port is taken: a project whose auth cannot load must never be served open.
    auth: ProjectAuth | None = load_auth(project)
    if project.auth and auth is None:
        raise CliError(f'{project.path}: "auth" has no "path"; name your Auth object, e.g. "./auth.py:auth"')
    if not _port_free(app_settings.host, app_settings.port):
        raise CliError(
            f"port {app_settings.port} on {app_settings.host} is already in use; pass --port with a free port"
        )
    app = build_app(app_settings, project, graphs, exclusive=exclusive, auth=auth)
    print(
        f"graphyard serving {project.path} on http://{app_settings.host}:{app_settings.port} "
        f"(database {app_settings.database_url.split('@')[-1]})",
        file=sys.stderr,
    )
    uvicorn.run(app, host=app_settings.host, port=app_settings.port, log_level="warning", access_log=False)
    return 1 if FATAL.is_set() else 0


def dev(args: argparse.Namespace) -> int:
    path, project, graphs = _project(args.config)
    database = Path(args.database).resolve() if args.database else project.root / ".graphyard" / "graphyard.sqlite"
    settings = Settings.from_env(
        config_path=path,
        database_url=str(database),
        host=args.host,
        port=args.port,
        n_jobs_per_worker=args.n_jobs_per_worker,
        broker_url="memory://",
        webhooks=project.webhooks,
    )
    if settings.n_jobs_per_worker < 1:
        raise CliError("--n-jobs-per-worker must be at least 1")
    return _serve_http(settings, project, graphs, exclusive=True)


def serve(args: argparse.Namespace) -> int:
    path, project, graphs = _project(args.config)
    settings = Settings.from_env(
        config_path=path,
        database_url=_database_uri(),
        host=args.host,
        port=args.port,
        n_jobs_per_worker=args.n_jobs_per_worker,
        webhooks=project.webhooks,
    )
    if settings.n_jobs_per_worker == 0:
        settings = settings.without_workers()
    return _serve_http(settings, project, graphs, exclusive=False)


def worker(args: argparse.Namespace) -> int:
    path, project, graphs = _project(args.config)
    settings = Settings.from_env(
        config_path=path,
        database_url=_database_uri(),
        n_jobs_per_worker=args.n_jobs_per_worker,
        webhooks=project.webhooks,
    )
    if not settings.broker_url:
        raise CliError("REDIS_URI is not set: a separate worker streams events to API processes through Redis")
    if settings.n_jobs_per_worker < 1:
        raise CliError("N_JOBS_PER_WORKER (or --n-jobs-per-worker) must be at least 1 for a worker")
    return asyncio.run(run_worker_only(settings, graphs))


def migrate(args: argparse.Namespace) -> int:
    settings = Settings.from_env(config_path=Path("langgraph.json"), database_url=_database_uri())
    asyncio.run(migrate_only(settings))
    print("graphyard: database is migrated", file=sys.stderr)
    return 0


COMMANDS = {"dev": dev, "serve": serve, "worker": worker, "migrate": migrate, **ADMIN_COMMANDS}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        configure(args.log_level)
        return COMMANDS[args.command](args)
    except (ConfigError, CliError, ValueError) as exc:
        print(f"graphyard: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
