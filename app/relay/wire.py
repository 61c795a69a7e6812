"""A match's description as it travels from coordinator to relay (JSON), and seats' state back.

The coordinator builds `MatchSettings` and `Seat`s exactly as for an in-process match; the relay
rebuilds them here. Action spaces are not sent: the relay takes them from the game, as the
coordinator did. AI settings travel as the fields of `AISeat`.
"""
from __future__ import annotations

from typing import Any

from app.live.match_room import MatchSettings
from app.live.seat import Seat
from game.env import action_space_for
from scenes.ai_seat import AISeat, as_ai_seat


def policy_out(policy: Any) -> dict[str, Any] | None:
    if policy is None:
        return None
    ai = as_ai_seat(policy)
    return {"policy": ai.spec, "runs": ai.runs, "reaction_delay_frames": ai.reaction_delay_frames,
            "action_repeat": ai.action_repeat, "seed": ai.seed, "reveal": ai.reveal}


def policy_in(data: dict[str, Any] | None) -> AISeat | None:
    if data is None:
        return None
    return AISeat(data["policy"], runs=data["runs"], reaction_delay_frames=data["reaction_delay_frames"],
                  action_repeat=data["action_repeat"], seed=data["seed"], reveal=data["reveal"])


def settings_out(s: MatchSettings) -> dict[str, Any]:
    return {"game": s.game, "config": s.config, "players": list(s.players), "episodes": s.episodes, "fps": s.fps,
            "netcode": s.netcode, "keys": s.keys, "on_partner_drop": s.on_partner_drop,
            "fill_policy": policy_out(s.fill_policy), "grace_s": s.grace_s, "stand_in": policy_out(s.stand_in),
            "reveal_ai": s.reveal_ai}


def settings_in(data: dict[str, Any], game_class: type) -> MatchSettings:
    env = game_class(data["config"])
    players = tuple(data["players"])
    return MatchSettings(
        game=data["game"], config=data["config"], players=players,
        action_spaces={p: action_space_for(env, p) for p in players}, episodes=data["episodes"], fps=data["fps"],
        netcode=data["netcode"], keys=data["keys"], on_partner_drop=data["on_partner_drop"],
        fill_policy=policy_in(data["fill_policy"]), grace_s=data["grace_s"], stand_in=policy_in(data["stand_in"]),
        reveal_ai=data["reveal_ai"])


def seats_out(seats: dict[str, Seat]) -> dict[str, dict[str, Any]]:
    return {a: {"players": list(s.players), "kind": s.kind, "participant": s.participant,
                "policy": policy_out(s.policy)} for a, s in seats.items()}


def seats_in(data: dict[str, dict[str, Any]]) -> dict[str, Seat]:
    return {a: Seat(a, tuple(s["players"]), s["kind"], participant=s["participant"], policy=policy_in(s["policy"]))
            for a, s in data.items()}


def seat_states(seats: dict[str, Seat]) -> dict[str, dict[str, Any]]:
    """What the coordinator mirrors of each seat: who holds it and how."""
    return {a: {"kind": s.kind, "participant": s.participant, "gen": s.gen, "gone": s.gone,
                "absent": s.absent_since is not None} for a, s in seats.items()}
