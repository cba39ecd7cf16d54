"""The ``py-agent`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from py_agent.router import DEFAULT_THRESHOLD

if TYPE_CHECKING:
    from py_agent.agent import Agent, Reply
    from py_agent.encoder import Encoder
    from py_agent.state import State
    from server.settings import Settings as ServerSettings


class CommandError(Exception):
    """The command cannot run as asked; main prints the message and exits with 2."""


# The core needs only numpy and python-dateutil; each command imports what it needs when it
# runs, and a missing module names the extra (pyproject.toml) that carries it.
EXTRA_OF_MODULE = {
    "httpx": "native",
    "onnxruntime": "native",
    "starlette": "server",
    "uvicorn": "server",
    "prometheus_client": "server",
    "pydantic": "server",
    "pydantic_settings": "server",
    "matplotlib": "eval",
    "tuf": "server",
    "securesystemslib": "server",
    "cryptography": "server",
}


def _missing_extra(exc: ModuleNotFoundError) -> str | None:
    top = (exc.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return f"this command needs {top}, from the {extra!r} extra: pip install 'py-agent[{extra}]'"


def _serve(args: argparse.Namespace) -> int:
    # Imported here: the server's dependencies are an extra, and the browser
    # build of py_agent never runs this command.
    import uvicorn

    from server.app import create_app
    from server.connections import uvicorn_config
    from server.settings import SettingsError, from_command_line

    try:
        settings = from_command_line(args.options)  # flags, over PY_AGENT_*, over defaults
        app = create_app(settings)  # opens and migrates the sync database
    except SettingsError as exc:
        print(f"py-agent serve: error: {exc}", file=sys.stderr)
        return 2
    _say_where(settings)
    server = uvicorn.Server(uvicorn_config(app, settings))
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a user stops it
        server.run()
    return 0 if server.started else 1


def _say_where(settings: ServerSettings) -> None:
    """Where the server found the build and the models, before it starts; without a server
    model it still serves (sync works, /api/v1/infer answers 503), so that is a warning."""
    from server.inference import ModelUnavailable, find_server_model
    from server.settings import CHECKOUT, MODELS_COMMAND
    from server.static import describe_build

    build = describe_build(settings.dist_dir)
    print(f"py-agent serve: web build {settings.dist_dir}" + (f" ({build})" if build else ""))
    try:
        model = find_server_model(settings.models_dir)
        print(f"py-agent serve: models {settings.models_dir}: server model {model}")
    except ModelUnavailable as exc:
        print(
            f"py-agent serve: warning: no server model in {settings.models_dir} ({exc}), so "
            f"/api/v1/infer answers 503: build it with `{MODELS_COMMAND}` in {CHECKOUT}, "
            "or point --models-dir at built models",
            file=sys.stderr,
        )
    print(f"py-agent serve: data {settings.data_dir}")
    backend = settings.generative
    where = "none" if backend is None else f"{backend.base_url} (model {backend.model})"
    print(f"py-agent serve: generative backend {where}")
    print(f"py_agent serving on http://{settings.host}:{settings.port}", flush=True)


def _texts(args: argparse.Namespace) -> list[str]:
    """The TEXT arguments, or else stdin's lines: onnxruntime 1.30's Python module crashes
    on import when the command line carries 32 KB or more, so bulk input comes this way.
    Lines split at newlines only (a text may hold other line separators); every line is a
    text, an empty one included, so output line n answers input line n."""
    if args.texts:
        return list(args.texts)
    if sys.stdin.isatty():
        raise CommandError("give TEXT arguments, or pipe texts into stdin, one per line")
    data = sys.stdin.read()
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start another
    return [line.removesuffix("\r") for line in lines]


def _tokenize(args: argparse.Namespace) -> int:
    from py_agent.encoder import load_manifest, load_tokenizer

    texts = _texts(args)

    async def run() -> None:
        folder, manifest = await load_manifest(str(args.models_dir))
        tokenizer = await load_tokenizer(folder, manifest)
        for text in texts:
            print(json.dumps(tokenizer.encode(text)))

    asyncio.run(run())
    return 0


def _embed(args: argparse.Namespace) -> int:
    from py_agent.encoder import load_encoder
    from py_agent.platform import inference_runtime

    texts = _texts(args)

    async def run() -> None:
        precision = "fp32" if args.fp32 else "int8"
        encoder = await load_encoder(
            str(args.models_dir), inference_runtime(args.threads), precision=precision
        )
        for text in texts:
            print(json.dumps((await encoder.embed(text)).tolist()))

    asyncio.run(run())
    return 0


def _eval(args: argparse.Namespace) -> int:
    from py_agent.encoder import load_encoder
    from py_agent.intents import INTENTS, IntentPrediction, load_intent_head
    from py_agent.platform import inference_runtime

    from . import cascade_eval
    from .evaluation import evaluate, format_report, parse_eval_file

    try:
        lines = args.file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        print(f"py-agent eval: error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    data = parse_eval_file(lines, str(args.file), INTENTS)
    texts = [text for text, _ in data.intents]
    needs_cloud = args.mode != "local" or args.sweep

    async def server_predictions() -> list[IntentPrediction]:
        # The server's model in-process, exactly as /api/v1/infer runs it.
        from server.inference import MAX_BATCH, load_server_model

        model = await load_server_model(args.models_dir, args.threads)
        predictions: list[IntentPrediction] = []
        for start in range(0, len(texts), MAX_BATCH):
            rows = await model.embed(texts[start : start + MAX_BATCH])
            predictions += [model.head.predict(row) for row in rows]
        return predictions

    async def run() -> dict[str, Any]:
        root = str(args.models_dir)
        encoder = await load_encoder(root, inference_runtime(args.threads))
        head = await load_intent_head(root)
        report = await evaluate(data, encoder, head, args.now)
        local = [head.predict(await encoder.embed(text)) for text in texts]
        cloud = await server_predictions() if needs_cloud else None
        gold = [intent for _, intent in data.intents]
        report.update(
            cascade_eval.report(args.mode, gold, local, cloud, INTENTS, args.threshold, args.sweep)
        )
        return report

    report = asyncio.run(run())
    if args.plot is not None:
        if "sweep" not in report:
            print("py-agent eval: error: --plot needs --sweep", file=sys.stderr)
            return 2
        cascade_eval.plot(report, args.plot, f"cascade on {args.file.name}")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"mode: {args.mode}" + (f" (τ = {args.threshold})" if args.mode == "cascade" else ""))
    if needs_cloud:
        print(f"fallback rate: {report['fallback_rate']:.1%}")
    if report["confident_wrong"] is not None:
        print(f"confident and wrong (device ≥ τ {args.threshold}): {report['confident_wrong']:.1%}")
    print(format_report(report))
    if "sweep" in report:
        print("\n" + cascade_eval.format_sweep(report))
    return 0


# Reply.source as `chat --json` names it.
SOURCES = {"local": "device", "cloud": "server", "tentative": "guess"}


def _reply_json(reply: Reply) -> dict[str, Any]:
    source = reply.source if reply.source in SOURCES.values() else SOURCES.get(reply.source)
    return {
        "reply": reply.text,
        "intent": reply.intent,
        "confidence": round(reply.confidence, 4),
        "source": source or "guess",
    }


async def _open_data(args: argparse.Namespace) -> tuple[Encoder, State]:
    """The on-device encoder and the user's data at ``--data`` (created if missing), its
    embeddings tagged with the encoder's name as the page tags them."""
    from py_agent.encoder import load_encoder
    from py_agent.platform import inference_runtime
    from py_agent.state import open_state

    encoder = await load_encoder(str(args.models_dir), inference_runtime(args.threads))
    manifest = encoder.manifest
    args.data.parent.mkdir(parents=True, exist_ok=True)
    state = await open_state(str(args.data), model=f"{manifest.name}/{manifest.version}")
    return encoder, state


