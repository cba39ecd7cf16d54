"""The build's precompressed copies (tools/build/compress.py)."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import brotli
import pytest

from server.precompressed import PRECOMPRESSED, validated
from tools.build import dist as build_dist
from tools.build import files as build_files
from tools.build import pyodide, web, wheels
from tools.build.compress import precompress
from tools.build.service_worker import build_service_worker

SCRIPT = b"export const words = [" + b'"compressible", ' * 400 + b"];\n"
ZIPPED = os.urandom(8192)  # as a wheel is: already deflated


@pytest.fixture(autouse=True)
def machine_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copies' cache is the machine's (shared by every clone): a test's own here."""
    monkeypatch.setenv(build_files.CACHE_ENV, str(tmp_path / "machine-cache"))


def staged(tmp_path: Path, files: dict[str, bytes], name: str = "staging") -> build_dist.Build:
    staging = tmp_path / name
    staging.mkdir()
    cfg = build_dist.Config(tmp_path, tmp_path / "dist", tmp_path / "cache")
    lock = pyodide.PyodideLock(tmp_path / "pyodide-lock.json", "0.27.7", {})
    b = build_dist.Build(
        cfg, staging, lock, wheels.BrowserDeps((), ()), wheels.Project("0.1.0", (), {})
    )
    for rel, data in files.items():
        b.add_bytes(data, rel, "the test")
    return b


def test_copies_of_the_files_that_compress_decode_to_them_and_are_listed(tmp_path: Path) -> None:
    b = staged(tmp_path, {"app.js": SCRIPT, "pyodide/numpy.whl": ZIPPED})
    report = precompress(b)

    assert gzip.decompress((b.staging / "app.js.gz").read_bytes()) == SCRIPT
    assert brotli.decompress((b.staging / "app.js.br").read_bytes()) == SCRIPT
    listing = validated(json.loads((b.staging / PRECOMPRESSED).read_text()))
    assert listing == {
        "app.js": {
            "br": (b.staging / "app.js.br").stat().st_size,
            "gzip": (b.staging / "app.js.gz").stat().st_size,
        }
    }
    assert not list((b.staging / "pyodide").glob("numpy.whl.*"))
    # build.json lists every file the step added, so --check verifies them.
    assert {"app.js.br", "app.js.gz", PRECOMPRESSED} <= set(b.origins)
    assert "3 compressed" in report  # gzip of both, brotli only of what gzip found worth it


def test_a_rebuild_takes_the_copies_from_the_cache(tmp_path: Path) -> None:
    first = staged(tmp_path, {"app.js": SCRIPT}, "first")
    precompress(first)
    again = staged(tmp_path, {"app.js": SCRIPT}, "again")
    assert "0 compressed" in precompress(again)
    for name in ("app.js.br", "app.js.gz", PRECOMPRESSED):
        assert (again.staging / name).read_bytes() == (first.staging / name).read_bytes()


def test_copies_no_build_used_for_a_month_leave_the_cache(tmp_path: Path) -> None:
    other = SCRIPT.replace(b"compressible", b"compressed")
    precompress(staged(tmp_path, {"app.js": SCRIPT, "old.js": other}, "first"))
    cache = tmp_path / "machine-cache" / "precompressed"
    month_ago = time.time() - 31 * 24 * 3600
    for path in cache.iterdir():
        os.utime(path, (month_ago, month_ago))

    assert "0 compressed" in precompress(staged(tmp_path, {"app.js": SCRIPT}, "again"))
    left = [path.read_bytes() for path in cache.iterdir()]
    assert sorted(left) == sorted(
        [gzip.compress(SCRIPT, compresslevel=9, mtime=0), brotli.compress(SCRIPT)]
    )


def test_a_file_of_the_app_is_never_replaced_by_a_copy(tmp_path: Path) -> None:
    b = staged(tmp_path, {"app.js": SCRIPT, "app.js.gz": b"the app's own file"})
    with pytest.raises(build_dist.BuildError, match=r"dist/app.js.gz would come from both"):
        precompress(b)


def test_the_copies_are_made_after_the_service_worker_precache_list() -> None:
    assert web.STEPS.index(precompress) > web.STEPS.index(build_service_worker)
