"""Drives one session against one env: inputs in, requests run as one batch, checksums back.

The browser worker, the server's AI bots, the load tester and the simulator all tick
a match this way.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from game.snapshot import PickleSnapshots, with_snapshots
from netcode.errors import NetcodeError
from netcode.executor import BatchResult, Executor
from netcode.requests import Request
from netcode.synctest import SyncTestSession


class SessionRunner:
    """Owns the executor (and so the snapshots) for `session` and `env`.

    An env without get_state/set_state is snapshotted by pickling (`game.snapshot`);
    its checksums are not comparable between peers, so a P2P or spectator session
    must then run with desync_interval=0. `on_requests(requests)`, when given, sees
    every batch before it runs (tests use it to check invariants).
    """

    def __init__(
        self, session: Any, env: Any, capacity: int = 72,
        on_requests: Callable[[list[Request]], None] | None = None,
    ) -> None:
        env = with_snapshots(env)
        compares_with_peers = not isinstance(session, SyncTestSession)
        if isinstance(env, PickleSnapshots) and compares_with_peers and session.config.desync_interval:
            raise NetcodeError(
                "invalid_config",
                f"{type(env.unwrapped).__name__} has no get_state/set_state, so its snapshots are pickled and their "
                "checksums differ between runtimes; set desync_interval=0 or implement get_state/set_state",
            )
        self.session = session
        self.executor = Executor(env, capacity)
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
