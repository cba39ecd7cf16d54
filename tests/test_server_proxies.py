"""X-Forwarded-For under a real uvicorn on 127.0.0.1 (issue 15, row 6): by default no proxy is
believed, so rotating the header does not get a client past the per-address install limit;
a proxy named in the settings is believed, so each address it forwards gets its own."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from support import serving

from server.settings import Settings, SettingsError

LIMIT = 3


async def installs(url: str, addresses: list[str]) -> list[int]:
    async with httpx.AsyncClient(base_url=url) as http:
        return [
            (await http.post("/api/v1/installs", headers={"X-Forwarded-For": address})).status_code
            for address in addresses
        ]


ROTATING = [f"203.0.113.{n}" for n in range(LIMIT + 2)]


async def test_forwarded_addresses_are_not_believed_by_default(dist: Path, tmp_path: Path) -> None:
    settings = Settings(dist_dir=dist, data_dir=tmp_path / "data", installs_per_min=LIMIT)
    async with serving(settings) as url:
        assert await installs(url, ROTATING) == [201] * LIMIT + [429, 429]


async def test_a_named_proxy_is_believed(dist: Path, tmp_path: Path) -> None:
    settings = Settings(
        dist_dir=dist,
        data_dir=tmp_path / "data",
        installs_per_min=LIMIT,
        trusted_proxies="127.0.0.1, 10.0.0.0/8",
    )
    assert settings.trusted_proxies == "127.0.0.1,10.0.0.0/8"
    async with serving(settings) as url:
        assert await installs(url, ROTATING) == [201] * len(ROTATING)


def test_a_bad_proxy_setting_names_the_setting(dist: Path, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"IP addresses or networks.*'the proxy'"):
        Settings(dist_dir=dist, data_dir=tmp_path / "data", trusted_proxies="10.0.0.1,the proxy")
