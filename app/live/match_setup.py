"""What a starting match is made of, worked out from its scene: its seats and its settings.

Pure functions of the scene and the game (no sockets, no database): the Hub calls them when a
waiting room starts a match, then seats agents, records and places the match.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from app.live.match_room import MatchSettings
from app.live.seat import AI, HUMAN, Seat
from game.env import action_space_for
from scenes.match import Match


def seats_for(scene: Match, participants: Sequence[str]) -> dict[str, Seat]:
    """The seats of a starting match, addressed s0, s1, ...: the scene's human seats, held by `participants`
    in order (any left over are played by its fill policy), then its AI seats."""
    ai_seats, fill, _ = scene.seat_settings()
    seats: dict[str, Seat] = {}
    humans = list(participants)
    for player in scene.humans:
        addr = f"s{len(seats)}"
        if humans:
            seats[addr] = Seat(addr, (player,), HUMAN, participant=humans.pop(0))
        else:
            seats[addr] = Seat(addr, (player,), AI, policy=fill)
    for player, ai in ai_seats.items():
        addr = f"s{len(seats)}"
        seats[addr] = Seat(addr, (player,), AI, policy=ai, host=browser_host(seats, ai))
    return seats


def browser_host(seats: dict[str, Seat], ai: Any) -> str | None:
    """The seat whose participant's worker plays an AI seat with runs="browser": the first human seat
    (None, so the server plays it, when no participant is in the match)."""
    if ai.runs != "browser":
        return None
    return next((a for a, s in seats.items() if s.kind == HUMAN and s.participant is not None), None)


def match_settings(scene: Match, env: Any, game: str, peer_timeout_ms: float) -> MatchSettings:
    """The room's settings for a match of `scene` on game instance `env` (`game`: its loadable spec); peers
    time out a silent partner only after `peer_timeout_ms`."""
    _, fill, stand_in = scene.seat_settings()
    players = tuple(env.players)
    return MatchSettings(
        game=game, config=dict(scene.config or {}), players=players,
        action_spaces={p: action_space_for(env, p) for p in players}, episodes=scene.episodes, fps=scene.fps,
        netcode=relayed_netcode(scene.netcode, peer_timeout_ms), keys=dict(scene.keys or {}),
        on_partner_drop=scene.on_partner_drop,
        fill_policy=fill, grace_s=scene.grace_s, stand_in=stand_in,
        reveal_ai=scene.reveal_ai,
    )


def relayed_netcode(settings: Mapping[str, Any] | None, peer_timeout_ms: float) -> dict[str, Any]:
    """The scene's netcode settings, with peer timeouts raised to at least `peer_timeout_ms`."""
    netcode = dict(settings or {})
    netcode["disconnect_timeout_ms"] = max(netcode.get("disconnect_timeout_ms", 0), peer_timeout_ms)
    netcode.setdefault("disconnect_notify_ms", 1000)
    return netcode
