"""`py-agent release …`: a TUF repository of model releases, made with python-tuf's Metadata API.

Layout of a repository (docs/updates.md):

- ``keys/``: one Ed25519 private key per role (PEM, PKCS8; 0600 in a 0700 directory, optionally
  passphrase-encrypted). ``root-N.pem`` and ``targets.pem`` are the offline keys: move them off
  the server after ``init``. ``snapshot.pem`` and ``timestamp.pem`` are the server's online keys.
- ``metadata/``: ``N.root.json`` (every root version: a client walks them to follow a rotation),
  ``N.targets.json``, ``N.snapshot.json`` and ``timestamp.json``, as TUF's consistent snapshots
  name them, so a client fetches exactly the version the role above it signed.
- ``targets/``: each file of a release as ``<release>/<dir>/<sha256>.<name>``, the name a TUF
  client asks for; a published file never changes, so it can be cached forever.

Every release's target paths start with its version (``1.2/manifest.json``), so releases never
collide; each target carries ``custom = {"release": V, "rollout_percent": P}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

# python-tuf's usual lifetimes: the online roles expire soon (a frozen server is noticed within a
# day), the offline ones rarely (their keys come out of the safe only to re-sign).
EXPIRY = {
    Timestamp.type: timedelta(days=1),
    Snapshot.type: timedelta(days=7),
    Targets.type: timedelta(days=90),
    Root.type: timedelta(days=365),
}
ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
# The device's files of a release: the models/manifest.json entries the browser loads
# (py_agent/encoder.py, py_agent/intents.py); the server's models stay on the server.
DEVICE_MODELS = ("encoder", "intent_head")
# The browser runs the int8 encoder; the fp32 export is the build's reference only.
NOT_SHIPPED_SUFFIX = ".fp32.onnx"


# A role's payload, as python-tuf's Metadata[T] constrains it.
Role = TypeVar("Role", Root, Targets, Snapshot, Timestamp)


class ReleaseError(Exception):
    """Bad input to `py-agent release`: one line saying what is wrong."""


class Repository(NamedTuple):
    root: Path

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def metadata(self) -> Path:
        return self.root / "metadata"

    @property
    def targets(self) -> Path:
        return self.root / "targets"


def _expiry(role: str, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)).replace(microsecond=0) + EXPIRY[role]


def _passphrase(env_name: str | None) -> bytes | None:
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise ReleaseError(f"--passphrase-env {env_name}: that environment variable is not set")
    return value.encode()


def _write_key(path: Path, passphrase: bytes | None) -> CryptoSigner:
    key = Ed25519PrivateKey.generate()
    encryption = NoEncryption() if passphrase is None else BestAvailableEncryption(passphrase)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption)
    # Created 0600 from the first byte: a chmod after writing would leave a window.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
    return CryptoSigner(key, SSlibKey.from_crypto(key.public_key()))


def _read_key(path: Path, passphrase: bytes | None) -> CryptoSigner:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ReleaseError(f"{path}: missing key (is this the machine holding that key?)") from None
    try:
        key = load_pem_private_key(data, passphrase)
    except TypeError:
        raise ReleaseError(
            f"{path}: the key is encrypted: pass --passphrase-env NAME"
            if passphrase is None
            else f"{path}: the key is not encrypted: leave out --passphrase-env"
        ) from None
    except ValueError:
        raise ReleaseError(f"{path}: wrong passphrase, or not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseError(f"{path}: not an Ed25519 key")
    return CryptoSigner(key, SSlibKey.from_crypto(key.public_key()))


def _key_paths(repo: Repository, role: str) -> list[Path]:
    if role == Root.type:
        return sorted(repo.keys.glob("root-*.pem"))
    return [repo.keys / f"{role}.pem"]


def _signers(repo: Repository, role: str, passphrase: bytes | None) -> list[CryptoSigner]:
    return [_read_key(path, passphrase) for path in _key_paths(repo, role)]


def _write(repo: Repository, metadata: Metadata[Role], signers: list[CryptoSigner]) -> None:
    metadata.signatures.clear()
    for signer in signers:
        metadata.sign(signer, append=True)
    role = metadata.signed.type
    data = metadata.to_bytes(JSONSerializer(compact=False))
    if role == Timestamp.type:
        names = ["timestamp.json"]
    elif role == Root.type:
        # root.json: the newest root, the one a new device's build ships as its trusted root.
        names = [f"{metadata.signed.version}.root.json", "root.json"]
    else:
        names = [f"{metadata.signed.version}.{role}.json"]
    for name in names:
        # Written beside, then renamed: the server never serves half a file.
        partial = repo.metadata / f".{name}.partial"
        partial.write_bytes(data)
        partial.replace(repo.metadata / name)


def _open(path: Path) -> Repository:
    repo = Repository(path)
    if not (repo.metadata / "root.json").is_file():
        raise ReleaseError(f"--repo {path}: no TUF repository there (run `py-agent release init`)")
    return repo


class Current(NamedTuple):
    root: Metadata[Root]
    targets: Metadata[Targets]
    snapshot: Metadata[Snapshot]
    timestamp: Metadata[Timestamp]


def _current(repo: Repository) -> Current:
    root = Metadata[Root].from_file(str(repo.metadata / "root.json"))
    timestamp = Metadata[Timestamp].from_file(str(repo.metadata / "timestamp.json"))
    snapshot_version = timestamp.signed.snapshot_meta.version
    snapshot = Metadata[Snapshot].from_file(
        str(repo.metadata / f"{snapshot_version}.snapshot.json")
    )
    targets_version = snapshot.signed.meta["targets.json"].version
    targets = Metadata[Targets].from_file(str(repo.metadata / f"{targets_version}.targets.json"))
    return Current(root, targets, snapshot, timestamp)


def _sign_chain(
    repo: Repository,
    current: Current,
    passphrase: bytes | None,
    *,
    targets_changed: bool,
    now: datetime | None = None,
) -> None:
    """Re-sign what a change invalidates: targets (if changed) → snapshot → timestamp."""
    if targets_changed:
        current.targets.signed.version += 1
        current.targets.signed.expires = _expiry(Targets.type)
        _write(repo, current.targets, _signers(repo, Targets.type, passphrase))
        current.snapshot.signed.meta["targets.json"] = MetaFile(current.targets.signed.version)
        current.snapshot.signed.version += 1
        current.snapshot.signed.expires = _expiry(Snapshot.type)
        _write(repo, current.snapshot, _signers(repo, Snapshot.type, passphrase))
        current.timestamp.signed.snapshot_meta = MetaFile(current.snapshot.signed.version)
    current.timestamp.signed.version += 1
    current.timestamp.signed.expires = _expiry(Timestamp.type, now)
    _write(repo, current.timestamp, _signers(repo, Timestamp.type, passphrase))


def init(path: Path, root_keys: int, root_threshold: int, passphrase: bytes | None) -> None:
    if root_keys < 1 or not 1 <= root_threshold <= root_keys:
        raise ReleaseError(
            f"--root-threshold {root_threshold} --root-keys {root_keys}: need 1 ≤ threshold ≤ keys"
        )
    repo = Repository(path)
    if repo.root.exists() and (not repo.root.is_dir() or any(repo.root.iterdir())):
        raise ReleaseError(
            f"--repo {path}: exists and is not an empty folder; refusing to overwrite"
        )
    repo.keys.mkdir(parents=True, mode=0o700, exist_ok=True)
    repo.keys.chmod(0o700)  # mkdir's mode is filtered by the umask
    repo.metadata.mkdir()
    repo.targets.mkdir()
    signers = {
        role: [_write_key(p, passphrase) for p in _new_key_paths(repo, role, root_keys)]
        for role in ROLES
    }
    root = Root(expires=_expiry(Root.type), consistent_snapshot=True)
    for role, role_signers in signers.items():
        for signer in role_signers:
            root.add_key(signer.public_key, role)
    root.roles[Root.type].threshold = root_threshold
    _write(repo, Metadata(root), signers[Root.type])
    _write(repo, Metadata(Targets(expires=_expiry(Targets.type))), signers[Targets.type])
    _write(repo, Metadata(Snapshot(expires=_expiry(Snapshot.type))), signers[Snapshot.type])
    _write(repo, Metadata(Timestamp(expires=_expiry(Timestamp.type))), signers[Timestamp.type])


def _new_key_paths(repo: Repository, role: str, root_keys: int) -> list[Path]:
    if role == Root.type:
        return [repo.keys / f"root-{n}.pem" for n in range(1, root_keys + 1)]
    return [repo.keys / f"{role}.pem"]


def release_files(models: Path) -> Iterator[Path]:
    """The device's files of the models in ``models`` (relative paths), manifest first."""
    manifest = models / "manifest.json"
    try:
        index = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"--models {models}: no readable manifest.json ({exc})") from None
    yield Path("manifest.json")
    for role in DEVICE_MODELS:
        folder = index.get(role) if isinstance(index, dict) else None
        if not isinstance(folder, str) or not (models / folder).is_dir():
            raise ReleaseError(f"{manifest}: {role!r} must name a model folder in {models}")
        for file in sorted((models / folder).rglob("*")):
            if file.is_file() and not file.name.endswith(NOT_SHIPPED_SUFFIX):
                yield file.relative_to(models)


