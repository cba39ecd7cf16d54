"""The core is what the browser runs: importing it needs nothing but its own dependencies.

The import contracts in pyproject.toml (``lint-imports``, run by make lint) check the
direction of imports statically; these tests check what an import really loads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Imports every core module except the host adapters (which exist to import the host), then
# prints the top-level names of every non-stdlib module that got loaded.
LOADED_BY_THE_CORE = """
import importlib, json, pkgutil, sys
site = {name.partition(".")[0] for name in sys.modules}  # whatever .pth files load
import py_agent
ADAPTERS = ("py_agent.platform.browser", "py_agent.platform.native_")
names = [
    m.name for m in pkgutil.walk_packages(py_agent.__path__, "py_agent.")
    if not m.name.startswith(ADAPTERS)
]
for name in names:
    importlib.import_module(name)
loaded = {name.partition(".")[0] for name in sys.modules} - site
print(json.dumps({
    "modules": len(names),
    "non_stdlib": sorted(n for n in loaded - set(sys.stdlib_module_names) if not n.startswith("_")),
    "sqlite3": "sqlite3" in loaded,
}))
"""

CORE_DEPENDENCIES = {"dateutil", "numpy", "py_agent", "six"}


def _loaded_by_the_core(python: str, cwd: Path) -> dict[str, object]:
    result = subprocess.run(
        [python, "-c", LOADED_BY_THE_CORE], capture_output=True, text=True, check=False, cwd=cwd
    )
    assert result.returncode == 0, result.stderr
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


def test_importing_every_core_module_loads_no_host_server_or_tool_module() -> None:
    loaded = _loaded_by_the_core(sys.executable, ROOT)
    assert isinstance(loaded["modules"], int) and loaded["modules"] > 30
    assert set(loaded["non_stdlib"]) <= CORE_DEPENDENCIES  # type: ignore[arg-type]
    assert loaded["sqlite3"] is False


def test_the_platform_loads_an_adapter_on_first_use() -> None:
    script = (
        "import asyncio, sys\n"
        "from py_agent.platform import open_store\n"
        "before = 'sqlite3' in sys.modules\n"
        "asyncio.run(open_store(':memory:', ['tasks']))\n"
        "print(before, 'sqlite3' in sys.modules, 'httpx' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.split() == ["False", "True", "False"]


@pytest.mark.slow
def test_a_venv_with_only_the_core_dependencies_imports_the_core(tmp_path: Path) -> None:
    """`pip install .` without extras: the core imports; the CLI names the extra it lacks."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(ROOT)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    loaded = _loaded_by_the_core(python, tmp_path)  # not ROOT: the installed copy
    assert set(loaded["non_stdlib"]) <= CORE_DEPENDENCIES  # type: ignore[arg-type]

    served = subprocess.run(
        [str(env_dir / "bin" / "py-agent"), "serve"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert served.returncode == 2
    assert "pip install 'py-agent[server]'" in served.stderr
