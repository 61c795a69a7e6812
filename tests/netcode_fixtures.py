"""Helpers to wire sessions together in tests without a simulated network."""
from __future__ import annotations

from typing import Any

from netcode.config import SessionConfig
from netcode.p2p import P2PSession
from netcode.runner import SessionRunner
from netcode.sim import VirtualClock
from netcode.transport import MemoryHub
from tests.tally import Tally


def tally_config(players: int = 2, **settings: Any) -> SessionConfig:
    return SessionConfig.for_env(Tally({"players": players}), **settings)


class Pair:
    """Two peers, "a" owning p0 and "b" owning p1, on an instant in-memory network."""

    def __init__(self, **settings: Any) -> None:
        self.clock = VirtualClock()
        self.hub = MemoryHub()
        self.config = tally_config(2, **settings)
        self.a = P2PSession(self.config, ["p0"], {"b": ["p1"]}, self.hub.endpoint("a"), self.clock, keep_confirmed_log=True)
        self.b = P2PSession(self.config, ["p1"], {"a": ["p0"]}, self.hub.endpoint("b"), self.clock, keep_confirmed_log=True)
        self.envs = {"a": Tally(), "b": Tally()}
        for env in self.envs.values():
            env.reset(0)
        self.runners = {"a": SessionRunner(self.a, self.envs["a"]), "b": SessionRunner(self.b, self.envs["b"])}

    def tick(self, name: str, action: int) -> list[Any]:
        """Poll, then advance peer `name` one tick; returns the requests as JSON."""
        session = self.a if name == "a" else self.b
        session.poll()
        seen: list[Any] = []
        self.runners[name].on_requests = lambda requests: seen.extend(r.to_json() for r in requests)
        self.runners[name].tick({session.local_players[0]: action})
        return seen
