"""AI seat settings (scenes/ai_seat.py): validation, timing (game/paced_policy.py), seeds and reveal,
in match rooms on a fake clock (tests/test_bots.py's Host) and as the scene describes them."""
from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from app.data.recording import RecordingWriter, make_header
from app.live.bots import BotPeer
from app.live.match_room import MatchRoom
from app.live.seat import AI, HUMAN, Seat
from game.env import default_action_for
from game.games.pong import Pong
from game.loader import GameLoader
from game.paced_policy import PacedPolicy, policy_seed, seat_seed
from game.policies import RandomPolicy
from scenes import AISeat, Experiment, ExperimentError, Match, OnnxPolicy
from scenes.ai_seat import as_ai_seat
from scenes.policies import Bot
from tests.test_bots import Host, make_room, play


class Counter:
    """A policy whose action is the number of times it was asked (so each decision is visible)."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def act(self, observation: Any) -> int:
        self.calls.append(observation)
        return len(self.calls)


def run(paced: PacedPolicy, frames: int) -> list[Any]:
    return [paced.act(f"obs{f}", f) for f in range(frames)]


# ----------------------------------------------------------------------------- timing


def test_no_delay_and_no_repeat_change_nothing() -> None:
    policy = Counter()
    assert run(PacedPolicy(policy), 5) == [1, 2, 3, 4, 5]
    assert policy.calls == ["obs0", "obs1", "obs2", "obs3", "obs4"]


def test_a_reaction_delay_plays_each_decision_that_many_frames_later() -> None:
    policy = Counter()
    assert run(PacedPolicy(policy, reaction_delay_frames=3, default_action=0), 8) == [0, 0, 0, 1, 2, 3, 4, 5]
    assert policy.calls[:2] == ["obs0", "obs1"]   # the decision played at frame 3 saw frame 0


def test_an_action_repeat_decides_every_k_frames_and_holds() -> None:
    policy = Counter()
    assert run(PacedPolicy(policy, action_repeat=3), 8) == [1, 1, 1, 2, 2, 2, 3, 3]
    assert policy.calls == ["obs0", "obs3", "obs6"]


def test_delay_and_repeat_together() -> None:
    policy = Counter()
    assert run(PacedPolicy(policy, reaction_delay_frames=2, action_repeat=3, default_action=-1), 9) == [
        -1, -1, 1, 1, 1, 2, 2, 2, 3]
    assert policy.calls == ["obs0", "obs3", "obs6"]


def test_a_frame_asked_again_after_a_stall_is_not_decided_twice() -> None:
    policy = Counter()
    paced = PacedPolicy(policy, reaction_delay_frames=1, default_action=0)
    assert [paced.act("a", 0), paced.act("a", 0), paced.act("b", 1), paced.act("b", 1), paced.act("c", 2)] == [
        0, 0, 1, 1, 2]
    assert policy.calls == ["a", "b", "c"]


@pytest.mark.parametrize("settings, message", [
    ({"reaction_delay_frames": -1}, "reaction_delay_frames must be an int >= 0, got -1"),
    ({"action_repeat": 0}, "action_repeat must be an int >= 1, got 0"),
    ({"action_repeat": 2.0}, "action_repeat must be an int >= 1, got 2.0"),
])
def test_the_wrapper_refuses_bad_timing(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PacedPolicy(Counter(), **settings)


# ----------------------------------------------------------------------------- seeds


def test_seeds_are_deterministic_and_the_first_episode_gets_the_seat_seed_itself() -> None:
    assert policy_seed(11, 0) == 11
    assert policy_seed(11, 1) == policy_seed(11, 1) != policy_seed(11, 2)
    assert policy_seed(11, 0, 1) != 11 and 0 <= policy_seed(11, 5) < 1 << 31
    assert seat_seed(7, "s1") == seat_seed(7, "s1") != seat_seed(7, "s0")
    assert AISeat("random", seed=3).seat_seed(7, "s1") == 3 and AISeat("random").seat_seed(7, "s1") == seat_seed(7, "s1")


class SeededInConstructor:
    def __init__(self, seed: int) -> None:
        self.seed = seed

    def act(self, observation: Any) -> int:
        return self.seed % 3


def test_a_policy_whose_constructor_takes_a_seed_gets_it() -> None:
    from game.spaces import Discrete

    bot = Bot(SeededInConstructor, player="p", action_space=Discrete(3), default_action=0, seed=8)
    assert bot.policy.seed == 8 and bot.act(None) == 2
    assert Bot(RandomPolicy, player="p", action_space=Discrete(3), default_action=0, seed=8).policy.space is not None


# ----------------------------------------------------------------------------- validation


def pong(**kwargs: Any) -> Match:
    return Match("pong", "game.games.pong:Pong", humans=["left"], **kwargs)


@pytest.mark.parametrize("match, message", [
    (pong(ai={"right": AISeat(OnnxPolicy("policy.onnx", preprocess=len), runs="browser")}),
     "ai['right']: runs='browser' runs an ONNX model with the default pre- and post-processing or "
     "observation_keys=[...] (the browser worker cannot call a preprocess/postprocess function"),
    (pong(ai={"right": AISeat("random", runs="remote")}), "ai['right']: a remote seat names its agent: agent="),
    (pong(ai={"right": AISeat("random", runs="gpu")}),
     "ai['right']: runs must be one of 'server', 'browser', 'remote', got 'gpu'"),
    (pong(ai={"right": AISeat("random", reaction_delay_frames=-2)}),
     "ai['right']: reaction_delay_frames must be an int from 0 to 3600 (frames), got -2"),
    (pong(ai={"right": AISeat("random", action_repeat=0)}),
     "ai['right']: action_repeat must be an int from 1 to 3600 (frames), got 0"),
    (pong(ai={"right": AISeat("random", action_repeat=True)}),
     "ai['right']: action_repeat must be an int from 1 to 3600 (frames), got True"),
    (pong(ai={"right": AISeat("random", seed="7")}), "ai['right']: seed must be None or an int from 0 to 2**63-1, got '7'"),
    (pong(ai={"right": AISeat("random", seed=-1)}), "ai['right']: seed must be None or an int from 0 to 2**63-1, got -1"),
    (pong(ai={"right": AISeat("random", reveal="yes")}),
     "ai['right']: reveal must be None (follow the scene's reveal_ai), True or False, got 'yes'"),
    (pong(ai={"right": AISeat("smart")}), "ai['right']: 'smart' is not a policy"),
    (pong(ai={"right": AISeat(AISeat("random"))}), "ai['right']: AISeat(policy=...) takes a policy spec, not another"),
    (pong(ai={"right": "random"}, fill_policy=AISeat("idle", runs="browser")),
     "fill_policy: runs='browser' is not supported for a seat whose participant dropped (the server plays it"),
    (pong(ai={"right": "random"}, fill_policy=AISeat(runs="remote", agent="llm")),
     "fill_policy: runs='remote' is not supported for a seat whose participant dropped (the server plays it"),
    (pong(ai={"right": "random"}, stand_in=AISeat(runs="remote", agent="llm", fallback="idle")),
     "stand_in: runs='remote' is not supported for a seat whose participant dropped"),
    (pong(ai={"right": "random"}, stand_in=AISeat("idle", action_repeat=-1)), "stand_in: action_repeat must be"),
])
def test_bad_ai_seat_settings_are_refused_with_what_to_fix(match: Match, message: str) -> None:
    with pytest.raises(ExperimentError) as caught:
        Experiment("x", scenes=[match]).validate()
    assert str(caught.value).startswith(f"scene 1 (match 'pong'): {message}"), str(caught.value)


def test_plain_specs_and_ai_seats_describe_the_same_seats() -> None:
    match = pong(ai={"right": "random"}, fill_policy=AISeat("idle", reaction_delay_frames=4), reveal_ai=True)
    match.check(GameLoader())
    ai, fill, stand_in = match.seat_settings()
    assert ai["right"].policy == "random" and ai["right"].reaction_delay_frames == 0 and ai["right"].runs == "server"
    assert ai["right"].factory is RandomPolicy   # resolved by check()
    assert fill.reaction_delay_frames == 4 and stand_in.policy == "idle"
    assert match.seat_settings()[0]["right"] is ai["right"]   # made once: resolved policies stay resolved
    assert as_ai_seat(fill) is fill


def test_the_scene_tells_the_browser_only_about_revealed_ai_players() -> None:
    hidden = pong(ai={"right": "random"})
    shown = pong(ai={"right": AISeat("random", reveal=True)})
    overridden = pong(ai={"right": AISeat("random", reveal=False)}, reveal_ai=True)
    follows = pong(ai={"right": "random"}, reveal_ai=True)
    assert [m.to_client()["ai"] for m in (hidden, shown, overridden, follows)] == [[], ["right"], [], ["right"]]
    assert "humans" not in hidden.to_client()


# ----------------------------------------------------------------------------- in a match room


class RecordingSeed:
    seeds: list[int] = []

    def __init__(self, seed: int) -> None:
        RecordingSeed.seeds.append(seed)

    def act(self, observation: Any) -> int:
        return 0


class SettingsHost(Host):
    """tests/test_bots.py's Host, with the server's make_policy: a seat's policy may be an AISeat."""

    def start_bot(self, room: MatchRoom, seat: Seat, preload: dict[str, list[Any]] | None) -> BotPeer:
        def make_policy(spec: Any, player: str, action_space: Any, env: Any, seed: int) -> Bot:
            return Bot(as_ai_seat(spec).resolve(), player=player, action_space=action_space,
                       default_action=default_action_for(env, player), seed=seed)

        bot = BotPeer(room, seat, make_policy, lambda: self.clock, preload)
        self.bots.append(bot)
        return bot


