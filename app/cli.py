"""The `coplay` command line. Each subcommand lives in `app.commands.<name>` with
`add_parser(subparsers)` registering it and setting `func` to its runner."""
from __future__ import annotations

import sys

from app.web.asyncmode import patch_for_server

patch_for_server(sys.argv[1:])  # must run before anything else imports socket or threading

import argparse  # noqa: E402

from app.commands import check_env, export, loadtest, replay, serve, simulate  # noqa: E402

COMMANDS = (serve, check_env, simulate, replay, export, loadtest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coplay", description="Real-time multiplayer human-AI experiments.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
