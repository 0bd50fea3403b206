"""`graphyard dev | serve | worker | migrate`: parse flags, build Settings, start the server."""

from __future__ import annotations

import argparse
import asyncio
import errno
import fcntl
import os
import socket
import sys
from pathlib import Path
from typing import TextIO

import uvicorn

from graphyard import __version__, tracing
from graphyard.admin import ADMIN_COMMANDS, add_admin_commands
from graphyard.api.http import load_app
from graphyard.auth import ProjectAuth, load_auth
from graphyard.config import ConfigError, ProjectConfig, apply_project, load_project_config
from graphyard.graphs import GraphRegistry
from graphyard.logs import configure
from graphyard.plugins import Plugins, load_plugins
from graphyard.reload import stop_with_supervisor, supervise, supervised_by_parent
from graphyard.server import FATAL, build_app, migrate_only, run_worker_only
from graphyard.settings import Settings
from graphyard.storage import check_store_support
from graphyard.storage.errors import StorageError
from graphyard.ui import build_ui

# langgraph.json keys a project may carry that graphyard does not act on yet (said once at startup).
IGNORED_KEYS: tuple[str, ...] = ()


# Where the banner's Studio link points, as `langgraph dev` builds it: {studio}/studio/?baseUrl={api}.
STUDIO_URL = "https://smith.langchain.com"


class CliError(Exception):
    """A problem the user fixes: printed as one line, exit status 2."""


_DEFAULTS = argparse.ArgumentDefaultsHelpFormatter


