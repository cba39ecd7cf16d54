"""The server's settings (server/settings.py) and `py-agent serve`: flags over environment
over defaults, one-line errors naming the setting, paths from the install whatever the
current directory, what serve says at start-up, and the table in docs/server.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, cast

import pytest
import uvicorn
from starlette.applications import Starlette

from e2e.harness import free_port, wait_until_healthy
from server.connections import GuardedH11Protocol
from server.settings import (
    CHECKOUT,
    GenerativeSettings,
    Settings,
    SettingsError,
    env_names,
    from_command_line,
    settings_table,
)
from tools.cli import main

MODELS = CHECKOUT / "models"
DIST = CHECKOUT / "web" / "dist"


@pytest.fixture
def paths(dist: Path, tmp_path: Path) -> list[str]:
    """Flags for a build and data of the test's own."""
    return ["--dist-dir", str(dist), "--data-dir", str(tmp_path / "data")]


def load(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: list[str]) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return from_command_line(argv)


def refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: list[str]) -> str:
    with pytest.raises(SettingsError) as caught:
        load(monkeypatch, env, argv)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- where each value comes from ---------------------------------------------------------


def test_flags_win_over_the_environment_which_wins_over_the_defaults(
    monkeypatch: pytest.MonkeyPatch, paths: list[str]
) -> None:
    assert from_command_line(paths).port == 8000
    assert load(monkeypatch, {"PY_AGENT_PORT": "9001"}, paths).port == 9001
    assert from_command_line([*paths, "--port", "9002"]).port == 9002
    # A Python caller's keyword wins over the environment too (tests and bench/ use that).
    assert Settings(dist_dir=paths[1], data_dir=paths[3], port=9003).port == 9003


def test_the_generative_group_merges_flags_and_environment(
    monkeypatch: pytest.MonkeyPatch, paths: list[str]
) -> None:
    env = {"PY_AGENT_GENERATIVE_MODEL": "m", "PY_AGENT_GENERATIVE_TIMEOUT_S": "5"}
    argv = [*paths, "--generative.url", "http://127.0.0.1:8001/v1", "--generative.timeout-s", "3"]
    generative = load(monkeypatch, env, argv).generative
    assert generative == GenerativeSettings("http://127.0.0.1:8001/v1", "m", timeout_s=3.0)


