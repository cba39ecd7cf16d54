"""The server sends a precompressed copy of a file when the request accepts its coding."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import brotli
import pytest
from starlette.testclient import TestClient

from server.accept_encoding import accepted_codings, choose_coding
from server.app import create_app
from server.headers import ISOLATION_HEADERS
from server.precompressed import PRECOMPRESSED
from server.settings import Settings

SCRIPT = b"export const words = [" + b'"compressible", ' * 400 + b"];\n"
WASM = b"\0asm\1\0\0\0" + bytes(range(256)) * 64


def write_copies(site: Path, rel: str, data: bytes) -> dict[str, int]:
    (site / rel).write_bytes(data)
    br, gz = brotli.compress(data), gzip.compress(data, mtime=0)
    (site / f"{rel}.br").write_bytes(br)
    (site / f"{rel}.gz").write_bytes(gz)
    return {"br": len(br), "gzip": len(gz)}


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    site = tmp_path / "dist"
    site.mkdir()
    listing = {
        "index.html": write_copies(site, "index.html", b"<!doctype html>" + b"<p>hi</p>" * 300),
        "app.js": write_copies(site, "app.js", SCRIPT),
        "a.wasm": write_copies(site, "a.wasm", WASM),
    }
    (site / "plain.js").write_bytes(SCRIPT)
    (site / PRECOMPRESSED).write_text(json.dumps(listing))
    return site


@pytest.fixture
def client(dist: Path, tmp_path: Path) -> TestClient:
    app = create_app(Settings(dist_dir=dist, data_dir=tmp_path / "data"))
    return TestClient(app, raise_server_exceptions=False)


def raw_get(
    client: TestClient, path: str, accept: str | None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and the body as sent: httpx would decode it."""
    if accept is not None:
        headers["accept-encoding"] = accept
    with client.stream("GET", path, headers=headers) as response:
        return response.status_code, dict(response.headers), b"".join(response.iter_raw())


@pytest.mark.parametrize(
    ("accept", "coding", "suffix"),
    [
        ("gzip, deflate, br, zstd", "br", ".br"),  # what Chromium sends, here and over HTTPS
        ("gzip, deflate", "gzip", ".gz"),
        ("x-gzip", "gzip", ".gz"),
        ("br;q=0.5, gzip", "gzip", ".gz"),
        ("*", "br", ".br"),
        ("gzip;q=0.8, identity;q=0.5", "gzip", ".gz"),
    ],
)
def test_the_preferred_coding_is_sent_with_its_headers(
    client: TestClient, dist: Path, accept: str, coding: str, suffix: str
) -> None:
    status, headers, body = raw_get(client, "/app.js", accept)
    assert status == 200
    assert body == (dist / f"app.js{suffix}").read_bytes()
    assert headers["content-encoding"] == coding
    assert headers["content-length"] == str(len(body))
    assert headers["content-type"] == "text/javascript; charset=utf-8"
    assert headers["vary"] == "Accept-Encoding"
    assert headers["cache-control"] == "no-cache"
    for name, value in ISOLATION_HEADERS.items():
        assert headers[name.lower()] == value
    assert client.get("/app.js", headers={"accept-encoding": accept}).content == SCRIPT


@pytest.mark.parametrize(
    "accept", ["", "identity", "br;q=0, gzip;q=0", "identity, br;q=0.5", "zstd", "*;q=0"]
)
def test_the_file_as_it_is_when_no_copy_is_preferred(client: TestClient, accept: str) -> None:
    status, headers, body = raw_get(client, "/app.js", accept)
    assert (status, body) == (200, SCRIPT)
    assert "content-encoding" not in headers
    assert headers["content-length"] == str(len(SCRIPT))
    # The answer depends on Accept-Encoding even when it is the file as it is.
    assert headers["vary"] == "Accept-Encoding"


def test_a_file_without_copies_is_sent_as_it_is(client: TestClient) -> None:
    status, headers, body = raw_get(client, "/plain.js", "gzip, br")
    assert (status, body) == (200, SCRIPT)
    assert "content-encoding" not in headers
    assert "vary" not in headers


def test_the_page_itself_is_compressed_at_the_root_url(client: TestClient, dist: Path) -> None:
    status, headers, body = raw_get(client, "/", "br")
    assert (status, headers["content-encoding"]) == (200, "br")
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert body == (dist / "index.html.br").read_bytes()


def test_wasm_keeps_its_media_type_when_compressed(client: TestClient) -> None:
    status, headers, _ = raw_get(client, "/a.wasm", "br")
    assert (status, headers["content-encoding"]) == (200, "br")
    assert headers["content-type"] == "application/wasm"