async def _open_agent(args: argparse.Namespace) -> Agent:
    from py_agent.agent import Agent
    from py_agent.intents import load_intent_head

    encoder, state = await _open_data(args)
    agent = Agent(state, encoder, await load_intent_head(str(args.models_dir)))
    await agent.prepare()
    return agent


def _chat(args: argparse.Namespace) -> int:
    from py_agent.agent import AgentError

    def now() -> datetime:
        return datetime.now().astimezone() if args.now is None else args.now

    async def interactive(agent: Agent) -> None:
        print("py_agent chat — your tasks and notes stay in", args.data, "(Ctrl-D to quit)")
        while True:
            try:
                # The agent does nothing while waiting for the user.
                text = input("you> ")  # noqa: ASYNC250
            except EOFError:
                print()
                return
            if not text.strip():
                continue
            try:
                reply = await agent.handle(text, now())
            except AgentError as exc:
                print(f"agent> ({exc})")
                continue
            print(f"agent> {reply.text}")
            print(f"       [{reply.intent} {reply.confidence:.0%}, {reply.latency_ms:.0f} ms]")

    async def scripted(agent: Agent) -> None:
        # One request per line, one JSON object per reply, flushed at once: a script
        # driving the chat through a pipe reads each reply before it writes the next line.
        while line := await asyncio.to_thread(sys.stdin.readline):
            text = line.removesuffix("\n").removesuffix("\r")
            if not text.strip():
                continue
            try:
                answer = _reply_json(await agent.handle(text, now()))
            except AgentError as exc:
                answer = {"error": str(exc)}
            print(json.dumps(answer), flush=True)  # ASCII: safe whatever the locale

    async def run() -> None:
        agent = await _open_agent(args)
        await (scripted(agent) if args.json else interactive(agent))

    asyncio.run(run())
    return 0


