"""The server's settings: one validated object (pydantic-settings), read from ``PY_AGENT_*``
environment variables and from ``py-agent serve``'s flags, checked once at start-up so a bad
value fails before the first request.

Each setting is defined once, here: its type, default, check and meaning. The environment
variable is ``PY_AGENT_`` + its name in capitals, the flag ``--`` + its name with hyphens
(``generative.*`` settings: ``PY_AGENT_GENERATIVE_URL``, ``--generative.url``). A flag wins
over the environment, the environment over the default. ``python -m server.settings`` prints
the table of every setting that docs/server.md carries (a test keeps the two equal).

Paths never depend on the current directory: the web build, the models and the server's data
default to ``web/dist``, ``models`` and ``.py_agent`` in the checkout the server is installed
from (``pip install -e .``, :data:`CHECKOUT`); a path given explicitly is taken relative to the
current directory, as a shell user expects, and made absolute.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic.fields import FieldInfo
from pydantic_core import CoreSchema, ErrorDetails, PydanticUndefined, core_schema
from pydantic_settings import CLI_SUPPRESS, BaseSettings, CliSettingsSource, SettingsConfigDict

from py_agent.router import DEFAULT_DEADLINE_S

# The checkout the server runs from: `pip install -e .` (how this project is installed) leaves
# the `server` package in place, so its parent holds web/dist, models/ and build.py.
CHECKOUT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "PY_AGENT_"
GENERATIVE_ENV = ENV_PREFIX + "GENERATIVE_"
TEST_FAULTS_ENV = ENV_PREFIX + "TEST_FAULTS"
BUILD_COMMAND = "python build.py"
MODELS_COMMAND = "python build.py models"
PROG = "py-agent serve"

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting is missing or wrong; the message is one line naming it (by the flag or
    environment variable it came from) and what it must be."""


@dataclass(frozen=True)
class Expect:
    """A setting's check, with the words an error message and the docs use for it:
    ``Annotated[int, Expect("at least 1", lambda n: n >= 1)]``."""

    text: str
    ok: Callable[[Any], bool]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def check(self, value: T) -> T:
        if not self.ok(value):  # NaN fails every comparison, so it is refused too
            shown = repr(value) if isinstance(value, str) else value
            raise ValueError(f"must be {self.text}, got {shown}")
        return value


def at_least(low: int) -> Expect:
    return Expect(f"at least {low}", lambda value: value >= low)


def between(low: int, high: int) -> Expect:
    return Expect(f"between {low} and {high}", lambda value: low <= value <= high)


POSITIVE = Expect("positive", lambda value: value > 0)

EnvOnly = Annotated[T, CLI_SUPPRESS]
"""A setting read from the environment only: a command line is visible to every user of the
machine (``ps``), and the test switch has no business on one."""


def _checkout_hint() -> str:
    if (CHECKOUT / "build.py").is_file():
        return f"in {CHECKOUT}"
    # A plain `pip install .` copies the packages away from any checkout.
    return "in the py_agent checkout (this install is not one: give the path explicitly)"


def _absolute(path: Path) -> Path:
    return path.expanduser().resolve()


def _web_build(path: Path) -> Path:
    path = _absolute(path)
    if not (path / "index.html").is_file():
        raise ValueError(
            f"{path} has no index.html: build the web app first "
            f"(`{BUILD_COMMAND}` {_checkout_hint()}, or `make serve`, which builds it)"
        )
    return path


def _proxies(value: str) -> str:
    for item in value.split(","):
        try:
            ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise ValueError(
                f"must be IP addresses or networks separated by commas, got {item.strip()!r}"
            ) from None
    return ",".join(item.strip() for item in value.split(","))


def _data_dir(path: Path) -> Path:
    path = _absolute(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{path} cannot be created: {exc.strerror or exc}") from None
    return path


def _url(value: str) -> str:
    url = urlsplit(value.strip())
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"must be an http(s) URL such as http://127.0.0.1:8001/v1, got {value!r}")
    if url.query or url.fragment:
        raise ValueError(f"must not have a query or fragment, got {value!r}")
    return value.strip().rstrip("/")


def _model(value: str) -> str:
    if not value.strip():
        raise ValueError(f"must name the backend's model, got {value!r}")
    return value.strip()