def _releases(targets: Targets) -> dict[str, list[str]]:
    """Target paths by release, in publication order."""
    releases: dict[str, list[str]] = {}
    for path, target in targets.targets.items():
        releases.setdefault(str(target.custom.get("release")), []).append(path)
    return releases


def _check_percent(percent: int) -> int:
    if not 0 <= percent <= 100:
        raise ReleaseError(f"--percent {percent}: must be between 0 (paused) and 100")
    return percent


def publish(
    path: Path, models: Path, version: str | None, rollout: int, passphrase: bytes | None
) -> str:
    repo = _open(path)
    _check_percent(rollout)
    current = _current(repo)
    version = version or datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    if not version or "/" in version or version.startswith("."):
        raise ReleaseError(f"--version {version!r}: must be a name without '/'")
    if version in _releases(current.targets.signed):
        raise ReleaseError(f"--version {version}: already published (pick a new version)")
    for relative in list(release_files(models)):
        target_path = f"{version}/{relative.as_posix()}"
        target = TargetFile.from_file(target_path, str(models / relative), ["sha256"])
        target.unrecognized_fields["custom"] = {"release": version, "rollout_percent": rollout}
        stored = repo.targets / target_path
        stored = stored.with_name(f"{target.hashes['sha256']}.{stored.name}")
        try:
            stored.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(models / relative, stored)
        except OSError as exc:
            raise ReleaseError(f"{stored}: cannot copy the release there ({exc})") from None
        current.targets.signed.targets[target_path] = target
    _sign_chain(repo, current, passphrase, targets_changed=True)
    return version


