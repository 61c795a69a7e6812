"""Remote agents on the server side: their tokens, their connections, and the metadata they attach.

An experiment's remote AI seats (`AISeat(runs="remote", agent=NAME)`, scenes/ai_seat.py) are played by
agent processes (`coplay agent`, app/agent) that connect to Socket.IO with the token of agent NAME. The
web layer loads the tokens (app/web/agent_tokens.py); `AgentPool` checks them in constant time, hands out
connection ids ("agent:NAME:N") and keeps which connections are free to take a seat. `parse_agent_meta`
and `MetaLimit` check the per-step metadata an agent attaches to its actions (size-capped, rate-limited).
"""
from __future__ import annotations

import hmac
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from app.live.protocol import ProtocolError
from app.live.ratelimit import TokenBucket
from game.errors import CoplayError

AGENT_PREFIX = "agent:"
MIN_TOKEN_LENGTH = 16
MAX_META_BYTES = 1024          # one step's metadata, as compact JSON
MAX_META_ENTRIES = 32          # steps in one agent_meta event
META_PER_SECOND = 60.0         # steps with metadata a seat may send a second, sustained (one per frame at 60 fps)
META_BURST = 120.0


class AgentTokenError(CoplayError):
    """An agent connection was refused: no token, or not the token of any agent of this experiment."""

    code = "agent_token_refused"


@dataclass
class AgentPool:
    """The agent tokens of one experiment ({agent name: token}) and the connected agents."""

    tokens: Mapping[str, str] = field(default_factory=dict)
    free: dict[str, list[str]] = field(default_factory=dict)   # agent name -> connection ids not in a match
    _ids: Any = field(default_factory=itertools.count)

    def check(self, token: Any) -> str:
        """The name of the agent whose token `token` is; AgentTokenError otherwise. Every token is
        compared, in constant time, so the time taken says nothing about which one nearly matched."""
        if not self.tokens:
            raise AgentTokenError("this experiment has no remote AI seats, so it takes no agents")
        if not isinstance(token, str) or not token:
            raise AgentTokenError("no agent token: pass --token (coplay agent) or token= (app.agent.connect)")
        given = token.encode()
        found = None
        for name, expected in self.tokens.items():
            if hmac.compare_digest(given, expected.encode()):
                found = name
        if found is None:
            raise AgentTokenError("wrong agent token: use the one the server wrote for this experiment's agent "
                                  "(see `coplay serve` output)")
        return found

    def open(self, name: str) -> str:
        """A new connection of agent `name`: its id, free to take a seat."""
        conn = f"{AGENT_PREFIX}{name}:{next(self._ids)}"
        self.free.setdefault(name, []).append(conn)
        return conn

    def take(self, name: str) -> str | None:
        """A free connection of agent `name` (the longest free first), now busy; None when there is none."""
        free = self.free.get(name)
        return free.pop(0) if free else None

    def release(self, conn: str) -> None:
        """Connection `conn` is free again (its match ended)."""
        name = name_of(conn)
        if conn not in self.free.setdefault(name, []):
            self.free[name].append(conn)

    def close(self, conn: str) -> None:
        free = self.free.get(name_of(conn), [])
        if conn in free:
            free.remove(conn)

    def connected(self, name: str) -> int:
        return len(self.free.get(name, []))


def is_agent(participant: str | None) -> bool:
    return bool(participant) and participant.startswith(AGENT_PREFIX)   # type: ignore[union-attr]


def name_of(conn: str) -> str:
    return conn[len(AGENT_PREFIX):].rpartition(":")[0]


@dataclass(frozen=True)
class MetaEntry:
    episode: int
    frame: int
    meta: dict[str, Any]


def parse_agent_meta(payload: Any) -> tuple[str, list[MetaEntry]]:
    """An `agent_meta` event: {"match": id, "steps": [{"episode": E, "frame": F, "meta": {...}}, ...]}.
    Raises ProtocolError, saying what is wrong, for anything else, or for metadata over the caps."""
    if not isinstance(payload, dict) or not isinstance(payload.get("match"), str) \
            or not isinstance(payload.get("steps"), list):
        raise ProtocolError('agent_meta takes {"match": id, "steps": [{"episode", "frame", "meta"}, ...]}')
    steps = payload["steps"]
    if not 1 <= len(steps) <= MAX_META_ENTRIES:
        raise ProtocolError(f"agent_meta carries 1 to {MAX_META_ENTRIES} steps, got {len(steps)}: send more "
                            "often, or attach metadata to fewer steps")
    entries = []
    for step in steps:
        if not isinstance(step, dict) or set(step) != {"episode", "frame", "meta"}:
            raise ProtocolError('each agent_meta step is {"episode": int, "frame": int, "meta": {...}}')
        episode, frame, meta = step["episode"], step["frame"], step["meta"]
        if type(episode) is not int or type(frame) is not int or episode < 0 or frame < 0:
            raise ProtocolError("agent_meta episode and frame are non-negative ints")
        if not isinstance(meta, dict):
            raise ProtocolError(f"agent_meta meta is a JSON object, got {type(meta).__name__}")
        size = meta_size(meta)
        if size > MAX_META_BYTES:
            raise ProtocolError(f"metadata of frame {frame} is {size} bytes as JSON, over the limit of "
                                f"{MAX_META_BYTES}: keep it short (e.g. a latency and a brief message)")
        entries.append(MetaEntry(episode, frame, meta))
    return payload["match"], entries


def meta_size(meta: Any) -> int:
    """Bytes of `meta` (decoded from a JSON event, so JSON-able) as compact JSON."""
    return len(json.dumps(meta, separators=(",", ":")).encode())


class MetaLimit:
    """How many steps with metadata a seat may send: META_PER_SECOND sustained, META_BURST at once."""

    def __init__(self, now: float) -> None:
        self.bucket = TokenBucket(META_PER_SECOND, META_BURST, now)

    def allow(self, count: int, now: float) -> bool:
        """Spend `count` steps if there are that many tokens; else spend nothing."""
        if self.bucket.refill(now) < count:
            return False
        self.bucket.tokens -= count
        return True
