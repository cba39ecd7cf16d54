"""The Python wheels the worker installs: py_agent's own, built by hatchling from the core
package alone, and a pure-Python wheel for each core dependency Pyodide does not ship.

None of the wheels is shipped as it is. Each (these, and Pyodide's own, numpy included)
becomes an archive, ``wheels/<wheel>.bin``: its files and their modules' compiled bytecode
(tools/build/bytecode.py) laid end to end, uncompressed. wheels/index.json lists them::

    {"archives": [{"url": "wheels/numpy-2.0.2-....bin", "sha256": "…",
                   "files": [["numpy/__init__.py", 0, 4518], ...]}, ...]}

each file a [path in site-packages, start, end] of the archive's bytes. The worker checks
each archive's sha256 and writes its files into Pyodide's file system itself, a view of the
bytes each: pyodide.unpackArchive spent 0.3-0.9 s per boot in Python's per-file work on
numpy's wheel alone, the writes take tens of ms (docs/architecture.md, "Boot"). The server's
brotli copy of an archive is smaller on the wire than the wheel was. numpy's shared
libraries are loaded when numpy is imported, never those of modules the core does not
import. One archive per wheel, so that a change to py_agent recompresses only its own."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatchling.builders.wheel import WheelBuilder

from tools.build.bytecode import compiled_bytecode
from tools.build.dist import Build, BuildError, Config, Runner, read_json
from tools.build.files import display, sha256_bytes
from tools.build.pyodide import PyodideLock, pyodide_wheels

CORE_PACKAGE = "py_agent"
# Left out of the browser wheel's [project]: the console script and the extras belong to the
# CPython distribution (the tools and the server, which pyproject.toml's own wheel holds),
# and the long description would be 13 KB of METADATA that no browser reads.
NOT_FOR_THE_BROWSER = ("scripts", "gui-scripts", "entry-points", "optional-dependencies", "readme")
WHEEL_INDEX = "wheels/index.json"


@dataclass(frozen=True)
class Project:
    """What the site build needs from pyproject.toml."""

    version: str
    dependencies: tuple[str, ...]
    wheel_config: dict[str, Any]
    """pyproject.toml as hatchling reads it for the browser wheel."""


@dataclass(frozen=True)
class BrowserDeps:
    pyodide: tuple[str, ...]
    """Lock names of requirements that Pyodide loads itself."""
    pure: tuple[str, ...]
    """Requirement strings that must be shipped as pure-Python wheels."""


def read_project(root: Path) -> Project:
    with (root / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["project"]
    browser = {key: value for key, value in project.items() if key not in NOT_FOR_THE_BROWSER}
    return Project(
        version=project["version"],
        dependencies=tuple(project.get("dependencies", ())),
        wheel_config={
            "project": browser,
            "tool": {"hatch": {"build": {"targets": {"wheel": {"packages": [CORE_PACKAGE]}}}}},
        },
    )


def normalize_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)", requirement)
    if match is None:
        raise BuildError(f"pyproject.toml: dependency {requirement!r} has no package name")
    return normalize_name(match.group(1))


def resolve_browser_requirements(requirements: Sequence[str], lock: PyodideLock) -> BrowserDeps:
    """Split requirements into those Pyodide provides and those we must bundle.

    Version specifiers are not checked against the lock: the stdlib has no PEP 440
    parser; the core's import fails on a mismatch it cannot work with.
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


def wheel_key(builder: WheelBuilder) -> str:
    """sha256 over what decides the wheel's bytes (hatchling's version, the configuration
    and every file it puts in), to know when to build it again."""
    digest = hashlib.sha256(
        json.dumps(
            [importlib.metadata.version("hatchling"), builder.raw_config], sort_keys=True
        ).encode()
    )
    root = Path(builder.root)
    files = [(f.distribution_path, Path(f.path)) for f in builder.recurse_included_files()]
    files += [(f"licenses/{rel}", root / rel) for rel in builder.metadata.core.license_files]
    for name, path in sorted(files):
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def browser_wheel(cfg: Config, project: Project) -> tuple[Path, bool]:
    """The py_agent wheel for the current sources, and whether it came from the cache."""
    builder = WheelBuilder(str(cfg.root), config=project.wheel_config)
    wheels_root = cfg.cache / "py_agent"
    slot = wheels_root / wheel_key(builder)
    cached = sorted(slot.glob("*.whl"))
    if len(cached) == 1:
        return cached[0], True
    wheels_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=wheels_root, prefix=".building-"))
    try:
        (built,) = (Path(path) for path in builder.build(directory=str(tmp), versions=["standard"]))
        for stale in wheels_root.iterdir():
            if stale != tmp:
                shutil.rmtree(stale)
        tmp.rename(slot)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return slot / built.name, False


def wheel_archive(b: Build, wheel: Path, bytecode: Path) -> dict[str, Any]:
    """Adds the archive of `wheel`'s files and `bytecode`'s to the dist; its index entry."""
    parts: list[bytes] = []
    files: list[tuple[str, int, int]] = []
    size = 0
    for source in (wheel, bytecode):
        with zipfile.ZipFile(source) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                data = archive.read(info)
                files.append((info.filename, size, size + len(data)))
                parts.append(data)
                size += len(data)
    names = [name for name, _, _ in files]
    if len(set(names)) != len(names):
        raise BuildError(f"{display(wheel)} and its bytecode hold the same file twice")
    data = b"".join(parts)
    rel = f"wheels/{wheel.name.removesuffix('.whl')}.bin"
    b.add_bytes(data, rel, display(wheel))
    return {"url": rel, "sha256": sha256_bytes(data), "files": files}


def copy_python_wheels(b: Build) -> str:
    dependencies = fetch_pure_wheels(b.deps.pure, b.cfg.cache, b.cfg.run)
    wheel, cached = browser_wheel(b.cfg, b.project)
    pyodide, origin = pyodide_wheels(b)
    wheels = [*pyodide, *dependencies, wheel]
    bytecode = compiled_bytecode(b, wheels)
    archives = [wheel_archive(b, w, pycs) for w, pycs in zip(wheels, bytecode, strict=True)]
    index = {"archives": archives}
    b.add_bytes(json.dumps(index).encode() + b"\n", WHEEL_INDEX, "tools/build/wheels.py")
    return (
        f"wheels: {wheel.name}{' (cached)' if cached else ' (built)'}, "
        f"{wheel.stat().st_size:,} bytes ({CORE_PACKAGE} only) + "
        f"{len(dependencies)} pure-Python dependency wheels; {origin}; installed from "
        f"{len(archives)} archives of {sum(len(a['files']) for a in archives)} files"
    )
