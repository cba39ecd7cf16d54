"""`python build.py --check`: verify a built dist against its build.json, its Pyodide wheels
against pyodide-lock.json, and its models against their own manifests."""

from __future__ import annotations

from pathlib import Path

from tools.build.browser_models import MODELS_POINTER, check_models
from tools.build.dist import MANIFEST, BuildError, read_json
from tools.build.files import display, sha256_file
from tools.build.icons import ICON_SVG, WEB_MANIFEST
from tools.build.pyodide import PYODIDE_CORE
from tools.build.service_worker import SW_SCRIPT, WORKBOX_RUNTIME
from tools.build.web import ORT_FILES, VENDOR_JS
from tools.build.wheels import WHEEL_INDEX

REQUIRED_FILES = (
    *(f"pyodide/{name}" for name in PYODIDE_CORE),
    *(f"ort/{name}" for name in ORT_FILES),
    *VENDOR_JS,
    *WORKBOX_RUNTIME,
    WHEEL_INDEX,
    f"models/{MODELS_POINTER}",
    SW_SCRIPT,
    WEB_MANIFEST,
    ICON_SVG,
)
PYODIDE_LOCK = "pyodide/pyodide-lock.json"


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
    if {PYODIDE_LOCK, WHEEL_INDEX} <= present:
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
    """The archives index.json lists against their sha256, and their file tables against
    their size (the wheels in them were checked, Pyodide's against its lock, as they were
    built)."""
    index = read_json(dist / WHEEL_INDEX)
    problems = []
    for archive in index["archives"]:
        rel = archive["url"]
        if rel not in present:
            problems.append(f"{rel}: listed in {WHEEL_INDEX} but missing")
            continue
        actual = sha256_file(dist / rel)
        if actual != archive["sha256"]:
            problems.append(f"{rel}: sha256 {actual}, {WHEEL_INDEX} says {archive['sha256']}")
        ends = [end for _, _, end in archive["files"]]
        if ends and ends[-1] != (dist / rel).stat().st_size:
            problems.append(f"{rel}: its files in {WHEEL_INDEX} do not end where it does")
    return problems
