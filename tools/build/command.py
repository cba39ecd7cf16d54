"""The command line of build.py.

python build.py models            # export the ONNX models, train the intent heads (cached)
python build.py                   # build web/dist
python build.py --check           # verify web/dist against its build.json
python build.py --pyodide-packages DIR   # take Pyodide wheels from an official release
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.build.check import check_dist
from tools.build.dist import BuildError, Config
from tools.build.pyodide import PROVISA_REQUIREMENT, PYODIDE_PACKAGES_ENV
from tools.build.registry import ModelBuildError
from tools.build.web import build

ROOT = Path(__file__).resolve().parents[2]


def build_models_command(force: bool) -> None:
    # Imported only here: importing the model build loads py_agent's platform layer, which
    # the site build does not need.
    from tools.build.models import build_models, default_config

    try:
        build_models(default_config(ROOT, force=force))
    except ModelBuildError as exc:
        raise BuildError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build.py", description="Assemble the static site (web/dist) for py_agent."
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=("models",),
        help="models: export and quantise the ONNX encoders and train the intent heads into "
        "models/ (tools/build/models.py)",
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
