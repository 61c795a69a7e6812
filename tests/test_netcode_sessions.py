"""Sessions beyond the basics: spectators, time sync, disconnects, config, the executor."""
from __future__ import annotations

import pytest

from netcode.config import SessionConfig
from netcode.errors import NetcodeError
from netcode.events import Disconnected, NetworkInterrupted, NetworkResumed, WaitRecommendation
from netcode.executor import Executor
from netcode.p2p import P2PSession
from netcode.requests import DISCONNECTED, AdvanceFrame, LoadState, SaveState
from netcode.runner import SessionRunner
from netcode.sim import PROFILES, SimNetwork, VirtualClock
from netcode.spectator import SpectatorSession
from netcode.synctest import SyncTestSession
from tests.netcode_fixtures import Pair, tally_config
from tests.tally import CorruptedTally, Tally


def reset(env: Tally) -> Tally:
    env.reset(0)
    return env


def test_spectator_follows_confirmed_inputs_and_agrees_on_checksums() -> None:
    clock = VirtualClock()
    network = SimNetwork(PROFILES["wifi"], seed=3, clock=clock)
    config = tally_config(2)
    a = P2PSession(config, ["p0"], {"b": ["p1"]}, network.endpoint("a"), clock, spectators=["s"])
    b = P2PSession(config, ["p1"], {"a": ["p0"]}, network.endpoint("b"), clock)
    s = SpectatorSession(config, "a", network.endpoint("s"), clock)
    runners = [SessionRunner(a, reset(Tally())), SessionRunner(b, reset(Tally()))]
    spectator_env = reset(Tally())
    spectator = SessionRunner(s, spectator_env)
    for tick in range(400):
        clock.advance_to(tick * config.frame_ms)
        for runner, player in zip(runners, ("p0", "p1")):
            runner.session.poll()
            runner.tick({player: (tick // 7) % 4})
        s.poll()
        spectator.tick({})
    assert s.current_frame > 350
    assert s.events() == [] and s.stats.desyncs == 0
    reference = reset(Tally())
    for frame in range(s.current_frame):
        reference.step({"p0": (frame // 7) % 4, "p1": (frame // 7) % 4})
    assert spectator_env.get_state() == reference.get_state()


def test_spectator_detects_a_desync_with_its_host() -> None:
    clock = VirtualClock()
    network = SimNetwork(PROFILES["lan"], seed=1, clock=clock)
    config = tally_config(2)
    a = P2PSession(config, ["p0", "p1"], {}, network.endpoint("a"), clock, spectators=["s"])
    s = SpectatorSession(config, "a", network.endpoint("s"), clock)
    host, spectator = SessionRunner(a, reset(Tally())), SessionRunner(s, reset(CorruptedTally(at_frame=50)))
    for tick in range(120):
        clock.advance_to(tick * config.frame_ms)
        a.poll()
        host.tick({"p0": 1, "p1": 2})
        s.poll()
        spectator.tick({})
    frames = [event.frame for event in s.events()]
    assert frames and frames[0] == 60


def test_a_peer_running_fast_is_told_to_wait() -> None:
    clock = VirtualClock()
    network = SimNetwork(PROFILES["wifi"], seed=5, clock=clock)
    config = tally_config(2)
    fast = P2PSession(config, ["p0"], {"slow": ["p1"]}, network.endpoint("fast"), clock)
    slow = P2PSession(config, ["p1"], {"fast": ["p0"]}, network.endpoint("slow"), clock)
    runners = {"fast": SessionRunner(fast, reset(Tally())), "slow": SessionRunner(slow, reset(Tally()))}
    waits: dict[str, int] = {"fast": 0, "slow": 0}
    for tick in range(1200):
        clock.advance_to(tick * config.frame_ms / 2)
        for name, player, every in (("fast", "p0", 1), ("slow", "p1", 2)):
            session = runners[name].session
            session.poll()
            if tick % every == 0 or (name == "slow" and tick < 200):
                runners[name].tick({player: 1})
            waits[name] += sum(e.skip_frames for e in session.events() if isinstance(e, WaitRecommendation))
    assert waits["fast"] > 0 and waits["slow"] == 0
    assert fast.frames_ahead() > 1


def test_silence_interrupts_then_disconnects_and_players_get_the_default_action() -> None:
    pair = Pair(disconnect_notify_ms=100, disconnect_timeout_ms=300)
    for tick in range(10):
        pair.clock.advance_to(tick * 16)
        pair.tick("a", 1)
        pair.tick("b", 3)
    pair.a.poll()
    pair.clock.advance_to(9 * 16 + 150)
    pair.a.poll()
    assert [type(e) for e in pair.a.events()] == [NetworkInterrupted]
    pair.tick("b", 3)
    pair.a.poll()
    assert pair.a.events() == [NetworkResumed("b")]
    pair.clock.advance_to(9 * 16 + 150 + 400)
    pair.a.poll()
    [event] = pair.a.events()
    assert event == Disconnected("b", ("p1",), 11)
    requests = []
    pair.runners["a"].on_requests = requests.extend
    pair.runners["a"].tick({"p0": 1})
    pair.runners["a"].tick({"p0": 1})
    advances = [(r.frame, r.inputs["p1"], r.status["p1"]) for r in requests if isinstance(r, AdvanceFrame)]
    assert advances == [(10, 3, "confirmed"), (11, 0, DISCONNECTED)]
    assert not pair.a.stalled


def test_synctest_catches_a_game_that_does_not_restore_exactly() -> None:
    class Leaky(Tally):
        def set_state(self, state: dict) -> None:
            super().set_state(state)
            self.mix += 1

    session = SyncTestSession(tally_config(2), check_distance=3)
    runner = SessionRunner(session, reset(Leaky()))
    for _ in range(10):
        runner.tick({"p0": 1, "p1": 2})
    events = session.events()
    assert events and events[0].frame == 1 and events[0].peer == "synctest"


def test_synctest_passes_a_deterministic_game() -> None:
    session = SyncTestSession(tally_config(3), check_distance=8)
    runner = SessionRunner(session, reset(Tally({"players": 3})))
    for frame in range(100):
        runner.tick({"p0": frame % 4, "p1": (frame // 3) % 4, "p2": 1})
    assert session.events() == [] and session.stats.rollbacks == 93


@pytest.mark.parametrize(("settings", "message"), [
    ({"max_prediction": -1}, "max_prediction must be an int in [0, 64], got -1"),
    ({"input_delay": 99}, "input_delay must be an int in [0, 30] (or a dict of them), got 99"),
    ({"fps": 0}, "fps must be an int in [1, 240], got 0"),
    ({"desync_interval": -5}, "desync_interval must be an int >= 0 (0 disables checks), got -5"),
    ({"disconnect_notify_ms": 5000}, "need 0 < disconnect_notify_ms <= disconnect_timeout_ms"),
    ({"default_actions": {"p0": 7, "p1": 0}}, "default action 7 of 'p0' is not in its action space"),
])
def test_config_validation_says_what_to_fix(settings: dict, message: str) -> None:
    base = dict(players=("p0", "p1"), action_spaces={"p0": Tally.action_space, "p1": Tally.action_space},
                default_actions={"p0": 0, "p1": 0})
    with pytest.raises(NetcodeError) as caught:
        SessionConfig(**{**base, **settings})
    assert caught.value.code == "invalid_config" and message in str(caught.value)


def test_session_refuses_players_that_do_not_add_up() -> None:
    with pytest.raises(NetcodeError, match="must cover the config's players"):
        P2PSession(tally_config(2), ["p0"], {"b": ["p0"]}, Pair().hub.endpoint("x"), VirtualClock())


def test_local_input_is_validated() -> None:
    pair = Pair()
    with pytest.raises(NetcodeError, match=r"action for 'p0' rejected: 4 is outside \[0, 3\]"):
        pair.a.add_local_input("p0", 4)
    with pytest.raises(NetcodeError, match="'p1' is not a local player"):
        pair.a.add_local_input("p1", 0)
    with pytest.raises(NetcodeError, match="missing_local_input"):
        pair.a.advance_frame()


def test_executor_refuses_to_load_a_frame_it_never_saved() -> None:
    executor = Executor(reset(Tally()), capacity=4)
    executor.run([SaveState(0), AdvanceFrame(0, {"p0": 1, "p1": 1}, {})])
    with pytest.raises(NetcodeError) as caught:
        executor.run([LoadState(1)])
    assert caught.value.code == "snapshot_missing"
    for frame in range(1, 6):
        executor.run([SaveState(frame), AdvanceFrame(frame, {"p0": 1, "p1": 1}, {})])
    with pytest.raises(NetcodeError, match="snapshot_missing"):
        executor.run([LoadState(0)])  # overwritten by frame 4 in a ring of 4
    with pytest.raises(NetcodeError, match="invalid_request"):
        executor.run([AdvanceFrame(2, {"p0": 1, "p1": 1}, {})])


class Unsnapshottable(Tally):
    """A Tally that cannot snapshot itself: the runner falls back to the generic snapshot."""

    get_state = None  # type: ignore[assignment]
    set_state = None  # type: ignore[assignment]


def test_generic_snapshot_runs_synctest_and_peer_checksums() -> None:
    session = SyncTestSession(tally_config(2), check_distance=4)
    runner = SessionRunner(session, reset(Unsnapshottable()))
    for frame in range(30):
        runner.tick({"p0": frame % 4, "p1": 1})
    assert session.events() == [] and session.stats.rollbacks == 27

    # Issue 13: a P2P session used to refuse such an env ("set desync_interval=0 or implement
    # get_state/set_state"); the generic snapshot's checksums are comparable between peers.
    pair = Pair(desync_interval=5)
    pair.runners = {name: SessionRunner(session, reset(Unsnapshottable()))
                    for name, session in (("a", pair.a), ("b", pair.b))}
    for frame in range(40):
        pair.tick("a", frame % 3)
        pair.tick("b", (frame // 4) % 3)
    for name in ("a", "b"):
        pair.tick(name, 0)
    sums_a, sums_b = dict(pair.a.confirmed_checksums()), dict(pair.b.confirmed_checksums())
    assert sums_a and sums_a == {f: c for f, c in sums_b.items() if f in sums_a}
    assert not [e for e in pair.a.events() + pair.b.events() if type(e).__name__ == "DesyncDetected"]


class ShortTally(Tally):
    """A Tally that ends when p0's counter reaches 5 (so the end depends on inputs)."""

    def step(self, actions: dict) -> dict:
        result = super().step(actions)
        result["terminated"] = self.pos[0] >= 5
        return result


def test_episode_ends_at_the_same_confirmed_frame_for_every_peer() -> None:
    from netcode.episode import EpisodeRunner

    pair = Pair()
    envs = {name: ShortTally() for name in ("a", "b")}
    runners = {name: EpisodeRunner(session, envs[name], envs[name].reset(0))
               for name, session in (("a", pair.a), ("b", pair.b))}
    for tick in range(40):
        pair.clock.advance_to(tick * 16.0)
        runners["a"].tick({"p0": 2 if tick >= 3 else 1})  # +1 per frame from frame 3: ends after frame 7
        if tick % 3 == 0:  # b lags, so a predicts and must hold at the end
            runners["b"].tick({"p1": 1})
    assert runners["a"].done
    assert pair.a.end_frame == 8 and pair.a.current_frame == 8
    for _ in range(30):
        runners["b"].tick({"p1": 1})
        runners["a"].tick({"p0": 0})
    assert runners["b"].done and pair.b.end_frame == 8
    assert runners["a"].final_checksum() == runners["b"].final_checksum()


def test_a_predicted_end_is_lifted_when_the_rollback_says_otherwise() -> None:
    from netcode.episode import EpisodeRunner

    class EndsWhenP1Idle(Tally):
        def step(self, actions: dict) -> dict:
            result = super().step(actions)
            result["terminated"] = self.frame == 3 and actions["p1"] == 0
            return result

    pair = Pair()
    env = EndsWhenP1Idle()
    runner = EpisodeRunner(pair.a, env, env.reset(0))
    for _ in range(4):
        runner.tick({"p0": 1})   # p1 predicted 0: the game "ends" after frame 2
    assert pair.a.end_frame == 3 and not runner.done
    for _ in range(4):
        pair.tick("b", 2)        # p1 really pressed 2: no end
    runner.tick({"p0": 1})       # the rollback re-runs frames 0-2 and finds no end
    assert pair.a.end_frame is None and pair.a.current_frame == 3
    runner.tick({"p0": 1})
    assert pair.a.current_frame == 4


def test_two_match_clients_play_an_episode_through_a_relay() -> None:
    from game.games.pong import Pong
    from netcode.client import MatchClient
    from netcode.sim import VirtualClock

    clock = VirtualClock()
    base = {"match": "m", "episode": 0, "seed": 5, "config": {"max_score": 1, "max_frames": 300}, "fps": 60,
            "netcode": {"input_delay": 1}}
    clients = {
        "s0": MatchClient({**base, "seat": "s0", "players": ["left"], "peers": {"s1": ["right"]}}, Pong, clock),
        "s1": MatchClient({**base, "seat": "s1", "players": ["right"], "peers": {"s0": ["left"]}}, Pong, clock),
    }
    for frame in range(400):
        clock.advance_to(frame * 1000 / 60)
        for seat, client in clients.items():
            client.tick({client.players[0]: (frame // 20) % 3})
            for packet in client.outbox():
                assert packet["match"] == "m" and packet["episode"] == 0
                clients[packet["to"]].receive(seat, packet["data"])
    done = [client.done for client in clients.values()]
    assert done[0] is not None and done[1] is not None
    predicted = [d.pop("predicted") for d in done]
    assert done[0] == done[1]
    assert [set(p) for p in predicted] == [{"right"}, {"left"}]   # each seat reports the players it does not play
    assert clients["s0"].stats()["done"] and clients["s0"].desyncs == []
    assert clients["s0"].render()[0]["type"] == "viewport"


def test_round_trip_is_measured_from_arrival_times_not_from_the_next_tick() -> None:
    """A relayed client stamps packets as they arrive: the wait for the next tick is not ping."""
    from game.games.pong import Pong
    from netcode.client import MatchClient

    now = [0.0]   # ms
    base = {"match": "m", "episode": 0, "seed": 5, "fps": 60}
    clients = {
        "A": MatchClient({**base, "seat": "A", "players": ["left"], "peers": {"B": ["right"]}}, Pong, lambda: now[0]),
        "B": MatchClient({**base, "seat": "B", "players": ["right"], "peers": {"A": ["left"]}}, Pong, lambda: now[0]),
    }
    for frame in range(180):
        tick = frame * 1000 / 60
        now[0] = tick
        for client in clients.values():
            client.tick({client.players[0]: 0})
        now[0] = tick + 2.0   # the relay takes 2 ms each way; the packets then wait ~15 ms for the next tick
        for seat, client in clients.items():
            for packet in client.outbox():
                clients[packet["to"]].receive(seat, packet["data"])
    ping = clients["A"].stats()["ping_ms"]
    assert ping is not None and 3.5 <= ping <= 4.5, ping   # 2 ms there and 2 back, not a frame or two
