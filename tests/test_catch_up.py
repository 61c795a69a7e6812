"""A seat taken back mid-episode re-simulates the logged frames at once (MatchClient.catch_up) without
building a packet per frame: those packets would be dropped, and encoding every unacknowledged input
each frame was most of a rejoining page's re-simulation time. What it sends afterwards is unchanged."""
from __future__ import annotations

import random
from typing import Any

from game.games.pong import Pong
from netcode import codec
from netcode.client import MatchClient

FRAMES = 600


def resumed_client(frames: int) -> MatchClient:
    rng = random.Random(1)
    log = {p: [rng.randrange(3) for _ in range(frames)] for p in ("left", "right")}
    start: dict[str, Any] = {
        "match": "m", "episode": 0, "seat": "s0", "players": ["left"], "peers": {"s1": ["right"]}, "seed": 5,
        "config": {"max_score": 1000, "max_frames": 5000}, "fps": 60, "netcode": {}, "gen": 2,
        "resume": {"frame": frames, "inputs": log}}
    clock = iter(range(10**9))
    return MatchClient(start, Pong, lambda: float(next(clock)))


def test_catching_up_builds_a_packet_only_at_its_last_frame() -> None:
    client = resumed_client(FRAMES)
    assert client.catch_up({"left": 0}) == FRAMES and client.session.current_frame == FRAMES
    assert client.session.stats.packets_sent <= 2, client.session.stats.packets_sent
    client.tick({"left": 1})
    packets = [codec.decode(p["data"]) for p in client.outbox()]
    assert [p.frame for p in packets] == [FRAMES, FRAMES + 1]
    assert all(p.gen == 2 for p in packets)
    [(player, start, actions)] = packets[0].inputs
    assert player == "left" and start == 0 and len(actions) == min(FRAMES, codec.MAX_INPUTS_PER_PLAYER)