# One valid value other than the default for every setting, as the environment and a flag
# give it; a new setting must be added here (the keys are checked against the model).
SAMPLES = {
    "PY_AGENT_HOST": ("0.0.0.0", "host", "0.0.0.0"),
    "PY_AGENT_PORT": ("8123", "port", 8123),
    "PY_AGENT_TRUSTED_PROXIES": (
        "10.0.0.1, 192.168.0.0/16",
        "trusted_proxies",
        "10.0.0.1,192.168.0.0/16",
    ),
    "PY_AGENT_DIST_DIR": ("{dist}", "dist_dir", "{dist}"),
    "PY_AGENT_DATA_DIR": ("{tmp}/other", "data_dir", "{tmp}/other"),
    "PY_AGENT_MODELS_DIR": ("{tmp}/models", "models_dir", "{tmp}/models"),
    "PY_AGENT_UPDATES_DIR": ("{tmp}/updates", "updates_dir", "{tmp}/updates"),
    "PY_AGENT_INFER_THREADS": ("3", "infer_threads", 3),
    "PY_AGENT_INFER_MAX_BATCH": ("7", "infer_max_batch", 7),
    "PY_AGENT_INFER_MAX_BODY_BYTES": ("9000", "infer_max_body_bytes", 9000),
    "PY_AGENT_INFER_RATE_PER_S": ("2.5", "infer_rate_per_s", 2.5),
    "PY_AGENT_INFER_BURST": ("4", "infer_burst", 4),
    "PY_AGENT_INSTALLS_PER_MIN": ("11", "installs_per_min", 11),
    "PY_AGENT_PAIRING_CODE_TTL_S": ("60", "pairing_code_ttl_s", 60.0),
    "PY_AGENT_DEVICES_PER_PAIRING_CODE": ("4", "devices_per_pairing_code", 4),
    "PY_AGENT_SPACE_MAX_OPS": ("500", "space_max_ops", 500),
    "PY_AGENT_SPACE_MAX_BYTES": ("4096", "space_max_bytes", 4096),
    "PY_AGENT_REPLICA_CACHE_BYTES": ("9000", "replica_cache_bytes", 9000),
    "PY_AGENT_STATE_READS_PER_MIN": ("7", "state_reads_per_min", 7),
    "PY_AGENT_STATE_PAGE_SIZE": ("250", "state_page_size", 250),
    "PY_AGENT_MAX_CONNECTIONS": ("300", "max_connections", 300),
    "PY_AGENT_MAX_CONNECTIONS_PER_ADDRESS": ("30", "max_connections_per_address", 30),
    "PY_AGENT_HEADER_TIMEOUT_S": ("2.5", "header_timeout_s", 2.5),
    "PY_AGENT_BODY_TIMEOUT_S": ("12", "body_timeout_s", 12.0),
    "PY_AGENT_KEEP_ALIVE_TIMEOUT_S": ("3", "keep_alive_timeout_s", 3.0),
    "PY_AGENT_SPACES_PER_MIN": ("2", "spaces_per_min", 2),
    "PY_AGENT_SPACES_PER_MIN_TOTAL": ("30", "spaces_per_min_total", 30),
    "PY_AGENT_SYNC_PAGE_SIZE": ("50", "sync_page_size", 50),
    "PY_AGENT_MAX_BODY_BYTES": ("2048", "max_body_bytes", 2048),
    "PY_AGENT_SYNC_RATE_PER_S": ("1.5", "sync_rate_per_s", 1.5),
    "PY_AGENT_SYNC_BURST": ("6", "sync_burst", 6),
    "PY_AGENT_PAIRING_FAILURES_PER_MIN": ("3", "pairing_failures_per_min", 3),
    "PY_AGENT_LIVE_STREAMS_PER_DEVICE": ("2", "live_streams_per_device", 2),
    "PY_AGENT_LIVE_STREAMS_PER_SPACE": ("5", "live_streams_per_space", 5),
    "PY_AGENT_METRICS_TOKEN": ("m-1", "metrics_token", "m-1"),
    "PY_AGENT_GENERATIVE_URL": ("http://h:1/v1/", "generative.base_url", "http://h:1/v1"),
    "PY_AGENT_GENERATIVE_MODEL": (" m ", "generative.model", "m"),
    "PY_AGENT_GENERATIVE_API_KEY": ("sk-1", "generative.api_key", "sk-1"),
    "PY_AGENT_GENERATIVE_TIMEOUT_S": ("2.5", "generative.timeout_s", 2.5),
    "PY_AGENT_GENERATIVE_MAX_TOKENS": ("64", "generative.max_tokens", 64),
    "PY_AGENT_GENERATIVE_READING_BELOW": ("0", "generative.reading_below", 0.0),
    "PY_AGENT_GENERATIVE_READING_TIMEOUT_S": ("0.8", "generative.reading_timeout_s", 0.8),
    "PY_AGENT_GENERATIVE_READING_CONCURRENCY": ("3", "generative.reading_concurrency", 3),
    "PY_AGENT_TEST_FAULTS": ("1", "test_faults", True),
}
ENV_ONLY = {"PY_AGENT_GENERATIVE_API_KEY", "PY_AGENT_METRICS_TOKEN", "PY_AGENT_TEST_FAULTS"}


def _value(settings: Settings, dotted: str) -> Any:
    value: Any = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


def _flag(env: str) -> str:
    name = env.removeprefix("PY_AGENT_").lower()
    if name.startswith("generative_"):
        name = "generative." + name.removeprefix("generative_")
    return "--" + name.replace("_", "-")


def test_every_setting_comes_from_its_environment_variable_and_its_flag(
    monkeypatch: pytest.MonkeyPatch, dist: Path, tmp_path: Path
) -> None:
    assert set(SAMPLES) == set(env_names())

    def fill(text: str) -> str:
        return text.format(dist=dist, tmp=tmp_path)

    def expected(value: object) -> object:
        return Path(fill(value)) if isinstance(value, str) and "{" in value else value

    base = ["--dist-dir", str(dist), "--data-dir", str(tmp_path / "data")]
    for env, (raw, _, _) in SAMPLES.items():
        monkeypatch.setenv(env, fill(raw))
    from_env = from_command_line([])
    flags = [arg for env, (raw, _, _) in SAMPLES.items() if env not in ENV_ONLY
             for arg in (_flag(env), fill(raw))]  # fmt: skip
    for env in SAMPLES:
        if env not in ENV_ONLY:
            monkeypatch.delenv(env)
    from_flags = from_command_line([*base, *flags])
    for env, (_, field, value) in SAMPLES.items():
        assert _value(from_env, field) == expected(value), env
        if env not in ENV_ONLY:
            assert _value(from_flags, field) == expected(value), _flag(env)