class _EnvHelp(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults after each flag; the environment epilog kept as written."""


_PRODUCTION_ENV = """environment:
  DATABASE_URI   PostgreSQL holding threads, runs, the queue and checkpoints (required),
                 e.g. postgresql://user:password@db:5432/graphyard
  REDIS_URI      Redis carrying event streams and cancel signals between processes{redis}
  N_JOBS_PER_WORKER, BG_JOB_TIMEOUT_SECS, BG_JOB_MAX_RETRIES, LOG_LEVEL, LOG_JSON: see the README"""

# `langgraph dev` flags graphyard accepts so their command lines run unchanged, and why each does nothing.
INERT_DEV_FLAGS = {
    "no_browser": ("--no-browser", "graphyard never opens a browser"),
    "debug_port": ("--debug-port", "there is no remote debugger to attach"),
    "wait_for_client": ("--wait-for-client", "there is no remote debugger to wait for"),
    "allow_blocking": ("--allow-blocking", "graphyard does not detect blocking calls"),
    "tunnel": ("--tunnel", "graphyard opens no tunnel; expose the port yourself"),
}


def _common(parser: argparse.ArgumentParser, *, port: int | None, host: str | None) -> None:
    parser.add_argument("--config", default="langgraph.json", help="path to the project's langgraph.json")
    if port is not None:
        parser.add_argument("--host", default=host, help="interface to listen on")
        parser.add_argument("--port", type=int, default=port, help="port to listen on")
    parser.add_argument(
        "--n-jobs-per-worker", type=int, default=None, help="runs executed at once (None: N_JOBS_PER_WORKER or 10)"
    )
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"), help="log level (LOG_LEVEL)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphyard", description="Serve LangGraph graphs over the Agent Server API.")
    parser.add_argument("--version", action="version", version=f"graphyard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser(
        "dev",
        help="API and workers in one process on one SQLite file; no services needed",
        description="API and workers on one SQLite file, reloaded when the project's files change.",
        formatter_class=_DEFAULTS,
    )
    _common(dev, port=2024, host="127.0.0.1")
    dev.add_argument("--no-reload", action="store_true", help="do not restart when the project's files change")
    dev.add_argument("--ssl-keyfile", default=None, help="serve HTTPS with this private key (with --ssl-certfile)")
    dev.add_argument("--ssl-certfile", default=None, help="serve HTTPS with this certificate (with --ssl-keyfile)")
    dev.add_argument(
        "--studio-url", default=STUDIO_URL, help="Studio the banner's link opens (it connects to this server)"
    )
    dev.add_argument("--server-log-level", dest="log_level", default=None, help="same as --log-level")
    dev.add_argument(
        "--database", default=None, help="SQLite file (None: .graphyard/graphyard.sqlite beside the config)"
    )
    # Accepted for `langgraph dev` compatibility; each prints one line saying it has no effect.
    dev.add_argument("--no-browser", action="store_true", help="no effect: graphyard never opens a browser")
    dev.add_argument("--debug-port", type=int, default=None, help="no effect (accepted for langgraph dev)")
    dev.add_argument("--wait-for-client", action="store_true", help="no effect (accepted for langgraph dev)")
    dev.add_argument("--allow-blocking", action="store_true", help="no effect (accepted for langgraph dev)")
    dev.add_argument("--tunnel", action="store_true", help="no effect (accepted for langgraph dev)")
    serve = sub.add_parser(
        "serve",
        help="production API (+ workers unless N_JOBS_PER_WORKER=0) on DATABASE_URI and REDIS_URI",
        description="Production HTTP API; also executes runs unless N_JOBS_PER_WORKER=0.",
        epilog=_PRODUCTION_ENV.format(redis=" (needed with several processes)"),
        formatter_class=_EnvHelp,
    )
    _common(serve, port=int(os.environ.get("PORT", "8000")), host=os.environ.get("HOST", "0.0.0.0"))
    worker = sub.add_parser(
        "worker",
        help="production workers only (no HTTP) on DATABASE_URI and REDIS_URI",
        description="Executes runs from the queue; serves no HTTP.",
        epilog=_PRODUCTION_ENV.format(redis=" (required)"),
        formatter_class=_EnvHelp,
    )
    _common(worker, port=None, host=None)
    migrate = sub.add_parser(
        "migrate", help="apply database migrations to DATABASE_URI and exit", formatter_class=_DEFAULTS
    )
    migrate.add_argument("--log-level", default="INFO", help="log level")
    add_admin_commands(sub)
    return parser


def _project(config: str) -> tuple[Path, ProjectConfig, GraphRegistry]:
    path = Path(config).resolve()
    project = load_project_config(path)
    apply_project(project)
    for warning in project.warnings:
        print(f"graphyard: warning: {warning}", file=sys.stderr)
    ignored = [key for key in IGNORED_KEYS if project.raw.get(key)]
    ignored += [f"checkpointer.{key}" for key in project.checkpointer or {} if key != "ttl"]
    ignored += [f"store.{key}" for key in project.store or {} if key not in ("index", "ttl")]
    if ignored:
        print(
            f"graphyard: {path}: these settings are not supported yet and are ignored: {', '.join(ignored)}",
            file=sys.stderr,
        )
    return path, project, GraphRegistry.load(project)


def _plugins(project: ProjectConfig, settings: Settings) -> Plugins:
    """The project's store, TTL and priority settings, checked against the database before serving."""
    plugins = load_plugins(project)
    try:
        asyncio.run(check_store_support(settings.database_url, plugins.store))
    except StorageError as exc:
        raise CliError(f"{project.path}: {exc}") from exc
    return plugins


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


# Idle keep-alive connections are closed after this. uvicorn's 5 s default equals httpx's (the official
# client's) own expiry, so under load the server could close a connection just as a client reused it,
# and that request failed with a ReadError. The client must always be the side that gives up first.
KEEP_ALIVE_SECONDS = 75


def _banner(settings: Settings, *, scheme: str, studio_url: str | None) -> str:
    """Where to reach the server: API, API docs and (in dev) Studio connected to it."""
    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    api = f"{scheme}://{shown}:{settings.port}"
    lines = [f"graphyard {__version__} ready", f"- API: {api}", f"- Docs: {api}/docs"]
    if studio_url:
        lines.append(f"- Studio: {studio_url.rstrip('/')}/studio/?baseUrl={api}")
    lines.append(f"- Database: {settings.database_url.split('@')[-1]}")
    return "\n".join(lines)


def _serve_http(
    app_settings: Settings,
    project: ProjectConfig,
    graphs: GraphRegistry,
    *,
    exclusive: bool,
    ssl: tuple[str, str] | None = None,
    studio_url: str | None = None,
) -> int:
    # Loaded before the port is taken: a project whose auth cannot load must never be served open.
    auth: ProjectAuth | None = load_auth(project)
    if project.auth and auth is None:
        raise CliError(f'{project.path}: "auth" has no "path"; name your Auth object, e.g. "./auth.py:auth"')
    user_app = load_app(project)
    ui = build_ui(project)
    _require_free_port(app_settings)
    plugins = _plugins(project, app_settings)
    app = build_app(
        app_settings, project, graphs, exclusive=exclusive, auth=auth, plugins=plugins, user_app=user_app, ui=ui
    )
    print(
        f"graphyard serving {project.path}\n"
        + _banner(app_settings, scheme="https" if ssl else "http", studio_url=studio_url),
        file=sys.stderr,
        flush=True,
    )
    keyfile, certfile = ssl if ssl else (None, None)
    uvicorn.run(
        app,
        host=app_settings.host,
        port=app_settings.port,
        log_level="warning",
        access_log=False,
        ssl_keyfile=keyfile,
        ssl_certfile=certfile,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    return 1 if FATAL.is_set() else 0


# The open lock file of the SQLite database this process holds alone (kept open for the process's life).
_HELD: list[TextIO] = []


def _hold_database(database: Path) -> None:
    """Take an exclusive lock on a file beside the SQLite database, or refuse: two processes on one file
    would each take the other's running runs for abandoned and execute them again."""
    database.parent.mkdir(parents=True, exist_ok=True)
    lock_path = database.with_name(database.name + ".lock")
    handle = lock_path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise CliError(
            f"{database} is in use by another graphyard process (pid {holder}); "
            "stop it first, or pass --database with another file"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _HELD.append(handle)


def _require_free_port(settings: Settings) -> None:
    if not _port_free(settings.host, settings.port):
        raise CliError(f"port {settings.port} on {settings.host} is already in use; pass --port with a free port")


def _ssl_files(args: argparse.Namespace) -> tuple[str, str] | None:
    key, cert = args.ssl_keyfile, args.ssl_certfile
    if key is None and cert is None:
        return None
    if key is None or cert is None:
        raise CliError("--ssl-keyfile and --ssl-certfile go together: pass both to serve HTTPS")
    for flag, name in (("--ssl-keyfile", key), ("--ssl-certfile", cert)):
        if not Path(name).is_file():
            raise CliError(f"{flag} {name}: file not found")
    return str(Path(key).resolve()), str(Path(cert).resolve())


def dev(args: argparse.Namespace) -> int:
    for attr, (flag, why) in INERT_DEV_FLAGS.items():
        if getattr(args, attr) not in (None, False):
            print(f"graphyard: {flag} has no effect: {why}", file=sys.stderr)
    ssl = _ssl_files(args)
    path, project, graphs = _project(args.config)
    database = Path(args.database).resolve() if args.database else project.root / ".graphyard" / "graphyard.sqlite"
    if not supervised_by_parent():
        # Under a reloading supervisor the supervisor holds the lock for the server processes it starts.
        _hold_database(database)
    settings = Settings.from_env(
        config_path=path,
        database_url=str(database),
        host=args.host,
        port=args.port,
        n_jobs_per_worker=args.n_jobs_per_worker,
        broker_url="memory://",
        webhooks=project.webhooks,
        send_webhooks="webhooks" not in project.http_config.disabled,
    )
    if settings.n_jobs_per_worker < 1:
        raise CliError("--n-jobs-per-worker must be at least 1")
    if not args.no_reload:
        # The project loaded above, so a broken one stops here with its one-line error, not in a loop.
        _require_free_port(settings)
        # Built here too so a UI that cannot build stops dev with its one line (the server reuses it).
        build_ui(project)
        return supervise(args.argv, [project.root, *project.dependencies], path, ui=bool(project.ui))
    stop_with_supervisor()
    return _serve_http(settings, project, graphs, exclusive=True, ssl=ssl, studio_url=args.studio_url)


def serve(args: argparse.Namespace) -> int:
    path, project, graphs = _project(args.config)
    settings = Settings.from_env(
        config_path=path,
        database_url=_database_uri(),
        host=args.host,
        port=args.port,
        n_jobs_per_worker=args.n_jobs_per_worker,
        webhooks=project.webhooks,
        send_webhooks="webhooks" not in project.http_config.disabled,
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
        send_webhooks="webhooks" not in project.http_config.disabled,
    )
    if not settings.broker_url:
        raise CliError("REDIS_URI is not set: a separate worker streams events to API processes through Redis")
    if settings.n_jobs_per_worker < 1:
        raise CliError("N_JOBS_PER_WORKER (or --n-jobs-per-worker) must be at least 1 for a worker")
    return asyncio.run(run_worker_only(settings, graphs, _plugins(project, settings)))


def migrate(args: argparse.Namespace) -> int:
    settings = Settings.from_env(config_path=Path("langgraph.json"), database_url=_database_uri())
    asyncio.run(migrate_only(settings))
    print("graphyard: database is migrated", file=sys.stderr)
    return 0


COMMANDS = {"dev": dev, "serve": serve, "worker": worker, "migrate": migrate, **ADMIN_COMMANDS}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        configure(args.log_level)
        if args.command in ("serve", "worker") or (args.command == "dev" and args.no_reload):
            tracing.configure()
        return COMMANDS[args.command](args)
    except (ConfigError, CliError, ValueError) as exc:
        print(f"graphyard: {exc}", file=sys.stderr)
        return 2
    finally:
        tracing.shutdown()


if __name__ == "__main__":
    sys.exit(main())