def _check_existing_data(path: Path) -> None:
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise CommandError(f"{path} {what} (--data names the SQLite file chat and import write)")


def _export(args: argparse.Namespace) -> int:
    from py_agent.export import export_data
    from py_agent.state import open_state

    _check_existing_data(args.data)

    async def run() -> str:
        # The model only tags embeddings, which an export leaves alone.
        state = await open_state(str(args.data), model="export")
        try:
            return export_data(state).to_text()
        finally:
            await state.store.close()

    sys.stdout.write(asyncio.run(run()))
    return 0


def _read_import(file: str) -> bytes:
    """FILE's bytes (``-``: stdin's), refusing more than the format allows before
    reading it all."""
    from py_agent.export import MAX_BYTES, DataFormatError

    try:
        if file == "-":
            data = sys.stdin.buffer.read(MAX_BYTES + 1)
        else:
            with open(file, "rb") as stream:
                data = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        raise DataFormatError([f"cannot read {file}: {exc.strerror}"]) from None
    if len(data) > MAX_BYTES:
        raise DataFormatError([f"{file} is larger than the limit of {MAX_BYTES / 1e6:.0f} MB"])
    return data


def _import(args: argparse.Namespace) -> int:
    from py_agent.export import import_data, parse_user_data

    # All of the file is checked before the model loads or the data is opened.
    data = parse_user_data(_read_import(args.file))

    async def run() -> str:
        encoder, state = await _open_data(args)
        try:
            now = datetime.now().astimezone()
            return str(await import_data(state, data, encoder.embed, now))
        finally:
            await state.store.close()

    print(asyncio.run(run()))
    return 0