def test_paths_default_to_the_checkout_whatever_the_current_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    fields = Settings.model_fields
    assert fields["dist_dir"].default == CHECKOUT / "web" / "dist"
    assert fields["models_dir"].default == CHECKOUT / "models"
    assert fields["data_dir"].default == CHECKOUT / ".py_agent"
    # Given explicitly, a relative path is the shell's: relative to the current directory.
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<!doctype html>")
    settings = from_command_line(["--dist-dir", "site", "--data-dir", "d", "--models-dir", "m"])
    assert (settings.dist_dir, settings.data_dir, settings.models_dir) == (
        tmp_path / "site",
        tmp_path / "d",
        tmp_path / "m",
    )
    assert (tmp_path / "d").is_dir()


def test_without_a_url_there_is_no_backend(
    monkeypatch: pytest.MonkeyPatch, paths: list[str]
) -> None:
    assert from_command_line(paths).generative is None
    assert load(monkeypatch, {"PY_AGENT_GENERATIVE_URL": "  "}, paths).generative is None
    assert load(monkeypatch, {"PY_AGENT_GENERATIVE_MODEL": "m"}, paths).generative is None


def test_generative_defaults(monkeypatch: pytest.MonkeyPatch, paths: list[str]) -> None:
    env = {"PY_AGENT_GENERATIVE_URL": "http://127.0.0.1:8001/v1", "PY_AGENT_GENERATIVE_MODEL": "m"}
    generative = load(monkeypatch, env, paths).generative
    assert generative == GenerativeSettings("http://127.0.0.1:8001/v1", "m")
    assert (generative.api_key, generative.timeout_s, generative.max_tokens) == (None, 10.0, 160)
    assert (
        generative.reading_below,
        generative.reading_timeout_s,
        generative.reading_concurrency,
    ) == (0.7, 1.2, 8)
    # An empty variable is the same as an unset one.
    assert load(monkeypatch, {"PY_AGENT_GENERATIVE_TIMEOUT_S": ""}, paths).generative == generative


@pytest.mark.parametrize("value", ["", "0", "true", "yes"])
def test_the_fault_switch_is_on_only_with_exactly_1(
    monkeypatch: pytest.MonkeyPatch, paths: list[str], value: str
) -> None:
    assert load(monkeypatch, {"PY_AGENT_TEST_FAULTS": value}, paths).test_faults is False
    assert load(monkeypatch, {"PY_AGENT_TEST_FAULTS": "1"}, paths).test_faults is True


