"""`coplay agent URL --token T --policy FILE.py:Class`: an external AI agent process that plays an
experiment's remote AI seats (`AISeat(runs="remote", agent=NAME)`) with a policy (app/agent)."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

from app.agent.client import Agent, AgentError, MatchRecord

TOKEN_ENV = "COPLAY_AGENT_TOKEN"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "agent", help="an external AI agent process that joins matches as a seat",
        description="Connect to a coplay server with an agent token and play its remote AI seats with a "
                    "policy class, one match per connection at a time.")
    parser.add_argument("url", metavar="URL", help="the experiment's root, e.g. http://127.0.0.1:5000")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                        help=f"the agent's token (`coplay serve` says where it is); default: ${TOKEN_ENV}, which "
                             "keeps it out of the process list")
    parser.add_argument("--policy", required=True, metavar="SPEC",
                        help='the policy: "FILE.py:Class", "package.module:Class", "onnx:FILE.onnx", "random"')
    parser.add_argument("--matches", type=_positive, default=None, metavar="N",
                        help="stop after N matches in all (default: play until interrupted)")
    parser.add_argument("--parallel", type=_positive, default=1, metavar="K",
                        help="connections open at once, each playing one match at a time (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the policies (default 0)")
    parser.set_defaults(func=run_agent)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run_agent(args: argparse.Namespace) -> int:
    if not args.token:
        raise AgentError(f"no agent token: pass --token or set {TOKEN_ENV}", code="agent_token_refused")
    try:
        records = asyncio.run(serve_matches(args.url, args.token, args.policy, args.matches, args.parallel,
                                            args.seed))
    except KeyboardInterrupt:
        return 0
    completed = sum(1 for r in records if r.reason == "completed")
    print(f"coplay agent: {len(records)} matches played, {completed} completed", flush=True)
    return 0 if args.matches is None or completed >= args.matches else 1


async def serve_matches(url: str, token: str, policy: str, matches: int | None, parallel: int,
                        seed: int) -> list[MatchRecord]:
    """`parallel` connections playing until `matches` matches ended in all (None: until interrupted); a
    connection in a match when the count is reached plays it to its end."""
    records: list[MatchRecord] = []
    enough = asyncio.Event()

    async def one(index: int) -> None:
        async with Agent(url, token, policy, seed=seed + index) as agent:
            print(f"coplay agent: connection {index} ready", flush=True)
            while agent.closed_reason is None and not enough.is_set():
                playing = asyncio.ensure_future(agent.play(agent.matches_done + 1))
                stop = asyncio.ensure_future(enough.wait())
                await asyncio.wait({playing, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not playing.done() and agent.in_match:
                    await playing   # the count was reached elsewhere: finish this match first
                playing.cancel()
                stop.cancel()
                for record in agent.matches:
                    if record.reason is not None and record not in records:
                        records.append(record)
                        print(f"coplay agent: match {record.match} seat {record.seat} ended: {record.reason}",
                              flush=True)
                if matches is not None and len(records) >= matches:
                    enough.set()
            if agent.closed_reason not in (None, "closed"):
                print(f"coplay agent: connection {index}: {agent.closed_reason}", file=sys.stderr, flush=True)

    connections = parallel if matches is None else min(parallel, matches)
    await asyncio.gather(*(one(i) for i in range(connections)))
    return records
