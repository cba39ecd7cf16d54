"""GET /api/v1/updates/… (server/updates_api.py) under a real uvicorn: what the server serves, and
the attacks python-tuf's reference client refuses when the server (or its files) lie."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from test_release import ENCODER, download_release, published, serving, updater
from tuf.api.exceptions import (
    BadVersionNumberError,
    ExpiredMetadataError,
    LengthOrHashMismatchError,
)
from tuf.ngclient import Updater

from tools.release import timestamp

INT8 = f"{ENCODER}/model.int8.onnx"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return published(tmp_path)


def stored_target(repo: Path, name: str) -> Path:
    """The hash-prefixed file a target path is stored as."""
    folder = repo / "targets" / Path(name).parent
    (path,) = folder.glob(f"*.{Path(name).name}")
    return path


def target_url(repo: Path, name: str) -> str:
    return (
        "/api/v1/updates/targets/"
        + stored_target(repo, name).relative_to(repo / "targets").as_posix()
    )


async def test_metadata_and_targets_carry_their_cache_rules(
    repo: Path, dist: Path, tmp_path: Path
) -> None:
    async with (
        serving(repo, dist, tmp_path / "data") as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        metadata = await http.get("/api/v1/updates/metadata/timestamp.json")
        target = await http.get(target_url(repo, f"1.0/{INT8}"))
    assert metadata.status_code == 200
    assert metadata.headers["cache-control"] == "no-cache"
    assert metadata.headers["content-type"] == "application/json"
    assert metadata.json()["signed"]["_type"] == "timestamp"
    assert target.status_code == 200
    assert target.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert target.headers["accept-ranges"] == "bytes"
    assert target.content == (tmp_path / "m1" / INT8).read_bytes()


async def test_a_range_of_a_target_is_206_and_a_range_past_its_end_416(
    repo: Path, dist: Path, tmp_path: Path
) -> None:
    data = (tmp_path / "m1" / INT8).read_bytes()
    async with (
        serving(repo, dist, tmp_path / "data") as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        part = await http.get(target_url(repo, f"1.0/{INT8}"), headers={"Range": "bytes=5-20"})
        rest = await http.get(target_url(repo, f"1.0/{INT8}"), headers={"Range": "bytes=30-"})
        past = await http.get(
            target_url(repo, f"1.0/{INT8}"), headers={"Range": f"bytes={len(data) + 10}-"}
        )
    assert part.status_code == 206
    assert part.content == data[5:21]
    assert part.headers["content-range"] == f"bytes 5-20/{len(data)}"
    assert rest.status_code == 206
    assert rest.content == data[30:]
    assert past.status_code == 416


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/updates/metadata/..%2Fkeys%2Froot-1.pem",
        "/api/v1/updates/targets/..%2Fkeys%2Ftimestamp.pem",
        "/api/v1/updates/targets/..%2F..%2Fdist%2Findex.html",
        "/api/v1/updates/metadata/%2Fetc%2Fpasswd",
        "/api/v1/updates/metadata/.timestamp.json.partial",
        "/api/v1/updates/metadata/99.root.json",
        "/api/v1/updates/targets/1.0",
    ],
)
async def test_nothing_outside_the_repository_and_no_unknown_file_is_served(
    path: str, repo: Path, dist: Path, tmp_path: Path
) -> None:
    (repo / "metadata" / ".timestamp.json.partial").write_text("half written")
    async with (
        serving(repo, dist, tmp_path / "data") as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        response = await http.get(path)
    assert response.status_code == 404
    assert response.json()["error"].startswith("no such ")


async def test_a_missing_repository_says_how_to_make_one(dist: Path, tmp_path: Path) -> None:
    async with (
        serving(tmp_path / "none", dist, tmp_path / "data") as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        response = await http.get("/api/v1/updates/metadata/1.root.json")
    assert response.status_code == 404
    assert "py-agent release init" in response.json()["error"]
    assert "py-agent release publish" in response.json()["error"]


async def test_a_tampered_target_is_refused(repo: Path, dist: Path, tmp_path: Path) -> None:
    stored = stored_target(repo, f"1.0/{INT8}")
    data = bytearray(stored.read_bytes())
    data[3] ^= 1
    stored.write_bytes(bytes(data))
    async with serving(repo, dist, tmp_path / "data") as url:
        device = updater(url, repo, tmp_path / "device")
        with pytest.raises(LengthOrHashMismatchError, match="hash"):
            await asyncio.to_thread(download_release, device, "1.0")
    assert not list((tmp_path / "device" / "targets").rglob("*model.int8.onnx"))


def timestamp_version(repo: Path) -> int:
    version: int = json.loads((repo / "metadata" / "timestamp.json").read_bytes())["signed"][
        "version"
    ]
    return version


async def test_the_server_renews_a_timestamp_near_its_expiry_with_its_online_key(
    repo: Path, dist: Path, tmp_path: Path
) -> None:
    version = timestamp_version(repo)
    async with serving(repo, dist, tmp_path / "data") as url:
        await asyncio.to_thread(updater(url, repo, tmp_path / "device").refresh)
        assert timestamp_version(repo) == version  # a day left: served as signed
        timestamp(repo, None, now=datetime.now(UTC) - timedelta(hours=20))  # 4 hours left
        device = updater(url, repo, tmp_path / "device")
        await asyncio.to_thread(download_release, device, "1.0")
    assert timestamp_version(repo) == version + 2
    expires = json.loads((repo / "metadata" / "timestamp.json").read_bytes())["signed"]["expires"]
    assert datetime.fromisoformat(expires) - datetime.now(UTC) > timedelta(hours=23)


async def test_an_expired_timestamp_is_refused(repo: Path, dist: Path, tmp_path: Path) -> None:
    timestamp(repo, None, now=datetime.now(UTC) - timedelta(days=2))
    # A server without the online key (or a mirror) cannot renew it.
    (repo / "keys" / "timestamp.pem").unlink()
    async with serving(repo, dist, tmp_path / "data") as url:
        device = updater(url, repo, tmp_path / "device")
        with pytest.raises(ExpiredMetadataError, match="timestamp"):
            await asyncio.to_thread(device.refresh)


async def test_an_older_timestamp_is_refused_as_a_rollback(
    repo: Path, dist: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old-timestamp.json"
    shutil.copyfile(repo / "metadata" / "timestamp.json", old)
    timestamp(repo, None)
    async with serving(repo, dist, tmp_path / "data") as url:
        await asyncio.to_thread(updater(url, repo, tmp_path / "device").refresh)
        # The server (or whoever holds its files) hands out the older, validly signed timestamp.
        shutil.copyfile(old, repo / "metadata" / "timestamp.json")
        device: Updater = updater(url, repo, tmp_path / "device")
        with pytest.raises(BadVersionNumberError, match="timestamp"):
            await asyncio.to_thread(device.refresh)