def settings_room(tmp_path: Path, seats: dict[str, Seat], **settings: Any) -> tuple[MatchRoom, Host]:
    """A Pong match room like tests/test_bots.py's `make_room`, whose bots take AISeat policies."""
    host = SettingsHost()
    base, _ = make_room(tmp_path, {})
    header = make_header(match="m2", experiment="x", scene="pong", created_at="now", game=base.settings.game,
                         game_source="", config=base.settings.config, players=["left", "right"], seats={},
                         netcode={}, fps=60)
    writer = RecordingWriter(str(tmp_path / f"m2-{uuid.uuid4().hex}.jsonl"), header)
    room = MatchRoom("m2", "pong", replace(base.settings, **settings), seats, host, writer, seed=9, game_class=Pong)
    host.room = room
    room.start_next_episode()
    return room, host


def test_a_bot_seeds_its_policy_from_the_seats_seed(tmp_path: Path) -> None:
    RecordingSeed.seeds = []
    seats = {"s0": Seat("s0", ("left",), HUMAN, participant="p"),
             "s1": Seat("s1", ("right",), AI, policy=AISeat(RecordingSeed, seed=42))}
    settings_room(tmp_path, seats)
    seats = {"s0": Seat("s0", ("left",), HUMAN, participant="p"),
             "s1": Seat("s1", ("right",), AI, policy=AISeat(RecordingSeed))}
    room, _ = settings_room(tmp_path, seats)
    assert RecordingSeed.seeds == [42, seat_seed(room.seed, "s1")]


