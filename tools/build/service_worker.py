"""dist/sw.js: web/src/sw.js with the precache manifest of every file the app loads, written
by npm workbox-build's injectManifest (web/build_sw.mjs), and Workbox's runtime beside it."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from pathlib import Path

from tools.build.dist import Build, BuildError, npm_version, read_json
from tools.build.files import display, sha256_bytes, sha256_file

# web/src/sw.js is not copied as is: this step writes dist/sw.js with the precache manifest
# injected.
SW_SCRIPT = "sw.js"
SW_BUILDER = "build_sw.mjs"
# Workbox's prebuilt runtime, which sw.js loads with importScripts. The browser stores a
# service worker's imported scripts with its registration (and checks them for updates),
# so these are the only files of the dist left out of the precache, with sw.js itself.
WORKBOX_RUNTIME = {
    f"workbox/{name}.prod.js": f"{name}/build/{name}.prod.js"
    for name in ("workbox-core", "workbox-routing", "workbox-strategies", "workbox-precaching")
}
NOT_PRECACHED = (SW_SCRIPT, *WORKBOX_RUNTIME)


def subresource_integrity(sha256_hex: str) -> str:
    return "sha256-" + base64.b64encode(bytes.fromhex(sha256_hex)).decode()


def build_service_worker(b: Build) -> str:
    """The build fails if workbox-build leaves out any file of the dist but NOT_PRECACHED.
    Its output is cached by the sha256 of its inputs, so a rebuild with nothing changed runs
    no node."""
    for rel, module in WORKBOX_RUNTIME.items():
        b.add_file(b.cfg.node_modules / module, rel)
    wanted = sorted(set(b.origins) - set(NOT_PRECACHED))
    source = b.cfg.web / "src" / SW_SCRIPT
    builder = b.cfg.web / SW_BUILDER
    if not builder.is_file():
        raise BuildError(f"{display(builder)} not found (it writes the service worker)")
    files = {rel: b.sha256(rel) for rel in wanted}
    workbox_build = npm_version(b.cfg, "workbox-build")
    inputs = [
        sha256_file(source),
        sha256_file(builder),
        workbox_build,
        b.cfg.precache_max_file_bytes,
        files,
    ]
    root = b.cfg.cache / "sw"
    slot = root / sha256_bytes(json.dumps(inputs, sort_keys=True).encode())
    cached = (slot / "report.json").is_file()
    if not cached:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".building-"))
        try:
            job = {
                "swSrc": str(source),
                "swDest": str(tmp / SW_SCRIPT),
                "globDirectory": str(b.staging),
                "globIgnores": list(NOT_PRECACHED),
                "maximumFileSizeToCacheInBytes": b.cfg.precache_max_file_bytes,
                "integrity": {rel: subresource_integrity(digest) for rel, digest in files.items()},
                "report": str(tmp / "report.json"),
            }
            (tmp / "job.json").write_text(json.dumps(job), encoding="utf-8")
            b.cfg.run(["node", str(builder), str(tmp / "job.json")], b.cfg.web)
            for stale in root.iterdir():
                if stale != tmp:
                    shutil.rmtree(stale)
            tmp.rename(slot)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    report = read_json(slot / "report.json")
    listed = {entry["url"] for entry in report["entries"]}
    if left_out := [rel for rel in wanted if rel not in listed]:
        said = "".join(f"\n  workbox-build: {warning}" for warning in report["warnings"])
        raise BuildError(
            f"the service worker would not precache {len(left_out)} files the app loads, so it "
            f"could not start offline: {', '.join(left_out)}{said}"
        )
    if unknown := sorted(listed - set(wanted)):
        raise BuildError(f"the precache lists files the build did not make: {', '.join(unknown)}")
    b.add_file(slot / SW_SCRIPT, SW_SCRIPT)
    return (
        f"service worker: {SW_SCRIPT} precaches {report['count']} files, "
        f"{report['size']:,} bytes (workbox-build {workbox_build} injectManifest"
        f"{', cached' if cached else ''}); not precached: {', '.join(NOT_PRECACHED)}"
    )