def _api_key(value: SecretStr | None) -> SecretStr | None:
    # A key with whitespace or control characters cannot go in an Authorization header;
    # refusing it here beats failing every request later.
    key = None if value is None else value.get_secret_value()
    if key is not None and (not key or not key.isprintable() or " " in key):
        raise ValueError("must be non-empty printable text without spaces")
    return value


def _switch(value: object) -> bool:
    # Only exactly "1" turns the switch on: "true", "yes" or "0" all leave it off.
    return value is True or value == "1"


@pydantic_dataclass(
    frozen=True, config=ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)
)
class GenerativeSettings:
    """
    An OpenAI-compatible chat-completions backend for out_of_scope answers
    (server/generative.py) and structured readings (server/structured.py).
    """

    # `url` in the environment and on the command line: PY_AGENT_GENERATIVE_URL, --generative.url.
    base_url: Annotated[
        str,
        Field(
            validation_alias="url",
            description="the backend's API root, e.g. `http://127.0.0.1:8001/v1` or "
            "`https://api.openai.com/v1`; requests go to `{url}/chat/completions`. "
            "Unset: no backend",
        ),
        AfterValidator(_url),
    ]
    model: Annotated[
        str,
        Field(description="the `model` to ask for (required with a URL)"),
        AfterValidator(_model),
    ]
    api_key: Annotated[
        EnvOnly[SecretStr | None],
        Field(description="sent as `Authorization: Bearer …`, only when set"),
        AfterValidator(_api_key),
    ] = None
    timeout_s: Annotated[
        float,
        Field(description="deadline for the **whole** exchange of an answer, not per read"),
        Expect("between 0 and 300 seconds", lambda value: 0 < value <= 300),
    ] = 10.0
    max_tokens: Annotated[
        int,
        Field(description="`max_tokens` of an answer; a structured reading asks for 128 more"),
        between(1, 4096),
    ] = 160
    reading_below: Annotated[
        float,
        Field(description="ask for a structured reading below this server-model confidence"),
        Expect("between 0 (never ask) and 1", lambda value: 0 <= value <= 1),
    ] = 0.7
    # The device gives the whole /infer exchange DEFAULT_DEADLINE_S; a reading that may take
    # all of it leaves no time for the server model, the network or the fallback.
    reading_timeout_s: Annotated[
        float,
        Field(description="the structured reading's own deadline for the whole exchange"),
        Expect(
            f"between 0 and {DEFAULT_DEADLINE_S:g} seconds (the device's deadline for /infer)",
            lambda value: 0 < value < DEFAULT_DEADLINE_S,
        ),
    ] = 1.2
    reading_concurrency: Annotated[
        int,
        Field(description="structured readings in flight at most; past it, the model's reading"),
        between(1, 1024),
    ] = 8


