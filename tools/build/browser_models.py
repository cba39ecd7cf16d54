"""The models in the dist: the files of each model models/manifest.json names that its own
manifest marks "browser": true, each checked against the sha256 that manifest lists, when
copied and by --check."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tools.build.dist import Build, BuildError, read_json
from tools.build.files import display, sha256_bytes, sha256_file

# models/manifest.json names each model the app uses ({"encoder": "<name>/<version>",
# "intent_head": "<name>/<version>"}); each models/<name>/<version>/manifest.json lists its
# files. The web step and --check treat every entry alike.
MODELS_POINTER = "manifest.json"
MODEL_MANIFEST = "manifest.json"
MODEL_REF = r"[a-z0-9][a-z0-9.-]*/[0-9a-f]{12}"
NO_MODEL = "no model built: run python build.py models (make build does)"


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