def _unit_interval(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {value}")
    return number


def _iso_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO time: {value!r}") from exc
    return moment if moment.tzinfo else moment.astimezone()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="py-agent", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    # serve's flags are the server's settings (server/settings.py), defined there once and
    # read when serve runs (the server's dependencies are an extra): this parser takes no
    # option of its own ("\0" prefixes none) and hands every argument on, --help included.
    serve = commands.add_parser(
        "serve",
        help="serve the web app and the sync/inference API (serve --help: every setting)",
        add_help=False,
        prefix_chars="\0",
    )
    serve.add_argument("options", nargs=argparse.REMAINDER)
    serve.set_defaults(run=_serve)

    models_dir = argparse.ArgumentParser(add_help=False)
    models_dir.add_argument(
        "--models-dir", type=Path, default=Path("models"), help="built by `python build.py models`"
    )
    tokenize = commands.add_parser(
        "tokenize", parents=[models_dir], help="print the token ids of each TEXT as a JSON list"
    )
    tokenize.add_argument(
        "texts", nargs="*", metavar="TEXT", help="default: one text per line of stdin"
    )
    tokenize.set_defaults(run=_tokenize)
    embed = commands.add_parser(
        "embed",
        parents=[models_dir],
        help="print the normalised embedding of each TEXT as a JSON array (native onnxruntime)",
    )
    embed.add_argument(
        "texts", nargs="*", metavar="TEXT", help="default: one text per line of stdin"
    )
    embed.add_argument("--fp32", action="store_true", help="the fp32 model instead of int8")
    embed.add_argument("--threads", type=int, default=1)
    embed.set_defaults(run=_embed)

    evaluate = commands.add_parser(
        "eval", parents=[models_dir], help="accuracy of the agent's understanding on a JSONL file"
    )
    evaluate.add_argument("file", type=Path, metavar="FILE.jsonl")
    evaluate.add_argument(
        "--now",
        type=_iso_time,
        default=datetime.now().astimezone(),
        help="the time relative dates are read against (ISO, default: now)",
    )
    evaluate.add_argument(
        "--mode",
        choices=("local", "cloud", "cascade"),
        default="local",
        help="the device's model, the server's (in-process), or the device's "
        "falling back to the server's below --threshold",
    )
    evaluate.add_argument(
        "--threshold",
        type=_unit_interval,
        default=DEFAULT_THRESHOLD,
        help=f"the cascade's confidence threshold τ (default {DEFAULT_THRESHOLD})",
    )
    evaluate.add_argument(
        "--sweep",
        action="store_true",
        help="every τ from 0 to 1: fallback rate against accuracy, and the knee",
    )
    evaluate.add_argument("--plot", type=Path, metavar="PNG", help="draw the --sweep curve")
    evaluate.add_argument("--json", action="store_true", help="one JSON object")
    evaluate.add_argument("--threads", type=int, default=1)
    evaluate.set_defaults(run=_eval)

    data = argparse.ArgumentParser(add_help=False)
    data.add_argument(
        "--data", type=Path, default=Path(".py_agent/chat.db"), help="the user's data (SQLite)"
    )
    chat = commands.add_parser(
        "chat", parents=[models_dir, data], help="the agent in this terminal (state in SQLite)"
    )
    chat.add_argument(
        "--now",
        type=_iso_time,
        help="the time the whole conversation happens at (ISO; without an offset, local time)",
    )
    chat.add_argument(
        "--json",
        action="store_true",
        help="scripted: one request per stdin line, one JSON reply per stdout line "
        "(reply, intent, confidence, source; or error)",
    )
    chat.add_argument("--threads", type=int, default=1)
    chat.set_defaults(run=_chat)

    export = commands.add_parser(
        "export", parents=[data], help="print every task and note as JSON (see README)"
    )
    export.set_defaults(run=_export)
    load = commands.add_parser(
        "import",
        parents=[models_dir, data],
        help="add or update the tasks and notes of an export file; nothing is deleted",
    )
    load.add_argument("file", metavar="FILE", help="an export's JSON file, or - for stdin")
    load.add_argument("--threads", type=int, default=1)
    load.set_defaults(run=_import)
    _add_release(commands)
    return parser


def _release(args: argparse.Namespace) -> int:
    # Imported here: python-tuf is in the server extra.
    from .release import ReleaseError, run

    try:
        return run(args)
    except ReleaseError as exc:
        raise CommandError(str(exc)) from None


def _add_release(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    release = commands.add_parser("release", help="sign and publish model releases (TUF)")
    actions = release.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--repo", type=Path, required=True, help="the TUF repository's folder")
    common.add_argument(
        "--passphrase-env",
        metavar="NAME",
        help="the environment variable holding the keys' passphrase (never on the command line)",
    )
    init_parser = actions.add_parser("init", parents=[common], help="new keys and metadata")
    init_parser.add_argument("--root-keys", type=int, default=1, help="root keys to make")
    init_parser.add_argument("--root-threshold", type=int, default=1, help="root signatures needed")
    publish_parser = actions.add_parser("publish", parents=[common], help="a models dir as release")
    publish_parser.add_argument("--models", type=Path, required=True, help="built models folder")
    publish_parser.add_argument("--version", help="the release's name (default: UTC time)")
    publish_parser.add_argument("--rollout", type=int, default=100, help="percent of devices")
    rollout_parser = actions.add_parser("rollout", parents=[common], help="set the rollout %%")
    rollout_parser.add_argument("--percent", type=int, required=True, help="0 pauses")
    rollout_parser.add_argument("--version", help="default: the newest release")
    revoke_parser = actions.add_parser("revoke", parents=[common], help="withdraw a release")
    revoke_parser.add_argument("--version", required=True)
    actions.add_parser("timestamp", parents=[common], help="re-sign timestamp (fresh expiry)")
    rotate_parser = actions.add_parser("rotate", parents=[common], help="new key for a role")
    rotate_parser.add_argument(
        "--role", choices=("root", "targets", "snapshot", "timestamp"), required=True
    )
    release.set_defaults(run=_release)


def main(argv: Sequence[str] | None = None) -> int:
    from py_agent.encoder import EncoderError
    from py_agent.export import DataFormatError
    from py_agent.intents import IntentHeadError
    from py_agent.platform import InferenceError, ResourceError, StoreError

    from .evaluation import EvalFileError

    args = build_parser().parse_args(argv)
    try:
        result: int = args.run(args)
    except ModuleNotFoundError as exc:
        message = _missing_extra(exc)
        if message is None:
            raise
        print(f"py-agent {args.command}: error: {message}", file=sys.stderr)
        return 2
    except (
        CommandError,
        DataFormatError,
        EncoderError,
        EvalFileError,
        InferenceError,
        IntentHeadError,
        ResourceError,
        StoreError,
    ) as exc:
        print(f"py-agent {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