def test_each_representation_has_its_own_etag_and_revalidates(client: TestClient) -> None:
    etags = {accept: raw_get(client, "/app.js", accept)[1]["etag"] for accept in ("br", "gzip", "")}
    assert len(set(etags.values())) == 3, etags
    status, headers, body = raw_get(client, "/app.js", "br", **{"if-none-match": etags["br"]})
    assert (status, body) == (304, b"")
    assert (headers["etag"], headers["vary"]) == (etags["br"], "Accept-Encoding")
    # The identity ETag does not validate the brotli copy the request would get.
    status, headers, _ = raw_get(client, "/app.js", "br", **{"if-none-match": etags[""]})
    assert (status, headers["content-encoding"]) == (200, "br")


def test_copies_alike_in_size_and_time_still_have_their_own_etags(
    client: TestClient, dist: Path
) -> None:
    (dist / "app.js.gz").write_bytes((dist / "app.js.br").read_bytes())
    stat = (dist / "app.js.br").stat()
    os.utime(dist / "app.js.gz", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (
        raw_get(client, "/app.js", "br")[1]["etag"] != raw_get(client, "/app.js", "gzip")[1]["etag"]
    )


def test_head_gives_the_copys_length_and_no_body(client: TestClient, dist: Path) -> None:
    response = client.head("/app.js", headers={"accept-encoding": "br"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "br"
    assert response.headers["content-length"] == str((dist / "app.js.br").stat().st_size)
    assert response.content == b""


def test_a_range_is_a_range_of_the_file_as_it_is(client: TestClient) -> None:
    status, headers, body = raw_get(client, "/app.js", "br, gzip", range="bytes=10-29")
    assert (status, body) == (206, SCRIPT[10:30])
    assert "content-encoding" not in headers
    assert headers["content-range"] == f"bytes 10-29/{len(SCRIPT)}"


@pytest.mark.parametrize("path", ["/app.js.br", "/app.js.gz", "/index.html.br"])
def test_a_copy_is_not_served_under_its_own_name(client: TestClient, path: str) -> None:
    assert client.get(path, headers={"accept-encoding": "identity"}).status_code == 404


def test_a_copy_gone_since_the_listing_was_read_falls_back_to_the_file(
    client: TestClient, dist: Path
) -> None:
    (dist / "app.js.br").unlink()
    status, headers, body = raw_get(client, "/app.js", "br")
    assert (status, body) == (200, SCRIPT)
    assert "content-encoding" not in headers


@pytest.mark.parametrize(
    "listing", ["{not json", '["app.js"]', '{"app.js": {"deflate": 3}}', '{"app.js": {"br": "3"}}']
)
def test_an_unusable_listing_serves_every_file_as_it_is(
    client: TestClient, dist: Path, listing: str
) -> None:
    (dist / PRECOMPRESSED).write_text(listing)
    status, headers, body = raw_get(client, "/app.js", "br, gzip")
    assert (status, body) == (200, SCRIPT)
    assert "content-encoding" not in headers


def test_a_rebuild_under_a_running_server_is_followed(client: TestClient, dist: Path) -> None:
    assert raw_get(client, "/plain.js", "br")[1].get("content-encoding") is None
    listing = json.loads((dist / PRECOMPRESSED).read_text())
    listing["plain.js"] = write_copies(dist, "plain.js", SCRIPT)
    del listing["app.js"]
    fresh = dist / "fresh.json"
    fresh.write_text(json.dumps(listing))
    os.replace(fresh, dist / PRECOMPRESSED)  # as a build swaps in a new dist: a new file
    assert raw_get(client, "/plain.js", "br")[1]["content-encoding"] == "br"
    assert "content-encoding" not in raw_get(client, "/app.js", "br")[1]


def test_the_smallest_accepted_copy_wins_a_tie() -> None:
    assert choose_coding("gzip, br", ("br", "gzip")) == "br"
    assert choose_coding("gzip, br", ("gzip", "br")) == "gzip"
    assert choose_coding("gzip;q=1, br;q=0.9", ("br", "gzip")) == "gzip"


def test_no_header_means_the_file_as_it_is() -> None:
    assert choose_coding(None, ("br", "gzip")) is None


def test_entries_that_do_not_parse_are_skipped() -> None:
    assert accepted_codings(" BR ; q=0.7 ,gzip;q=abc, deflate;q=2, , ;q=1, zstd;q=0") == {
        "br": 0.7,
        "zstd": 0.0,
    }
