"""The `coplay` command line. Each subcommand lives in `app.commands.<name>` with
`add_parser(subparsers)` registering it and setting `func` to its runner. A `CoplayError` that ends a
command is printed here, once, as "coplay COMMAND: message", and `coplay` exits with its `exit_code`."""
from __future__ import annotations

import sys

from app.web.asyncmode import patch_for_server

patch_for_server(sys.argv[1:])  # must run before anything else imports socket or threading

import argparse  # noqa: E402

from app.commands import agent, check_env, export, loadtest, packages, play, relay, replay, serve, simulate  # noqa: E402
from game.errors import CoplayError  # noqa: E402

COMMANDS = (serve, check_env, simulate, replay, export, loadtest, play, packages, agent, relay)
# How commands have always reported errors: check-env without "coplay ", export and simulate on stdout
# (the error is their whole report).
ERROR_PREFIX = {"check-env": "check-env"}
ERRORS_ON_STDOUT = ("export", "simulate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coplay", description="Real-time multiplayer human-AI experiments.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CoplayError as error:
        prefix = ERROR_PREFIX.get(args.command, f"coplay {args.command}")
        print(f"{prefix}: {error}", file=sys.stdout if args.command in ERRORS_ON_STDOUT else sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
