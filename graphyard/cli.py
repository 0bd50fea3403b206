"""`graphyard dev | serve | worker | migrate`: parse flags, build Settings, start the server."""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from pathlib import Path

import uvicorn

from graphyard.config import ConfigError, apply_project, load_project_config
from graphyard.graphs import GraphRegistry
from graphyard.logs import configure, get_logger
from graphyard.server import build_app
from graphyard.settings import Settings

log = get_logger("graphyard.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphyard", description="Serve LangGraph graphs over the Agent Server API.")
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="serve a langgraph.json on one SQLite file, no services needed")
    dev.add_argument("--config", default="langgraph.json", help="path to langgraph.json (default ./langgraph.json)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=2024)
    dev.add_argument("--no-browser", action="store_true", help="accepted for langgraph dev compatibility")
    dev.add_argument("--no-reload", action="store_true", help="accepted for langgraph dev compatibility")
    dev.add_argument("--n-jobs-per-worker", type=int, default=None, help="runs executed at once (default 10)")
    dev.add_argument(
        "--database", default=None, help="SQLite file (default .graphyard/graphyard.sqlite beside the config)"
    )
    dev.add_argument("--log-level", default="INFO")
    return parser


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _fail(message: str) -> int:
    print(f"graphyard: {message}", file=sys.stderr)
    return 2


def dev(args: argparse.Namespace) -> int:
    configure(args.log_level)
    config_path = Path(args.config).resolve()
    try:
        project = load_project_config(config_path)
        apply_project(project)
        graphs = GraphRegistry.load(project)
    except ConfigError as exc:
        return _fail(str(exc))
    database = Path(args.database).resolve() if args.database else project.root / ".graphyard" / "graphyard.sqlite"
    try:
        settings = Settings.from_env(
            config_path=config_path,
            database_url=str(database),
            host=args.host,
            port=args.port,
            n_jobs_per_worker=args.n_jobs_per_worker,
        )
    except ValueError as exc:
        return _fail(str(exc))
    if settings.n_jobs_per_worker < 1:
        return _fail("--n-jobs-per-worker must be at least 1")
    if not _port_free(args.host, args.port):
        return _fail(f"port {args.port} on {args.host} is already in use; pass --port with a free port")
    app = build_app(settings, project, graphs)
    print(f"graphyard serving {config_path} on http://{args.host}:{args.port} (database {database})", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, lifespan="on")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "dev":
        return dev(args)
    return _fail(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
