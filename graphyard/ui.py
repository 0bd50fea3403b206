"""Generative UI (langgraph.json `ui`): build each graph's components into JS/CSS bundles with the
reference's own bundler (`@langchain/langgraph-ui`, esbuild, run through npx), cache them by their
sources, and say which files a graph's bundle has. Serving them over HTTP is graphyard.api.ui's job.

The bundler writes `public/<graph>/entrypoint.js` (an IIFE assigning `__LGUI_<graph>`, whose
`render(name, shadowRootId)` mounts a component), `entrypoint.css` when the components import CSS,
and `schemas.json` listing each graph's files."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from graphyard.config import ConfigError, ProjectConfig
from graphyard.logs import get_logger

log = get_logger("graphyard.ui")

# The bundler the reference CLI runs, pinned so a build is reproducible (and cached by npx after the first).
BUILDER = "@langchain/langgraph-ui@1.5.1"
BUILD_SECONDS = 300.0
VERSION_SECONDS = 30.0
MIN_NODE = 18
KEPT_BUILDS = 3
# Files whose change changes a bundle: sources the bundler may import, and the package manifests.
SOURCE_SUFFIXES = frozenset({".ts", ".tsx", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs", ".css", ".json"})
# Folders never read for sources: dependencies, VCS, caches and our own output.
SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "dist", "build"})


@dataclass(frozen=True)
class UiBundle:
    """One graph's built files, in `folder`; only the files the bundler listed are ever served."""

    graph_id: str
    folder: Path
    assets: tuple[str, ...]

    def file(self, name: str) -> Path | None:
        """The file called `name` in this bundle, or None (so no other path can be reached through it)."""
        return self.folder / name if name in self.assets else None

    @property
    def global_name(self) -> str:
        """The JS global the bundle's script assigns (the bundler's rule for the graph's name)."""
        return "__LGUI_" + re.sub(r"[^a-zA-Z0-9]", "_", self.graph_id)


@dataclass(frozen=True)
class UiBundles:
    """Every graph's bundle, by graph id."""

    bundles: Mapping[str, UiBundle]

    def get(self, graph_id: str) -> UiBundle | None:
        return self.bundles.get(graph_id)


def cache_dir(project: ProjectConfig) -> Path:
    """Where the bundles go: .graphyard/ui beside langgraph.json (where dev keeps its SQLite file)."""
    return project.root / ".graphyard" / "ui"


def build_ui(project: ProjectConfig, cache: Path | None = None) -> UiBundles | None:
    """Build the project's `ui` bundles, or reuse the last build when no source changed; None without
    `ui`. Any problem (no Node.js, a failed build) raises ConfigError with one line saying what to do."""
    if not project.ui:
        return None
    cache = cache or cache_dir(project)
    npx = _require_node(project)
    key = _fingerprint(project, cache)
    target = cache / key
    if not (target / "schemas.json").is_file():
        try:
            _build(project, npx, cache, target)
        except OSError as exc:
            raise ConfigError(f'{project.path}: building "ui" failed: cannot write {cache} ({exc})') from None
    else:
        log.info("generative UI bundles unchanged; reusing them", folder=str(target))
    return _read(project, target)


def _require_node(project: ProjectConfig) -> str:
    node, npx = shutil.which("node"), shutil.which("npx")
    if node is None or npx is None:
        raise ConfigError(
            f'{project.path}: "ui" needs Node.js >= {MIN_NODE} to build its components, but '
            f'{"node" if node is None else "npx"} is not on PATH; install Node.js or remove "ui"'
        )
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=VERSION_SECONDS, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f'{project.path}: "ui" needs Node.js, but `{node} --version` failed ({exc})') from None
    match = re.match(r"v(\d+)", out)
    if match is None or int(match.group(1)) < MIN_NODE:
        raise ConfigError(
            f'{project.path}: "ui" needs Node.js >= {MIN_NODE} to build its components, found {out or "?"} '
            f"at {node}; upgrade Node.js"
        )
    return npx


def _fingerprint(project: ProjectConfig, cache: Path) -> str:
    """A digest of everything a build depends on: the bundler, the `ui` keys and the project's sources
    (paths, sizes and modification times: cheap, and a touched file only costs a rebuild)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([BUILDER, project.ui, project.ui_config], sort_keys=True).encode())
    for path in sorted(_sources(project.root, cache)):
        try:
            stat = path.stat()
        except OSError:
            continue  # gone or unreadable since the walk: the bundler would not read it either
        digest.update(f"{path.relative_to(project.root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _sources(root: Path, cache: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS and here / d != cache]
        for name in files:
            if Path(name).suffix in SOURCE_SUFFIXES:
                yield here / name


def _build(project: ProjectConfig, npx: str, cache: Path, target: Path) -> None:
    """Run the bundler into a fresh folder, then move it into place (a crash never leaves half a build)."""
    cache.mkdir(parents=True, exist_ok=True)
    work = cache / f".build-{uuid.uuid4().hex[:12]}"
    log_path = cache / "build.log"
    names = ", ".join(sorted(project.ui))
    log.info(f"building the generative UI of {names} with {BUILDER}")
    env = {
        **os.environ,
        "LANGGRAPH_UI": json.dumps(project.ui),
        "LANGGRAPH_UI_CONFIG": json.dumps(project.ui_config),
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
    }
    command = [npx, "--yes", BUILDER, "build", "--output", str(work)]
    try:
        result = subprocess.run(
            command,
            cwd=project.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(work, ignore_errors=True)
        raise ConfigError(
            f'{project.path}: building "ui" did not finish within {BUILD_SECONDS:g} s '
            f"(`npx {BUILDER}`); check the network to the npm registry"
        ) from None
    log_path.write_text(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}", encoding="utf-8")
    if result.returncode != 0 or not (work / "schemas.json").is_file():
        shutil.rmtree(work, ignore_errors=True)
        reason = _first_error(result.stderr + "\n" + result.stdout) or f"exit status {result.returncode}"
        raise ConfigError(f'{project.path}: building "ui" failed: {reason} (full output in {log_path})')
    try:
        work.rename(target)
    except OSError:
        # Another process built the same sources first: its folder is as good as ours.
        shutil.rmtree(work, ignore_errors=True)
    # Older builds go, but not the last few: another process (a server on another config of the same
    # project) may still be serving one.
    builds = sorted(
        (d for d in cache.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: d.stat().st_mtime,
        reverse=True,
    )
    for old in builds[KEPT_BUILDS:]:
        if old != target:
            shutil.rmtree(old, ignore_errors=True)


def _first_error(output: str) -> str:
    """The line of the bundler's output that says what went wrong (esbuild's `ERROR:`, npm's `npm error`)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if "ERROR" in line or line.startswith(("npm error", "npm ERR!", "Error:")):
            return line[:300]
    return lines[0][:300] if lines else ""


def _read(project: ProjectConfig, target: Path) -> UiBundles:
    try:
        schemas = json.loads((target / "schemas.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{target / 'schemas.json'}: unreadable ({exc}); delete {target} to rebuild") from None
    bundles: dict[str, UiBundle] = {}
    for graph_id in project.ui:
        assets = schemas.get(graph_id, {}).get("assets", [])
        folder = target / "public" / graph_id
        bundles[graph_id] = UiBundle(
            graph_id=graph_id,
            folder=folder,
            assets=tuple(a for a in assets if isinstance(a, str) and (folder / a).is_file()),
        )
    return UiBundles(bundles)
