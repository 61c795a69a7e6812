"""Admission control in a real Hub, Flow and SQLite store: the lag probe measures through the Hub's
injected `sleep` and `now`, which this test drives (a server whose loop wakes the probe late)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import pytest

from app.data.store import Store
from app.live.admission import BUSY_MESSAGE, AdmissionSettings, Figures
from app.live.flow import Flow
from app.live.hub import Hub, Services
from app.live.hub import log as hub_log
from app.live.metrics import Metrics
from game.loader import GameLoader
from scenes import End, Experiment, Match, WaitingRoom
from tests.test_match_room import packet

SETTINGS = AdmissionSettings(max_lag_s=0.1, close_after_s=1.0, reopen_after_s=5.0, window_s=0.5,
                             probe_interval_s=0.05, max_hold_s=60)


class Server:
    """What the Hub talks to: a clock the test drives, the events it emits, the tasks it spawns."""

    def __init__(self) -> None:
        self.clock = 1000.0
        self.loop_lag = 0.0     # how late a sleep wakes up: the event loop's lag
        self.emitted: list[tuple[str, dict[str, Any], str]] = []
        self.spawned: list[Any] = []

    def sleep(self, seconds: float) -> None:
        self.clock += seconds + self.loop_lag

    def emit(self, event: str, payload: dict[str, Any], to: str) -> None:
        self.emitted.append((event, payload, to))

    def to(self, sid: str, event: str) -> list[dict[str, Any]]:
        return [payload for name, payload, target in self.emitted if name == event and target == sid]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Hub, Server, Store]]:
    experiment = Experiment("adm", [
        Match(id="pong", game="game.games.pong:Pong", config={"max_frames": 600}, humans=("left", "right"),
              fps=60, waiting_room=WaitingRoom(timeout_s=3, on_timeout="ai"), on_partner_drop="ai",
              fill_policy="random"),
        End(id="end"),
    ], allow_anonymous=True)
    store = Store(str(tmp_path / "db.sqlite"))
    server = Server()
    resolve = GameLoader()
    metrics = Metrics(process=False)
    hub = Hub(Flow(experiment, store, metrics), str(tmp_path), Services(
        emit=server.emit, disconnect=lambda sid: None, spawn=lambda *task: server.spawned.append(task),
        sleep=server.sleep, now=lambda: server.clock, resolve_game=resolve, game_source=lambda c: "",
        make_policy=lambda *a: None, game_spec=resolve.absolute, metrics=metrics), admission=SETTINGS)
    yield hub, server, store
    store.close()


def arrive(hub: Hub, name: str) -> str:
    """A new participant connects as socket `name` and is ready in the match scene."""
    participant = hub.flow.enter({"PROLIFIC_PID": name}, "10.0.0.1").participant
    assert participant is not None
    hub.connect(participant, name)
    hub.handle("ready", name, {"index": 0})
    return participant


def run_probe(hub: Hub, server: Server, seconds: float, loop_lag: float) -> None:
    server.loop_lag = loop_lag
    until = server.clock + seconds
    while server.clock < until:
        hub.probe_lag()
        hub.tick()


def value(hub: Hub, name: str, **labels: str) -> float | None:
    return hub.metrics.value(name, **labels)


def test_a_lagging_server_holds_new_matches_and_starts_them_in_arrival_order_once_it_recovers(
        setup: tuple[Hub, Server, Store], caplog: pytest.LogCaptureFixture) -> None:
    hub, server, store = setup
    arrive(hub, "a1"), arrive(hub, "a2")
    [running] = hub.matches.values()
    assert value(hub, "coplay_admission_open") == 1
    with caplog.at_level(logging.WARNING, logger=hub_log.name):
        run_probe(hub, server, 3, loop_lag=0.2)
        assert not hub.admission.open
        b = [arrive(hub, sid) for sid in ("b1", "b2", "b3")]
        run_probe(hub, server, 10, loop_lag=0.07)   # better, but above the low-water mark: still closed
        assert list(hub.matches.values()) == [running]
        assert [p for room in hub.rooms.values() for p in room.waiting] == b
        last = server.to("b1", "waiting")[-1]
        assert last["busy"] and last["message"] == BUSY_MESSAGE and last["seconds_left"] == 3
        assert not server.to("b1", "match_start")
        assert value(hub, "coplay_admission_held_starts_total") == 1   # b1 + b2; b3 has no partner
        run_probe(hub, server, 7, loop_lag=0.002)
    assert hub.admission.open and value(hub, "coplay_admission_open") == 1
    [started] = [m for m in hub.matches.values() if m is not running]
    assert [s.participant for s in started.seats.values()] == b[:2]
    assert [p for room in hub.rooms.values() for p in room.waiting] == [b[2]]
    assert "busy" not in server.to("b3", "waiting")[-1]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("admission")]
    assert len(lines) == 2 and lines[0].startswith("admission closed: new matches wait (lag 200.")
    assert "1 matches running, 0 waiting" in lines[0]
    assert lines[1].startswith("admission reopened after ") and "1 matches running, 3 waiting" in lines[1]
    closed, opened = [e["data"] for e in store.events("admission")]
    assert closed["open"] is False and closed["loop_lag_ms"] == pytest.approx(200, abs=1)
    assert closed["max_lag_ms"] == 100 and closed["matches"] == 1 and closed["above_s"] >= 1
    assert opened["open"] is True and opened["lag_ms"] < 50 and 10 < opened["closed_s"] < 20
    assert value(hub, "coplay_admission_closes_total") == 1
    assert value(hub, "coplay_lag_seconds", part="event_loop") == pytest.approx(0.002, abs=1e-6)



def test_admission_closed_by_lagging_relays_says_so_without_a_duration_of_its_own(
        setup: tuple[Hub, Server, Store], caplog: pytest.LogCaptureFixture) -> None:
    hub, server, store = setup
    with caplog.at_level(logging.WARNING, logger=hub_log.name):
        hub.relays_admit(False, Figures(lag_s=0.3, loop_lag_s=0.28, relay_s=0.02))   # app/relay/room.py judge
    assert not hub.admission.open
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("admission")]
    assert line == ("admission closed: new matches wait (every relay lags, the least-lagged one 300.0 ms over "
                    "100.0 ms: event loop 280.0 ms, relay 20.00 ms; 0 matches running, 0 waiting)")
    [closed] = [e["data"] for e in store.events("admission")]
    assert closed["relays"] is True and closed["lag_ms"] == 300.0 and "above_s" not in closed

def test_running_matches_relay_rejoin_and_get_ai_takeovers_while_closed(setup: tuple[Hub, Server, Store]) -> None:
    hub, server, store = setup
    a1 = arrive(hub, "a1")
    arrive(hub, "a2")
    [room] = hub.matches.values()
    run_probe(hub, server, 2, loop_lag=0.3)
    assert not hub.admission.open
    hub.handle("packet", "a1", {"match": room.id, "episode": 0, "to": "s1", "data": packet({"left": [0, [1, 2]]})})
    [relayed] = server.to("a2", "packet")
    assert relayed["from"] == "s0" and not server.to("a1", "error")
    hub.disconnect("a1")
    hub.connect(a1, "a1-again")            # back (a reload): the seat is theirs again
    hub.handle("ready", "a1-again", {"index": 0})
    [resumed] = server.to("a1-again", "match_start")
    assert "resume" in resumed
    hub.handle("client_error", "a2", {"message": "boom", "traceback": ""})   # a2's page failed: an AI takes over
    assert room.seats["s1"].kind == "ai" and any(task[0] == hub._run_bot for task in server.spawned)
    assert not hub.admission.open and hub.matches == {room.id: room}


def test_a_slow_relay_closes_admission_too(setup: tuple[Hub, Server, Store]) -> None:
    """The relay's own time (metrics.clock around MatchRoom.relay) counts, not only the loop's lag."""
    hub, server, store = setup
    arrive(hub, "a1"), arrive(hub, "a2")
    [room] = hub.matches.values()
    ticks = iter(range(10**6))
    hub.metrics.clock = lambda: next(ticks) * 0.15   # every reading 150 ms after the one before
    for frame in range(40):
        hub.handle("packet", "a1", {"match": room.id, "episode": 0, "to": "s1",
                                    "data": packet({"left": [frame, [1]]})})
        hub.probe_lag()
    assert not hub.admission.open
    assert hub.admission.figures.relay_s >= 0.15 and hub.admission.figures.loop_lag_s == 0


def test_the_waiting_clock_pauses_while_closed_and_an_ai_fill_waits_for_reopening(
        setup: tuple[Hub, Server, Store]) -> None:
    hub, server, store = setup
    run_probe(hub, server, 2, loop_lag=0.3)
    lone = arrive(hub, "c1")
    run_probe(hub, server, 20, loop_lag=0.3)    # far past the room's 3 s timeout
    assert hub.matches == {} and server.to("c1", "waiting")[-1]["seconds_left"] == 3
    run_probe(hub, server, 6, loop_lag=0.0)     # reopened after 5 s calm; then the 3 s run
    assert hub.admission.open and hub.matches == {}
    run_probe(hub, server, 3.5, loop_lag=0.0)
    [match] = hub.matches.values()
    assert [s.kind for s in match.seats.values()] == ["human", "ai"] and match.seats["s0"].participant == lone
    assert value(hub, "coplay_admission_held_starts_total") == 0   # an AI fill that never came due


def test_a_participant_held_longer_than_the_limit_leaves_with_the_reason_server_busy(
        setup: tuple[Hub, Server, Store]) -> None:
    hub, server, store = setup
    run_probe(hub, server, 2, loop_lag=0.3)
    held = arrive(hub, "c1")
    run_probe(hub, server, 61, loop_lag=0.3)
    assert hub.flow.store.get_participant(held).status == "waiting_timeout"
    [event] = store.events("waiting_timeout")
    assert event["data"] == {"scene": "pong", "reason": "server_busy"}
    [visit] = store.scene_visits(held)[:1]
    assert visit["data"] == {"reason": "server_busy"}
    assert server.to("c1", "scene")[-1]["scene"]["id"] == "end:waiting_timeout"


def test_held_matches_start_in_a_slow_start_after_reopening(setup: tuple[Hub, Server, Store]) -> None:
    hub, server, store = setup
    run_probe(hub, server, 2, loop_lag=0.3)
    pairs = [(arrive(hub, f"p{i}a"), arrive(hub, f"p{i}b")) for i in range(5)]
    arrive(hub, "lone")
    assert value(hub, "coplay_admission_held_starts_total") == 5
    server.loop_lag = 0.0
    while not hub.admission.open:
        hub.probe_lag()
    started_by = []
    for _ in range(3):   # 1 match at once, 3 in all a second later, then the rest
        started_by.append([tuple(s.participant for s in m.seats.values()) for m in hub.matches.values()])
        if len(started_by) == 2:   # still waiting for their turn: told the server is busy; the lone one is not
            assert server.to("p4a", "waiting")[-1]["message"] == BUSY_MESSAGE
            assert "busy" not in server.to("lone", "waiting")[-1]
        run_probe(hub, server, 1.0, loop_lag=0.0)
    assert started_by == [pairs[:1], pairs[:3], pairs[:5]]