class Settings(BaseSettings):
    # The docstring is `py-agent serve --help`'s description.
    """
    Serve the web app and the sync/inference API. Every setting can also be given as an
    environment variable (shown in brackets); a flag wins over the environment. Paths default
    to the checkout py_agent is installed from, whatever the current directory.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        # PY_AGENT_GENERATIVE_READING_TIMEOUT_S → generative.reading_timeout_s: the first "_"
        # after the group's name is the only one that nests.
        env_nested_delimiter="_",
        env_nested_max_split=1,
        env_ignore_empty=True,  # VAR= is the same as unset
        frozen=True,
        extra="forbid",
        cli_prog_name=PROG,
        cli_kebab_case=True,
        cli_avoid_json=True,
        cli_hide_none_type=True,
        cli_show_env_vars=True,
        cli_use_class_docs_for_groups=True,
    )

    host: Annotated[
        str,
        Field(description="the address to listen on; 127.0.0.1 keeps the server to this machine"),
        Expect(
            "a host name or IP address",
            lambda value: bool(value) and value.isprintable() and " " not in value,
        ),
    ] = "127.0.0.1"
    port: Annotated[int, Field(description="the TCP port to listen on"), between(1, 65535)] = 8000
    trusted_proxies: Annotated[
        str | None,
        Field(
            description="reverse proxies (IP addresses or networks, comma-separated) whose "
            "X-Forwarded-For and -Proto are believed; none by default, so no client can pose as "
            "another address to the per-address limits"
        ),
        AfterValidator(lambda value: None if value is None else _proxies(value)),
    ] = None
    dist_dir: Annotated[
        Path,
        Field(
            description=f"the built web app (`{BUILD_COMMAND}`); the server refuses to start "
            "without its index.html"
        ),
        AfterValidator(_web_build),
    ] = CHECKOUT / "web" / "dist"
    data_dir: Annotated[
        Path,
        Field(
            description="the server's state: sync.db and installs.db (SQLite), created if missing"
        ),
        AfterValidator(_data_dir),
    ] = CHECKOUT / ".py_agent"
    # The server model (server/inference.py, POST /api/v1/infer).
    models_dir: Annotated[
        Path,
        Field(
            description=f"the built models (`{MODELS_COMMAND}`); without the server model "
            "/api/v1/infer answers 503 and sync still works"
        ),
        AfterValidator(_absolute),
    ] = CHECKOUT / "models"
    # Model updates (server/updates_api.py): a TUF repository made by `py-agent release`.
    updates_dir: Annotated[
        Path | None,
        Field(
            description="the TUF repository of model releases (`py-agent release init`), "
            "served under /api/v1/updates/; default: `<data-dir>/updates`"
        ),
        AfterValidator(lambda value: None if value is None else _absolute(value)),
    ] = None
    infer_threads: Annotated[
        int,
        Field(description="onnxruntime threads of each of the server model's sessions"),
        at_least(1),
    ] = 2
    infer_max_batch: Annotated[
        int, Field(description="/infer requests embedded together in one run at most"), at_least(1)
    ] = 32
    infer_max_body_bytes: Annotated[
        int,
        Field(
            description="the largest /infer body (413 past it); room for 2,000 escaped characters"
        ),
        at_least(8 * 1024),
    ] = 64 * 1024
    infer_rate_per_s: Annotated[
        float,
        Field(description="/infer requests a second per token (token bucket refill; then 429)"),
        POSITIVE,
    ] = 5.0
    infer_burst: Annotated[
        int,
        Field(description="/infer requests per token in a burst (token bucket size)"),
        at_least(1),
    ] = 20
    installs_per_min: Annotated[
        int, Field(description="install tokens per client address a minute (then 429)"), at_least(1)
    ] = 10
    # Sync (server/sync_api.py).
    pairing_code_ttl_s: Annotated[
        float, Field(description="how long a pairing code can be used, in seconds"), POSITIVE
    ] = 24 * 3600.0
    devices_per_pairing_code: Annotated[
        int,
        Field(description="devices one pairing code can pair (then 403: make a new code)"),
        at_least(1),
    ] = 10
    sync_page_size: Annotated[
        int, Field(description="ops one /sync answer carries at most"), between(1, 10_000)
    ] = 500
    max_body_bytes: Annotated[
        int, Field(description="the largest sync request body (413 past it)"), at_least(1024)
    ] = 1024 * 1024
    sync_rate_per_s: Annotated[
        float,
        Field(description="sync requests a second per device (token bucket refill; then 429)"),
        POSITIVE,
    ] = 10.0
    sync_burst: Annotated[
        int,
        Field(description="sync requests per device in a burst (token bucket size)"),
        at_least(1),
    ] = 20
    space_max_ops: Annotated[
        int,
        Field(description="changes (ops) one space holds at most (then 413, naming it)"),
        at_least(1),
    ] = 1_000_000
    space_max_bytes: Annotated[
        int,
        Field(description="bytes of changes one space holds at most (then 413, naming it)"),
        at_least(1024),
    ] = 200_000_000
    replica_cache_bytes: Annotated[
        int,
        Field(
            description="bytes of changes the state worker's merged spaces hold at most (about "
            "4 times that in memory; the space being read is kept even if larger); the least "
            "recently read are rebuilt when asked for"
        ),
        at_least(1),
    ] = 64_000_000
    state_reads_per_min: Annotated[
        int,
        Field(description="GET /spaces/{id}/state pages per device a minute (then 429)"),
        at_least(1),
    ] = 60
    state_page_size: Annotated[
        int,
        Field(description="records one GET /spaces/{id}/state page carries at most (its `limit`)"),
        between(1, 100_000),
    ] = 1000
    spaces_per_min: Annotated[
        int,
        Field(description="spaces one client address can create a minute (then 429)"),
        at_least(1),
    ] = 5
    spaces_per_min_total: Annotated[
        int,
        Field(description="spaces all clients together can create a minute (then 429)"),
        at_least(1),
    ] = 200
    pairing_failures_per_min: Annotated[
        int,
        Field(description="failed pairings per client address a minute (then 429)"),
        at_least(1),
    ] = 10
    live_streams_per_device: Annotated[
        int,
        Field(description="live-sync streams open per device (a new one closes the oldest)"),
        between(1, 100),
    ] = 4
    live_streams_per_space: Annotated[
        int,
        Field(description="live-sync streams open per space (then 429: the device polls)"),
        between(1, 10_000),
    ] = 64
    # Connections (server/connections.py): what one client can hold open, and for how long.
    max_connections: Annotated[
        int,
        Field(
            description="connections open at once (more are closed as they arrive); kept below "
            "the open-file limit"
        ),
        at_least(1),
    ] = 2000
    max_connections_per_address: Annotated[
        int,
        Field(
            description="connections open at once from one client address (not counted for "
            "trusted proxies)"
        ),
        at_least(1),
    ] = 100
    header_timeout_s: Annotated[
        float,
        Field(description="seconds a client has to send a request's headers (then closed)"),
        POSITIVE,
    ] = 10.0
    body_timeout_s: Annotated[
        float,
        Field(
            description="seconds a client has to send a request's body once its headers are in "
            "(then closed); 60 lets a 1 MB sync push through at 17 KB/s"
        ),
        POSITIVE,
    ] = 60.0
    keep_alive_timeout_s: Annotated[
        float,
        Field(description="seconds an idle kept-alive connection stays open"),
        POSITIVE,
    ] = 5.0
    metrics_token: Annotated[
        EnvOnly[SecretStr | None],
        Field(
            description="when set, GET /metrics wants `Authorization: Bearer` with it (401 "
            "without); unset, /metrics is open to whoever reaches the server"
        ),
        AfterValidator(_api_key),
    ] = None
    # Out-of-scope answers and structured readings (server/generative.py, structured.py);
    # None = no backend: a fixed fallback, and the server model's reading alone.
    generative: Annotated[
        GenerativeSettings | None, Field(description="the generative backend; none without a URL")
    ] = None
    # The fault switch for network tests (server/faults.py): never on unless asked for.
    test_faults: Annotated[
        EnvOnly[bool],
        Field(
            description="the network tests' fault switch (server/faults.py): on only when "
            "exactly `1`; never set it on a server people use"
        ),
        BeforeValidator(_switch),
    ] = False

    def __init__(self, **values: Any) -> None:
        # Settings(...) raises SettingsError, never pydantic's multi-line ValidationError.
        cli = values.get("_cli_settings_source")
        given = cli() if isinstance(cli, CliSettingsSource) else {}
        init = {name: value for name, value in values.items() if not name.startswith("_")}
        for path in _env_only_paths():
            if _holds(given, path):
                raise SettingsError(
                    f"{_flag(path)} is not a flag: set {_env(path)} instead (read from the "
                    "environment only: every user of the machine can read a command line)"
                )
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(_explain(exc, given, init)) from None

    @field_validator("generative", mode="before")
    @classmethod
    def _no_url_no_backend(cls, value: Any) -> Any:
        """Without a URL there is no backend, whatever else PY_AGENT_GENERATIVE_* says."""
        if isinstance(value, Mapping):
            url = value.get("url", value.get("base_url"))
            if url is None or (isinstance(url, str) and not url.strip()):
                return None
        return value

    @property
    def sync_db(self) -> Path:
        return self.data_dir / "sync.db"

    @property
    def installs_db(self) -> Path:
        return self.data_dir / "installs.db"

    @property
    def updates_repository(self) -> Path:
        return self.updates_dir or self.data_dir / "updates"


def from_command_line(argv: Sequence[str]) -> Settings:
    """The settings ``py-agent serve ARGV`` asks for, over the environment's. ``--help``
    prints every setting and exits; an unknown flag exits with argparse's usage (status 2)."""
    return Settings(_cli_settings_source=CliSettingsSource(Settings, cli_parse_args=list(argv)))


