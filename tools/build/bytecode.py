"""The compiled bytecode (.pyc) of every module in the wheels the worker installs, laid
beside their sources in its archives (tools/build/wheels.py), so that importing numpy and
the core in the browser reads bytecode instead of compiling ~200 modules from source on
every boot (Pyodide's wheels ship sources only).

Compiled by Pyodide's own CPython under node (web/build_pyc.mjs), as unchecked hash-based
pycs: the worker writes the sources anew each boot (new mtimes) and these must still be
used. Each wheel's archive is cached by the wheel's sha256, the compiler script's and the
Pyodide version, in the machine's build cache (the same for every clone and test build), so
numpy is compiled once per machine.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tools.build.dist import Build, BuildError, npm_version
from tools.build.files import cache_root, display, sha256_bytes, sha256_file

COMPILER = "build_pyc.mjs"


def compiled_bytecode(b: Build, wheels: Sequence[Path]) -> list[Path]:
    """Each wheel's archive of pycs, compiling those not cached yet in one node run."""
    compiler = b.cfg.web / COMPILER
    if not compiler.is_file():
        raise BuildError(f"{display(compiler)} not found (it compiles the wheels' bytecode)")
    version = npm_version(b.cfg, "pyodide")
    root = cache_root() / "bytecode"
    inputs = [[sha256_file(wheel), sha256_file(compiler), version] for wheel in wheels]
    archives = [root / f"{sha256_bytes(json.dumps(key).encode())}.zip" for key in inputs]
    missing = [
        (wheel, out) for wheel, out in zip(wheels, archives, strict=True) if not out.is_file()
    ]
    if missing:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root, prefix=".compiling-") as tmp:
            job = {
                "wheels": [
                    {"wheel": str(wheel.resolve()), "out": f"{tmp}/{i}.zip"}
                    for i, (wheel, _) in enumerate(missing)
                ]
            }
            (Path(tmp) / "job.json").write_text(json.dumps(job), encoding="utf-8")
            b.cfg.run(["node", str(compiler), f"{tmp}/job.json"], b.cfg.web)
            for i, (_, out) in enumerate(missing):
                os.replace(f"{tmp}/{i}.zip", out)
    return archives
