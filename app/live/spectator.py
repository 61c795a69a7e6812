"""A live view of a running match for the researcher: the server's own re-simulation of its confirmed inputs.

The server keeps every match's canonical input log (app/live/input_log.py). A `LiveView` steps a
CPython copy of the game with those inputs (the one re-simulation, `game.lockstep`), one frame behind
the last frame every seat has confirmed, and hands out that frame's `render()` primitives, which the
dashboard's spectator page draws with the participants' renderer (static/renderer.js). It never
predicts, so what it shows is what happened. I/O-free; the caller holds the Hub's lock.
"""
from __future__ import annotations

from typing import Any

from app.live.match_room import MatchRoom
from game.lockstep import Lockstep

MAX_STEPS = 600   # frames re-simulated per call, so a late-joining spectator never holds the lock long


class LiveView:
    """One spectated match; `frame()` advances the view and returns what to draw."""

    def __init__(self, room: MatchRoom) -> None:
        self.room = room
        self._episode = -1
        self._inputs: list[list[Any]] = []
        self._sim: Lockstep | None = None

    def frame(self) -> dict[str, Any]:
        """{match, episode, frame, confirmed, fps, players, primitives, ended} for the frame now shown."""
        room = self.room
        players = room.settings.players
        relay = getattr(room, "relay_id", "")
        if relay:   # its inputs are on the relay, not here (app/relay/room.py)
            return {"match": room.id, "episode": room.episode, "ended": room.ended, "unsupported":
                    f"This match runs on relay {relay}: the live view shows only matches the coordinator runs "
                    "itself. Its frame and its seats' pings are on the dashboard."}
        if self._sim is None or room.episode != self._episode:
            self._episode, self._inputs = room.episode, []
            self._sim = Lockstep(room.game_class(room.settings.config), room.episode_seed, players, self._inputs,
                                 length=0)
        sim, log = self._sim, room.log
        while len(self._inputs) < log.complete - 1:   # one frame behind the last confirmed one
            frame = len(self._inputs)
            self._inputs.append([log.actions[p][frame] for p in players])
        sim.length = len(self._inputs)
        for _ in range(MAX_STEPS):
            if sim.done or (sim.result is not None and (sim.result["terminated"] or sim.result["truncated"])):
                break   # at the last input, or at the game's own end (the log may hold a few frames past it)
            sim.step()
        render = getattr(sim.env, "render", None)
        return {"match": room.id, "episode": room.episode, "frame": sim.frame, "confirmed": log.complete,
                "fps": room.settings.fps, "players": list(players),
                "primitives": render() if callable(render) else [], "ended": room.ended}
