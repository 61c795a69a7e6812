"""The `coplay` command line. Each subcommand lives in `app.commands.<name>` with
`add_parser(subparsers)` registering it and setting `func` to its runner."""
from __future__ import annotations

import argparse
import sys

from app.commands import check_env, simulate

COMMANDS = (check_env, simulate)


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