# --- names and messages ----------------------------------------------------------------


def _env(path: Sequence[str]) -> str:
    return ENV_PREFIX + "_".join(path).upper()


def _flag(path: Sequence[str]) -> str:
    return "--" + ".".join(part.replace("_", "-") for part in path)


def _fields(cls: type[Any]) -> dict[str, FieldInfo]:
    fields: dict[str, FieldInfo] = cls.__pydantic_fields__  # models and pydantic dataclasses
    return fields


def _setting_fields() -> list[tuple[tuple[str, ...], FieldInfo]]:
    """Every setting, as (its path, e.g. ("generative", "url"), its field)."""
    rows: list[tuple[tuple[str, ...], FieldInfo]] = []
    for name, info in _fields(Settings).items():
        if name == "generative":
            for sub, sub_info in _fields(GenerativeSettings).items():
                alias = sub_info.validation_alias
                rows.append(((name, alias if isinstance(alias, str) else sub), sub_info))
        else:
            rows.append(((name,), info))
    return rows


def _env_only_paths() -> list[tuple[str, ...]]:
    return [path for path, info in _setting_fields() if CLI_SUPPRESS in info.metadata]


def env_names() -> list[str]:
    """The environment variable of every setting."""
    return [_env(path) for path, _ in _setting_fields()]