# --- validation: one line naming the setting as the user gave it --------------------------


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({}, ["--port", "abc"], "--port must be a whole number, got 'abc'"),
        ({}, ["--port", "0"], "--port must be between 1 and 65535, got 0"),
        ({"PY_AGENT_PORT": "70000"}, [], "PY_AGENT_PORT must be between 1 and 65535, got 70000"),
        ({}, ["--host", "a b"], "--host must be a host name or IP address, got 'a b'"),
        ({}, ["--infer-threads", "0"], "--infer-threads must be at least 1, got 0"),
        ({}, ["--infer-max-batch", "1.5"], "--infer-max-batch must be a whole number, got '1.5'"),
        (
            {"PY_AGENT_INFER_MAX_BODY_BYTES": "100"},
            [],
            "PY_AGENT_INFER_MAX_BODY_BYTES must be at least 8192, got 100",
        ),
        ({}, ["--infer-rate-per-s", "0"], "--infer-rate-per-s must be positive, got 0.0"),
        ({}, ["--infer-burst", "0"], "--infer-burst must be at least 1, got 0"),
        ({}, ["--installs-per-min", "0"], "--installs-per-min must be at least 1, got 0"),
        ({}, ["--pairing-code-ttl-s", "-1"], "--pairing-code-ttl-s must be positive, got -1.0"),
        ({}, ["--sync-page-size", "10001"], "--sync-page-size must be between 1 and 10000"),
        ({}, ["--max-body-bytes", "10"], "--max-body-bytes must be at least 1024, got 10"),
        ({"PY_AGENT_SYNC_RATE_PER_S": "nan"}, [], "PY_AGENT_SYNC_RATE_PER_S must be positive"),
        ({}, ["--sync-burst", "0"], "--sync-burst must be at least 1, got 0"),
        ({}, ["--pairing-failures-per-min", "0"], "--pairing-failures-per-min must be at least 1"),
        (
            {"PY_AGENT_GENERATIVE_URL": "http://127.0.0.1:8001/v1"},
            [],
            "PY_AGENT_GENERATIVE_MODEL is required with a generative URL "
            "(on the command line: --generative.model)",
        ),
        (
            {"PY_AGENT_GENERATIVE_MODEL": "m"},
            ["--generative.url", "127.0.0.1:8001/v1"],
            "--generative.url must be an http(s) URL such as http://127.0.0.1:8001/v1, "
            "got '127.0.0.1:8001/v1'",
        ),
        (
            {"PY_AGENT_GENERATIVE_URL": "http://h/v1", "PY_AGENT_GENERATIVE_FOO": "1"},
            ["--generative.model", "m"],
            "PY_AGENT_GENERATIVE_FOO is not a setting",
        ),
        (
            {},
            ["--generative.api-key", "sk-1"],
            "--generative.api-key is not a flag: set PY_AGENT_GENERATIVE_API_KEY instead",
        ),
        ({}, ["--test-faults", "1"], "--test-faults is not a flag: set PY_AGENT_TEST_FAULTS"),
    ],
)
def test_a_bad_value_is_refused_in_one_line_naming_its_setting(
    monkeypatch: pytest.MonkeyPatch,
    paths: list[str],
    env: dict[str, str],
    argv: list[str],
    message: str,
) -> None:
    assert message in refused(monkeypatch, env, [*paths, *argv])


GENERATIVE = {"URL": "http://127.0.0.1:8001/v1", "MODEL": "m"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODEL": ""}, "PY_AGENT_GENERATIVE_MODEL is required"),
        ({"MODEL": "  "}, "PY_AGENT_GENERATIVE_MODEL must name the backend's model"),
        ({"URL": "127.0.0.1:8001/v1"}, "PY_AGENT_GENERATIVE_URL must be an http(s) URL"),
        ({"URL": "ftp://host/v1"}, "PY_AGENT_GENERATIVE_URL must be an http(s) URL"),
        ({"URL": "http:///v1"}, "PY_AGENT_GENERATIVE_URL must be an http(s) URL"),
        ({"URL": "http://host/v1?key=1"}, "PY_AGENT_GENERATIVE_URL must not have a query"),
        ({"API_KEY": "sk 1"}, "PY_AGENT_GENERATIVE_API_KEY must be non-empty printable text"),
        ({"API_KEY": "sk-1\n"}, "PY_AGENT_GENERATIVE_API_KEY must be non-empty printable text"),
        ({"TIMEOUT_S": "ten"}, "PY_AGENT_GENERATIVE_TIMEOUT_S must be a number, got 'ten'"),
        ({"TIMEOUT_S": "0"}, "TIMEOUT_S must be between 0 and 300 seconds, got 0.0"),
        ({"TIMEOUT_S": "-1"}, "TIMEOUT_S must be between"),
        ({"TIMEOUT_S": "nan"}, "TIMEOUT_S must be between"),
        ({"TIMEOUT_S": "1e9"}, "TIMEOUT_S must be between"),
        ({"MAX_TOKENS": "1.5"}, "MAX_TOKENS must be a whole number, got '1.5'"),
        ({"MAX_TOKENS": "0"}, "MAX_TOKENS must be between 1 and 4096, got 0"),
        ({"READING_BELOW": "high"}, "READING_BELOW must be a number, got 'high'"),
        ({"READING_BELOW": "1.5"}, "READING_BELOW must be between 0 (never ask) and 1, got 1.5"),
        ({"READING_BELOW": "-0.1"}, "READING_BELOW must be between"),
        ({"READING_BELOW": "nan"}, "READING_BELOW must be between"),
        ({"READING_TIMEOUT_S": "0"}, "READING_TIMEOUT_S must be between 0 and 2 seconds"),
        ({"READING_TIMEOUT_S": "2"}, "(the device's deadline for /infer), got 2.0"),
        ({"READING_TIMEOUT_S": "nan"}, "READING_TIMEOUT_S must be between"),
        ({"READING_CONCURRENCY": "0"}, "READING_CONCURRENCY must be between 1 and 1024, got 0"),
        ({"READING_CONCURRENCY": "2.5"}, "READING_CONCURRENCY must be a whole number"),
    ],
)
def test_bad_generative_settings_are_refused_clearly(
    monkeypatch: pytest.MonkeyPatch, paths: list[str], env: dict[str, str], message: str
) -> None:
    variables = {f"PY_AGENT_GENERATIVE_{k}": v for k, v in (GENERATIVE | env).items()}
    assert message in refused(monkeypatch, variables, paths)


