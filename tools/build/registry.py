"""models/ on disk: the pointer file (models/manifest.json) naming the current model of each
role, and each model's folder, complete only if it matches its own manifest.json."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tools.build.files import display, sha256_file

MANIFEST = "manifest.json"


class ModelBuildError(Exception):
    """An expected failure: build.py prints the message, without a traceback."""


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelBuildError(f"{display(path)} not found") from None
    except json.JSONDecodeError as exc:
        raise ModelBuildError(f"{display(path)}: invalid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ModelBuildError(f'{display(path)} has no "files" table')
    return manifest


def stale_reason(folder: Path, expected: Mapping[str, Any]) -> str | None:
    """Why folder is not a complete model with the files ``expected`` names, matching its
    manifest.json, or None if it is."""
    if not (folder / MANIFEST).is_file():
        return "no manifest.json"
    try:
        files = read_manifest(folder / MANIFEST)["files"]
    except ModelBuildError as exc:
        return str(exc)
    if set(files) != set(expected):
        return f"manifest.json lists {sorted(files)}, expected {sorted(expected)}"
    for name, entry in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != entry.get("bytes") or sha256_file(path) != entry.get("sha256"):
            return f"{name} does not match its sha256 in manifest.json"
    return None


def current_model(models: Path, role: str, files: Mapping[str, Any]) -> str | None:
    """The "<name>/<version>" models/manifest.json names for role, if that folder is a
    complete model with ``files``."""
    try:
        ref = json.loads((models / MANIFEST).read_text(encoding="utf-8")).get(role)
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(ref, str) or stale_reason(models / ref, files) is not None:
        return None
    return ref


def current_head(models: Path, encoder: str, role: str, files: Mapping[str, Any]) -> str | None:
    """The intent head models/manifest.json names for role, if it is complete and was
    trained on encoder's embeddings."""
    head = current_model(models, role, files)
    if head is None:
        return None
    return head if read_manifest(models / head / MANIFEST).get("encoder") == encoder else None


def write_pointer(models: Path, pointer: Mapping[str, str]) -> None:
    path = models / MANIFEST
    # Sorted: the same roles give the same file, whatever order the build settled them in.
    data = json.dumps(dict(pointer), indent=2, sort_keys=True) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == data:
        return
    partial = path.with_name(MANIFEST + ".partial")
    partial.write_text(data, encoding="utf-8")
    os.replace(partial, path)
