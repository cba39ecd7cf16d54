"""py_agent.preload is what the browser's memory snapshot holds: it must never import
numpy (a snapshot cannot hold shared libraries) and should hold every standard library
module the core needs, so a restored boot imports little more than numpy and the core."""

from __future__ import annotations

import json
import subprocess
import sys

# Standard library modules the core imports only through its native (CPython) adapters, or
# that CPython imports where Pyodide does not (asyncio's ssl support, lzma, OpenSSL hashes).
NATIVE_ONLY = {
    "_hashlib",
    "_lzma",
    "_posixsubprocess",
    "_ssl",
    "_uuid",
    "fcntl",
    "lzma",
    "select",
    "selectors",
    "signal",
    "socket",
    "_socket",
    "ssl",
    "subprocess",
}


def _imported_by(*modules: str) -> dict[str, list[str]]:
    """The modules each import adds to sys.modules, in a fresh interpreter."""
    script = f"""
import json, sys
added = {{}}
for name in {list(modules)!r}:
    before = set(sys.modules)
    __import__(name)
    added[name] = sorted(set(sys.modules) - before)
print(json.dumps(added))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    added: dict[str, list[str]] = json.loads(result.stdout)
    return added


def _top_level_stdlib(names: list[str]) -> set[str]:
    return {n.split(".")[0] for n in names} & set(sys.stdlib_module_names)


def test_the_preload_never_imports_numpy() -> None:
    added = _imported_by("py_agent.preload")["py_agent.preload"]
    assert not [name for name in added if name.split(".")[0] == "numpy"]


def test_the_preload_holds_the_standard_library_the_core_imports() -> None:
    added = _imported_by("py_agent.preload", "py_agent.worker_api")
    missing = _top_level_stdlib(added["py_agent.worker_api"]) - NATIVE_ONLY
    # Private C modules come with their public ones (json brings _json).
    missing = {name for name in missing if not name.startswith("_")}
    assert not missing, f"add these to py_agent/preload.py: {sorted(missing)}"
