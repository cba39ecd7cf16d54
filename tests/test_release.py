"""`py-agent release …` (tools/release.py): the repository it signs is one python-tuf's reference
client (tuf.ngclient.Updater) verifies, fetched from the real server under uvicorn."""

from __future__ import annotations

import asyncio
import json
import stat
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import support
from tuf.ngclient import Updater

from server.settings import Settings
from tools.cli import main
from tools.release import timestamp

ENCODER = "encoder-x/aaa"
HEAD = "head-x/bbb"


def fake_models(path: Path, salt: str = "1") -> Path:
    """A models folder shaped like `python build.py models`' output, a few bytes a file."""
    (path / ENCODER).mkdir(parents=True)
    (path / HEAD).mkdir(parents=True)
    (path / "manifest.json").write_text(
        json.dumps({"encoder": ENCODER, "intent_head": HEAD, "server_encoder": "big/ccc"})
    )
    (path / ENCODER / "manifest.json").write_text(json.dumps({"salt": salt}))
    (path / ENCODER / "model.int8.onnx").write_bytes(b"int8 weights " + salt.encode() * 40)
    (path / ENCODER / "model.fp32.onnx").write_bytes(b"fp32 stays home")
    (path / ENCODER / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    (path / HEAD / "manifest.json").write_text("{}")
    (path / HEAD / "intent_head.npz").write_bytes(b"head " + salt.encode())
    return path


SHIPPED = [
    "manifest.json",
    f"{ENCODER}/manifest.json",
    f"{ENCODER}/model.int8.onnx",
    f"{ENCODER}/vocab.txt",
    f"{HEAD}/intent_head.npz",
    f"{HEAD}/manifest.json",
]


def release(*args: str | Path) -> int:
    return main(["release", *map(str, args)])


def published(tmp_path: Path) -> Path:
    """A development repository (1 of 1 root) with release 1.0 of ``tmp_path/m1`` published."""
    path = tmp_path / "updates"
    assert release("init", "--repo", path) == 0
    models = fake_models(tmp_path / "m1")
    assert release("publish", "--repo", path, "--models", models, "--version", "1.0") == 0
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return published(tmp_path)


def serving(repo: Path, dist: Path, data: Path) -> AbstractAsyncContextManager[str]:
    """`py-agent serve --updates-dir REPO` under uvicorn on 127.0.0.1, until the block ends."""
    return support.serving(Settings(dist_dir=dist, data_dir=data, updates_dir=repo))


def updater(url: str, repo: Path, client: Path) -> Updater:
    """A device that trusts the repository's first root and keeps what it learns in ``client``."""
    (client / "targets").mkdir(parents=True, exist_ok=True)
    return Updater(
        metadata_dir=str(client),
        metadata_base_url=f"{url}/api/v1/updates/metadata/",
        target_dir=str(client / "targets"),
        target_base_url=f"{url}/api/v1/updates/targets/",
        bootstrap=(repo / "metadata" / "1.root.json").read_bytes(),
    )


def download_release(device: Updater, version: str) -> dict[str, bytes]:
    """refresh(), then every target of ``version``, each checked against its signed hash."""
    device.refresh()
    files = {}
    for name in SHIPPED:
        info = device.get_targetinfo(f"{version}/{name}")
        assert info is not None, f"{version}/{name} is not a signed target"
        assert info.custom["release"] == version
        files[name] = Path(device.download_target(info)).read_bytes()
    return files


async def test_a_published_release_is_verified_and_downloaded_by_the_reference_client(
    repo: Path, dist: Path, tmp_path: Path
) -> None:
    models = tmp_path / "m1"
    async with serving(repo, dist, tmp_path / "data") as url:
        device = updater(url, repo, tmp_path / "device")
        files = await asyncio.to_thread(download_release, device, "1.0")
    assert files == {name: (models / name).read_bytes() for name in SHIPPED}
    info = device.get_targetinfo("1.0/manifest.json")
    assert info is not None and info.custom == {"release": "1.0", "rollout_percent": 100}
    assert device.get_targetinfo(f"1.0/{ENCODER}/model.fp32.onnx") is None


async def test_rollout_revoke_and_a_second_release_reach_the_client(
    repo: Path, dist: Path, tmp_path: Path
) -> None:
    assert release("publish", "--repo", repo, "--models", fake_models(tmp_path / "m2", "2"),
                   "--version", "2.0", "--rollout", "5") == 0  # fmt: skip
    assert release("rollout", "--repo", repo, "--version", "2.0", "--percent", "20") == 0
    assert release("revoke", "--repo", repo, "--version", "1.0") == 0
    async with serving(repo, dist, tmp_path / "data") as url:
        device = updater(url, repo, tmp_path / "device")
        files = await asyncio.to_thread(download_release, device, "2.0")
    assert files[f"{HEAD}/intent_head.npz"] == b"head 2"
    info = device.get_targetinfo("2.0/manifest.json")
    assert info is not None and info.custom == {"release": "2.0", "rollout_percent": 20}
    assert device.get_targetinfo("1.0/manifest.json") is None


@pytest.mark.parametrize("role", ["root", "targets", "snapshot", "timestamp"])
async def test_a_rotated_key_is_followed_by_a_client_that_trusted_the_old_one(
    role: str, repo: Path, dist: Path, tmp_path: Path
) -> None:
    old_key = (repo / "keys" / ("root-1.pem" if role == "root" else f"{role}.pem")).read_bytes()
    async with serving(repo, dist, tmp_path / "data") as url:
        await asyncio.to_thread(updater(url, repo, tmp_path / "device").refresh)
        assert release("rotate", "--repo", repo, "--role", role) == 0
        device = updater(url, repo, tmp_path / "device")
        await asyncio.to_thread(download_release, device, "1.0")
    assert json.loads((tmp_path / "device" / "root.json").read_bytes())["signed"]["version"] == 2
    assert (repo / "keys" / ("root-1.pem" if role == "root" else f"{role}.pem")).read_bytes() != (
        old_key
    )


def test_a_daily_timestamp_re_signs_the_snapshot_before_it_expires(repo: Path) -> None:
    def versions() -> tuple[int, int]:
        signed = json.loads((repo / "metadata" / "timestamp.json").read_bytes())["signed"]
        return signed["version"], signed["meta"]["snapshot.json"]["version"]

    before = versions()
    timestamp(repo, None, now=datetime.now(UTC) + timedelta(days=5))
    assert versions() == (before[0] + 1, before[1])
    timestamp(repo, None, now=datetime.now(UTC) + timedelta(days=6, hours=1))
    assert versions() == (before[0] + 2, before[1] + 1)
    snapshot = json.loads((repo / "metadata" / f"{before[1] + 1}.snapshot.json").read_bytes())
    expires = datetime.fromisoformat(snapshot["signed"]["expires"])
    assert expires - datetime.now(UTC) > timedelta(days=13)


def test_keys_are_private_to_their_owner(repo: Path) -> None:
    assert stat.S_IMODE((repo / "keys").stat().st_mode) == 0o700
    keys = sorted(p.name for p in (repo / "keys").iterdir())
    assert keys == ["root-1.pem", "snapshot.pem", "targets.pem", "timestamp.pem"]
    for key in (repo / "keys").iterdir():
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key.name


def test_a_production_root_is_two_of_three(tmp_path: Path) -> None:
    path = tmp_path / "updates"
    assert release("init", "--repo", path, "--root-keys", "3", "--root-threshold", "2") == 0
    root = json.loads((path / "metadata" / "1.root.json").read_bytes())
    assert root["signed"]["roles"]["root"]["threshold"] == 2
    assert len(root["signed"]["roles"]["root"]["keyids"]) == 3
    assert len(root["signatures"]) == 3
    assert root["signed"]["consistent_snapshot"] is True


def test_passphrase_encrypted_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "updates"
    monkeypatch.setenv("RELEASE_PASS", "correct horse")
    assert release("init", "--repo", path, "--passphrase-env", "RELEASE_PASS") == 0
    assert b"ENCRYPTED" in (path / "keys" / "timestamp.pem").read_bytes()
    assert release("timestamp", "--repo", path, "--passphrase-env", "RELEASE_PASS") == 0
    timestamp = json.loads((path / "metadata" / "timestamp.json").read_bytes())
    assert timestamp["signed"]["version"] == 2


def one_error_line(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    assert release(*args) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("py-agent release: error: ")
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere"
    assert "release init" in one_error_line(capsys, "timestamp", "--repo", missing)
    assert "refusing to overwrite" in one_error_line(capsys, "init", "--repo", repo)
    assert "refusing to overwrite" in one_error_line(
        capsys, "init", "--repo", repo / "metadata" / "root.json"
    )
    assert "1 ≤ threshold ≤ keys" in one_error_line(
        capsys, "init", "--repo", missing, "--root-keys", "2", "--root-threshold", "3"
    )
    assert "--percent 101" in one_error_line(capsys, "rollout", "--repo", repo, "--percent", "101")
    assert "--percent -1" in one_error_line(capsys, "rollout", "--repo", repo, "--percent", "-1")
    assert "unknown release" in one_error_line(capsys, "revoke", "--repo", repo, "--version", "9")
    assert "already published" in one_error_line(
        capsys, "publish", "--repo", repo, "--models", tmp_path / "m1", "--version", "1.0"
    )
    assert "manifest.json" in one_error_line(
        capsys, "publish", "--repo", repo, "--models", missing, "--version", "3"
    )
    assert "NOPE" in one_error_line(capsys, "timestamp", "--repo", repo, "--passphrase-env", "NOPE")
    monkeypatch.setenv("RELEASE_PASS", "secret")
    assert "not encrypted" in one_error_line(
        capsys, "timestamp", "--repo", repo, "--passphrase-env", "RELEASE_PASS"
    )
    encrypted = tmp_path / "encrypted"
    assert release("init", "--repo", encrypted, "--passphrase-env", "RELEASE_PASS") == 0
    monkeypatch.setenv("RELEASE_PASS", "wrong")
    assert "wrong passphrase" in one_error_line(
        capsys, "timestamp", "--repo", encrypted, "--passphrase-env", "RELEASE_PASS"
    )
    assert "is encrypted" in one_error_line(capsys, "timestamp", "--repo", encrypted)
