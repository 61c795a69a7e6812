"""`coplay relay --coordinator URL --redis URL`: a relay process for a scaled-out server (docs/scaling.md)."""
from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    relay = subparsers.add_parser(
        "relay", help="a relay process for a coordinator (scaling out)",
        description="Serve the match channel of the matches a coordinator (`coplay serve ... --redis URL`) places "
                    "here. Set COPLAY_RELAY_SECRET to the coordinator's.")
    relay.add_argument("--coordinator", required=True, metavar="URL", help="the coordinator's URL (its /health)")
    relay.add_argument("--redis", required=True, metavar="URL", help="the Redis the coordinator uses")
    relay.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    relay.add_argument("--port", type=int, default=0, help="port (default 0: any free one)")
    relay.add_argument("--data", default="data", help="data folder: recordings go in DATA/<experiment id>/")
    relay.add_argument("--public-url", default=None, metavar="URL",
                       help="the match channel's URL as participants reach it (behind a proxy: e.g. "
                            "wss://study.example.org/relay/1/match-ws); default ws://HOST:PORT/match-ws")
    relay.add_argument("--id", default=None, help="this relay's id in the registry (default HOSTNAME-HOST-PORT)")
    relay.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from app.relay.process import run_relay

    run_relay(args.coordinator, args.redis, args.host, args.port, args.data, args.public_url, args.id)
    return 0