def _release(targets: Targets, version: str | None) -> tuple[str, list[str]]:
    releases = _releases(targets)
    if not releases:
        raise ReleaseError("no release published yet (run `py-agent release publish`)")
    if version is None:
        version = list(releases)[-1]
    if version not in releases:
        raise ReleaseError(f"--version {version}: unknown release (have {', '.join(releases)})")
    return version, releases[version]


def rollout(path: Path, version: str | None, percent: int, passphrase: bytes | None) -> str:
    repo = _open(path)
    _check_percent(percent)
    current = _current(repo)
    version, paths = _release(current.targets.signed, version)
    for target_path in paths:
        current.targets.signed.targets[target_path].custom["rollout_percent"] = percent
    _sign_chain(repo, current, passphrase, targets_changed=True)
    return version


def revoke(path: Path, version: str, passphrase: bytes | None) -> None:
    """Remove the release from the signed targets.

    A TUF client trusts only what targets lists: a removed target is one no client can verify,
    so none downloads it (a flag in ``custom`` would be followed only by a client that reads
    it). The device client rolls back when its installed release is no longer listed.
    """
    repo = _open(path)
    current = _current(repo)
    _, paths = _release(current.targets.signed, version)
    for target_path in paths:
        del current.targets.signed.targets[target_path]
    _sign_chain(repo, current, passphrase, targets_changed=True)