def _holds(values: Mapping[str, Any], path: Sequence[str]) -> bool:
    """Whether nested ``values`` (a source's raw input) give the setting at ``path``."""
    for part in path:
        if not isinstance(values, Mapping):
            return True  # a whole object was given for the group (Python callers)
        if part not in values:
            return False
        values = values[part]
    return True


TYPE_WORDS = {
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "int_type": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "string_type": "text",
    "path_type": "a path",
    "bool_parsing": "true or false",
}


def _explain(exc: ValidationError, cli: Mapping[str, Any], init: Mapping[str, Any]) -> str:
    """One line for all of ``exc``'s errors, each naming its setting the way the user gave
    it: the flag, the environment variable, or (from Python) the field's name."""
    parts: list[str] = []
    for error in exc.errors():
        path = tuple(str(part) for part in error["loc"])
        if not path:
            parts.append(error["msg"])
        elif error["type"] == "missing":
            group = " with a generative URL" if path[0] == "generative" else ""
            parts.append(f"{_env(path)} is required{group} (on the command line: {_flag(path)})")
        else:
            parts.append(_explain_one(error, _given_as(path, cli, init)))
    return "; ".join(parts)


def _given_as(path: tuple[str, ...], cli: Mapping[str, Any], init: Mapping[str, Any]) -> str:
    """The setting at ``path`` named the way it was given: its flag, its environment
    variable, or (from Python) its field's name; a default goes by its flag."""
    if _holds(cli, path):
        return _flag(path)
    if _holds(init, path):
        return ".".join(path)
    if any(name.upper() == _env(path) and value for name, value in os.environ.items()):
        return _env(path)
    return _flag(path)


def _explain_one(error: ErrorDetails, name: str) -> str:
    if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"{name} is not a setting"
    if error["type"] in TYPE_WORDS:
        return f"{name} must be {TYPE_WORDS[error['type']]}, got {error['input']!r}"
    if error["type"] == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
        return f"{name} {message}" if message.startswith("must ") else f"{name}: {message}"
    return f"{name}: {error['msg'][:1].lower()}{error['msg'][1:]}"


# --- the table in docs/server.md ----------------------------------------------------------


def _default_text(info: FieldInfo) -> str:
    default = info.default
    if default is PydanticUndefined:
        return ""
    if default is None or default is False:
        return "none" if default is None else "off"
    if isinstance(default, Path) and default.is_relative_to(CHECKOUT):
        return f"`<checkout>/{default.relative_to(CHECKOUT)}`"
    if isinstance(default, str):
        return f"`{default}`"
    return f"{default:g}" if isinstance(default, float) and default < 1000 else f"{default:.0f}"


def settings_table() -> str:
    """Every setting as a Markdown table: docs/server.md carries it (tests check)."""
    lines = [
        "| setting | environment variable | flag | default | must be | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for path, info in _setting_fields():
        checks = "; ".join(item.text for item in info.metadata if isinstance(item, Expect))
        flag = "—" if CLI_SUPPRESS in info.metadata else f"`{_flag(path)}`"
        lines.append(
            f"| `{'.'.join(path)}` | `{_env(path)}` | {flag} | {_default_text(info)} "
            f"| {checks} | {info.description} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(settings_table())