def test_errors_together_in_one_line(monkeypatch: pytest.MonkeyPatch, paths: list[str]) -> None:
    message = refused(monkeypatch, {"PY_AGENT_INFER_BURST": "0"}, [*paths, "--port", "x"])
    assert message == (
        "--port must be a whole number, got 'x'; PY_AGENT_INFER_BURST must be at least 1, got 0"
    )


def test_a_data_dir_that_cannot_be_created(dist: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SettingsError) as caught:
        from_command_line(["--dist-dir", str(dist), "--data-dir", str(tmp_path / "file" / "d")])
    assert str(caught.value) == (
        f"--data-dir: {tmp_path / 'file' / 'd'} cannot be created: Not a directory"
    )


def test_a_missing_build_names_the_command_that_makes_it(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        from_command_line(["--dist-dir", str(tmp_path), "--data-dir", str(tmp_path / "d")])
    message = str(caught.value)
    assert message == (
        f"--dist-dir: {tmp_path} has no index.html: build the web app first "
        f"(`python build.py` in {CHECKOUT}, or `make serve`, which builds it)"
    )


# --- py-agent serve ----------------------------------------------------------------------


class FakeUvicorn:
    """Stands in for uvicorn.Server.run: records how serve would start, and closes the
    app's databases (the app never starts, so its lifespan never closes them)."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []

    def run(self, server: uvicorn.Server) -> None:
        import asyncio

        config = server.config
        self.runs.append(
            {
                "host": config.host,
                "port": config.port,
                "log_level": config.log_level,
                "proxy_headers": config.proxy_headers,
                "forwarded_allow_ips": config.forwarded_allow_ips,
                "timeout_keep_alive": config.timeout_keep_alive,
                "guarded": issubclass(config.http, GuardedH11Protocol),  # type: ignore[arg-type]
            }
        )
        server.started = True
        app = cast(Starlette, config.app)

        async def close() -> None:
            await app.state.sync.store.close()
            await app.state.infer.installs.close()

        asyncio.run(close())


@pytest.fixture
def fake_uvicorn(monkeypatch: pytest.MonkeyPatch) -> FakeUvicorn:
    fake = FakeUvicorn()
    monkeypatch.setattr(uvicorn.Server, "run", lambda server, sockets=None: fake.run(server))
    return fake


def test_serve_says_where_it_found_the_build_and_the_models(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_uvicorn: FakeUvicorn,
) -> None:
    monkeypatch.chdir(tmp_path)  # not the checkout: nothing is found relative to it
    monkeypatch.setenv("PY_AGENT_PORT", "8123")
    assert main(["serve", "--data-dir", "data", "--host", "0.0.0.0"]) == 0
    # No forwarded header is believed unless a proxy is named (uvicorn believes 127.0.0.1).
    assert fake_uvicorn.runs == [
        {
            "host": "0.0.0.0",
            "port": 8123,
            "log_level": "info",
            "proxy_headers": False,
            "forwarded_allow_ips": "",
            "timeout_keep_alive": 5.0,
            "guarded": True,  # server/connections.py's caps and deadlines
        }
    ]
    out, err = capsys.readouterr()
    head = json.loads((MODELS / "manifest.json").read_text())["server_head"]
    assert f"py-agent serve: web build {DIST} (py_agent " in out
    assert f"py-agent serve: models {MODELS}: server model {head} on " in out
    assert f"py-agent serve: data {tmp_path / 'data'}\n" in out
    assert "py-agent serve: generative backend none\n" in out
    assert out.endswith("py_agent serving on http://0.0.0.0:8123\n")
    assert err == ""


def test_serve_without_a_server_model_warns_and_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], paths: list[str], fake_uvicorn: FakeUvicorn
) -> None:
    empty = tmp_path / "no-models"
    assert main(["serve", *paths, "--models-dir", str(empty)]) == 0
    assert len(fake_uvicorn.runs) == 1  # sync still works; /infer answers 503
    err = capsys.readouterr().err
    assert err == (
        f"py-agent serve: warning: no server model in {empty} ({empty}/manifest.json: No such "
        f"file or directory), so /api/v1/infer answers 503: build it with `python build.py "
        f"models` in {CHECKOUT}, or point --models-dir at built models\n"
    )


def test_serve_without_a_web_build_refuses_with_the_command_that_makes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_uvicorn: FakeUvicorn
) -> None:
    assert main(["serve", "--dist-dir", str(tmp_path / "none"), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"py-agent serve: error: --dist-dir: {tmp_path / 'none'} has no ")
    assert "`python build.py`" in err and err.count("\n") == 1
    assert fake_uvicorn.runs == []


def test_serve_refuses_a_bad_value_with_status_2_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    paths: list[str],
    fake_uvicorn: FakeUvicorn,
) -> None:
    monkeypatch.setenv("PY_AGENT_INFER_THREADS", "many")
    assert main(["serve", *paths]) == 2
    assert capsys.readouterr().err == (
        "py-agent serve: error: PY_AGENT_INFER_THREADS must be a whole number, got 'many'\n"
    )
    assert fake_uvicorn.runs == []


def test_serve_refuses_an_unknown_flag_with_its_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--prot", "8000"])
    assert caught.value.code == 2
    assert "usage: py-agent serve" in capsys.readouterr().err


def test_serve_help_lists_every_setting_with_its_variable_and_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--help"])
    assert caught.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for env in env_names():
        if env not in ENV_ONLY:
            assert f"{_flag(env)} " in text and env in text, env
    assert f"(default: {DIST})" in text


# --- the table in docs/server.md ---------------------------------------------------------


def test_docs_carry_the_settings_table() -> None:
    doc = (CHECKOUT / "docs" / "server.md").read_text(encoding="utf-8")
    assert settings_table() in doc, (
        "docs/server.md's settings table is out of date: replace it with the output of "
        "`python -m server.settings`"
    )


# --- the real thing, from another directory ----------------------------------------------


@pytest.mark.skipif(
    not (MODELS / "manifest.json").is_file() or not (DIST / "index.html").is_file(),
    reason="needs `python build.py models` and `python build.py`",
)
def test_py_agent_serve_from_another_directory_finds_the_build_and_the_models(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    script = Path(sys.executable).with_name("py-agent")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "tools.cli"]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "serve", "--port", str(port), "--data-dir", "data"],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),  # the autouse fixture took the shell's PY_AGENT_* out
        )
    try:
        wait_until_healthy(url, process, 60, log.read_text)
        assert (DIST / "index.html").read_bytes() == _get(url + "/")[1]

        status, body = _post(url + "/api/v1/installs", {})
        assert status == 201
        status, body = _post(
            url + "/api/v1/infer",
            {"text": "remind me to buy milk tomorrow", "now": "2026-11-18T10:00:00+01:00"},
            body["token"],
        )
        assert status == 200, body  # not 503: the models were found
        assert body["intent"] == "task.add"
        head = json.loads((MODELS / "manifest.json").read_text())["server_head"]
        assert body["model"] == head
    finally:
        process.terminate()
        process.wait(timeout=30)
    text = log.read_text()
    assert f"py-agent serve: web build {DIST}" in text
    assert f"py-agent serve: models {MODELS}: server model {head}" in text
    assert f"py-agent serve: data {tmp_path / 'data'}" in text
    assert (tmp_path / "data" / "sync.db").is_file()


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def _post(url: str, body: object, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