def timestamp(path: Path, passphrase: bytes | None, now: datetime | None = None) -> None:
    """A new timestamp version expiring a day after ``now`` (tests pass another time).

    The snapshot (also an online key) is re-signed too when it would expire before this
    timestamp: run daily, this command alone keeps a repository nobody publishes to valid.
    """
    repo = _open(path)
    current = _current(repo)
    if current.snapshot.signed.expires <= _expiry(Timestamp.type, now):
        current.snapshot.signed.version += 1
        current.snapshot.signed.expires = _expiry(Snapshot.type, now)
        _write(repo, current.snapshot, _signers(repo, Snapshot.type, passphrase))
        current.timestamp.signed.snapshot_meta = MetaFile(current.snapshot.signed.version)
    _sign_chain(repo, current, passphrase, targets_changed=False, now=now)


def rotate(path: Path, role: str, passphrase: bytes | None) -> None:
    """A new key for ``role``: a new root version, signed by the old root keys and the new.

    Clients walk root versions one by one, checking each with the keys of the one before (the
    old root's threshold) and with its own (the new threshold), so both must sign.
    """
    repo = _open(path)
    current = _current(repo)
    old_root_signers = _signers(repo, Root.type, passphrase)
    root = current.root.signed
    for keyid in list(root.roles[role].keyids):
        root.revoke_key(keyid, role)
    new_signers = [
        _write_key(key_path, passphrase)
        for key_path in _new_key_paths(repo, role, len(old_root_signers))
    ]
    for signer in new_signers:
        root.add_key(signer.public_key, role)
    root.version += 1
    root.expires = _expiry(Root.type)
    root_signers = [*old_root_signers, *new_signers] if role == Root.type else old_root_signers
    _write(repo, current.root, root_signers)
    # The rotated role's metadata is re-signed with its new key (and everything below it).
    if role == Snapshot.type:
        current.snapshot.signed.version += 1
        _write(repo, current.snapshot, new_signers)
        current.timestamp.signed.snapshot_meta = MetaFile(current.snapshot.signed.version)
    _sign_chain(repo, current, passphrase, targets_changed=role == Targets.type)


def run(args: argparse.Namespace) -> int:
    """One `py-agent release ACTION` (the parser is tools/cli.py's)."""
    passphrase = _passphrase(args.passphrase_env)
    action: str = args.action
    if action == "init":
        init(args.repo, args.root_keys, args.root_threshold, passphrase)
        print(
            f"{args.repo}: keys in {args.repo / 'keys'} (move root-*.pem and targets.pem offline)"
        )
    elif action == "publish":
        version = publish(args.repo, args.models, args.version, args.rollout, passphrase)
        print(f"published release {version} at {args.rollout}%")
    elif action == "rollout":
        version = rollout(args.repo, args.version, args.percent, passphrase)
        print(f"release {version}: rollout {args.percent}%")
    elif action == "revoke":
        revoke(args.repo, args.version, passphrase)
        print(f"release {args.version}: revoked")
    elif action == "timestamp":
        timestamp(args.repo, passphrase)
        print("timestamp re-signed: it expires in a day")
    else:
        rotate(args.repo, args.role, passphrase)
        print(f"{args.role}: new key")
    return 0
