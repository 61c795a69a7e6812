"""Drives one session against one env: inputs in, requests run as one batch, checksums back.

The browser worker, the server's AI bots, the load tester and the simulator all tick
a match this way.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from game.hashing import state_hash
from game.snapshot import with_snapshots
from netcode.executor import BatchResult, Executor
from netcode.requests import Request


class SessionRunner:
    """Owns the executor (and so the snapshots) for `session` and `env`.

    An env without get_state/set_state gets the generic deep snapshot (`game.snapshot`),
    whose states are plain values with checksums comparable between peers.
    `on_requests(requests)`, when given, sees every batch before it runs (tests use it
    to check invariants). `hasher(state)` gives the checksum of a saved state.
    """

    def __init__(
        self, session: Any, env: Any, capacity: int = 72,
        on_requests: Callable[[list[Request]], None] | None = None, hasher: Callable[[Any], str] = state_hash,
    ) -> None:
        self.session = session
        self.executor = Executor(with_snapshots(env), capacity, hasher)
        self.on_requests = on_requests

    def tick(self, inputs: Mapping[str, Any]) -> BatchResult:
        for player, action in inputs.items():
            self.session.add_local_input(player, action)
        requests = self.session.advance_frame()
        if self.on_requests is not None:
            self.on_requests(requests)
        result = self.executor.run(requests)
        self.session.report_checksums(result.checksums)
        return result