@pytest.mark.parametrize("scene_reveal, seat_reveal, told", [
    (False, None, False), (False, True, True), (True, None, True), (True, False, False)])
def test_a_seats_reveal_overrides_the_scenes_for_the_replaced_notice_and_match_start(
        tmp_path: Path, scene_reveal: bool, seat_reveal: bool | None, told: bool) -> None:
    fill = AISeat("random", reveal=seat_reveal, reaction_delay_frames=2)
    seats = {"s0": Seat("s0", ("left",), HUMAN, participant="pa"),
             "s1": Seat("s1", ("right",), HUMAN, participant="pb")}
    room, host = settings_room(tmp_path, seats, reveal_ai=scene_reveal, fill_policy=fill)
    play(room, host, 0.5)
    room.seat_lost(seats["s1"], "silent")
    del host.humans["s1"]
    [notice] = [payload for addr, event, payload in host.sent if event == "seat_changed"]
    assert notice["status"] == "replaced" and (notice.get("by") == "ai") is told
    assert (room.start_payload(seats["s0"])["ai_peers"] == ["s1"]) is told
    [(kind, data)] = [(k, d) for k, d in host.events if k == "seat_changed"]
    assert data["by"] == "ai" and data["policy"] == "random"
    assert data["ai"] == {"policy": "random", "runs": "server", "seed": seat_seed(room.seed, "s1"),
                          "reaction_delay_frames": 2, "action_repeat": 1, "reveal": seat_reveal,
                          "model_sha256": None}
    play(room, host, 20.0)
    assert host.ended == ["completed"]
