"""The ``py-agent`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _serve(args: argparse.Namespace) -> int:
    # Imported here: the server's dependencies are an extra, and the browser
    # build of py_agent never runs this command.
    import uvicorn

    from server.app import create_app
    from server.settings import Settings, SettingsError

    try:
        settings = Settings(
            dist_dir=args.dist_dir, data_dir=args.data_dir, host=args.host, port=args.port
        )
    except SettingsError as exc:
        print(f"py-agent serve: error: {exc}", file=sys.stderr)
        return 2
    print(f"py_agent serving {settings.dist_dir} on http://{settings.host}:{settings.port}")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="py-agent", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the web app and the sync/inference API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--data-dir", type=Path, default=Path(".py_agent"), help="server state (SQLite)"
    )
    serve.add_argument("--dist-dir", type=Path, default=Path("web/dist"), help="the built web app")
    serve.set_defaults(run=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
