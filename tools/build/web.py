"""Assemble the self-contained static site in web/dist/: `python build.py`.

The browser never reaches a CDN, so everything the page needs is copied in by the steps
below, each filling one part of a staging folder beside the dist: web/src, the icons, the
models' browser files, the npm runtimes, Pyodide and its package wheels, py_agent's wheel,
the service worker that precaches all of it, and last the compressed copies the server sends
in place of the files that compress. build.json records the sha256 and size of every file
(tools/build/check.py verifies a dist against it later), and the staging folder replaces
the dist only once complete, so a failed build never leaves a dist that looks valid.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.build.browser_models import copy_models
from tools.build.compress import precompress
from tools.build.dist import MANIFEST, Build, BuildError, Config, npm_version
from tools.build.files import display, replace_dir, sha256_file
from tools.build.icons import WEB_MANIFEST, draw_icons
from tools.build.pyodide import copy_pyodide, read_pyodide_lock
from tools.build.service_worker import SW_SCRIPT, build_service_worker
from tools.build.wheels import copy_python_wheels, read_project, resolve_browser_requirements

# The CPU (wasm) build only: the WebGPU/JSEP builds are twice the size and unused.
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
VENDOR_JS = {
    "vendor/comlink.mjs": "comlink/dist/esm/comlink.min.mjs",
    "vendor/idb.js": "idb/build/index.js",
    "vendor/workbox-window.mjs": "workbox-window/build/workbox-window.prod.mjs",
}
NPM_STAMP = ".py_agent-package-lock.sha256"


def ensure_node_modules(cfg: Config) -> str:
    lock_hash = sha256_file(cfg.web / "package-lock.json")
    stamp = cfg.node_modules / NPM_STAMP
    if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == lock_hash:
        return "npm: web/node_modules matches package-lock.json (cached)"
    cfg.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cfg.web)
    stamp.write_text(lock_hash + "\n", encoding="utf-8")
    return "npm: ran npm ci --ignore-scripts in web/"


def copy_web_src(b: Build) -> str:
    src = b.cfg.web / "src"
    files = sorted(path for path in src.rglob("*") if path.is_file()) if src.is_dir() else []
    for name, what in ((SW_SCRIPT, "the service worker"), (WEB_MANIFEST, "the web app manifest")):
        if src / name not in files:
            raise BuildError(f"{display(src / name)} not found: it is {what}")
    copied = [path for path in files if path != src / SW_SCRIPT]
    for path in copied:
        b.add_file(path, path.relative_to(src).as_posix())
    return f"web: {len(copied)} files from web/src (and {SW_SCRIPT}, for the service worker step)"


def copy_vendor_js(b: Build) -> str:
    for rel, module in VENDOR_JS.items():
        b.add_file(b.cfg.node_modules / module, rel)
    return f"vendor: {', '.join(VENDOR_JS)}"


def copy_ort(b: Build) -> str:
    for name in ORT_FILES:
        b.add_file(b.cfg.node_modules / "onnxruntime-web" / "dist" / name, f"ort/{name}")
    return f"ort {npm_version(b.cfg, 'onnxruntime-web')}: {', '.join(ORT_FILES)}"


# Each step fills one part of the staging directory and returns its one-line report.
STEPS: tuple[Callable[[Build], str], ...] = (
    copy_web_src,
    draw_icons,
    copy_models,
    copy_vendor_js,
    copy_pyodide,
    copy_ort,
    copy_python_wheels,
    # It precaches everything the steps above put in the dist.
    build_service_worker,
    # After the service worker, which must not precache the compressed copies.
    precompress,
)


def write_manifest(b: Build) -> dict[str, Any]:
    files: dict[str, dict[str, Any]] = {}
    for rel in sorted(b.origins):
        files[rel] = {"sha256": b.sha256(rel), "bytes": (b.staging / rel).stat().st_size}
    manifest = {
        "version": b.project.version,
        "pyodide": b.lock.version,
        "ort": npm_version(b.cfg, "onnxruntime-web"),
        "files": files,
    }
    (b.staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def build(cfg: Config) -> dict[str, Any]:
    """Build cfg.dist from scratch and return its manifest (the content of build.json)."""
    cfg.log(ensure_node_modules(cfg))
    lock = read_pyodide_lock(cfg.node_modules / "pyodide" / "pyodide-lock.json")
    project = read_project(cfg.root)
    deps = resolve_browser_requirements(project.dependencies, lock)
    cfg.dist.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cfg.dist.parent, prefix=f".{cfg.dist.name}.building-"))
    # mkdtemp makes the directory private (0700); the dist is a public web root.
    staging.chmod(0o755)
    try:
        b = Build(cfg, staging, lock, deps, project)
        for step in STEPS:
            cfg.log(step(b))
        manifest = write_manifest(b)
        replace_dir(staging, cfg.dist)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    total = sum(entry["bytes"] for entry in manifest["files"].values())
    total += (cfg.dist / MANIFEST).stat().st_size
    cfg.log(
        f"dist: {display(cfg.dist)} - {len(manifest['files']) + 1} files, "
        f"{total:,} bytes ({total / 2**20:.1f} MiB)"
    )
    return manifest
