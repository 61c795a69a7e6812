"""The dashboard's I/O-free parts: the snapshot's counts, the live view of a match, the relay's round trip per seat, and the
pause of new entries kept in the (real SQLite) store."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.data.store import Store
from app.live.dashboard import Dashboard, _match
from app.live.entry import EntryPause
from app.live.flow import Flow
from app.live.hub import Hub, Services
from app.live.seat import AGENT, AI
from app.live.metrics import Metrics
from app.live.protocol import PacketEvent
from app.live.spectator import LiveView
from game.games.pong import Pong
from game.lockstep import Lockstep
from scenes import AISeat, End, Experiment, Outcome, Page
from tests.test_match_room import make_room, packet


def rendered_after(seed: int, inputs: list[list[int]]) -> list[dict]:
    sim = Lockstep(Pong({}), seed, ("left", "right"), inputs)
    sim.run_to(len(inputs))
    return sim.env.render()


def test_the_live_view_shows_the_confirmed_game_one_frame_behind(tmp_path: Path) -> None:
    room, _ = make_room(tmp_path, episodes=2)
    s0, s1 = room.seats["s0"], room.seats["s1"]
    view = LiveView(room)
    assert view.frame()["frame"] == 0
    room.relay(s0, PacketEvent("m1", 0, "s1", packet({"left": [0, [1, 1, 2, 2, 1]]})))
    assert view.frame()["frame"] == 0   # nothing confirmed by every seat yet
    room.relay(s1, PacketEvent("m1", 0, "s0", packet({"right": [0, [2, 0, 0]]})))
    shown = view.frame()
    assert (shown["confirmed"], shown["frame"], shown["episode"]) == (3, 2, 0)
    assert shown["primitives"] == rendered_after(room.episode_seed, [[1, 2], [1, 0]])
    room.relay(s1, PacketEvent("m1", 0, "s0", packet({"right": [3, [1, 1]]})))
    shown = view.frame()
    assert shown["frame"] == 4
    assert shown["primitives"] == rendered_after(room.episode_seed, [[1, 2], [1, 0], [2, 0], [2, 1]])
    room.start_next_episode()
    assert (view.frame()["episode"], view.frame()["frame"]) == (1, 0)


def test_the_relay_times_its_round_trip_to_each_human_seat(tmp_path: Path) -> None:
    room, host = make_room(tmp_path)
    s0, s1 = room.seats["s0"], room.seats["s1"]
    host.clock = 1.0
    room.relay(s1, PacketEvent("m1", 0, "s0", packet({"right": [0, [0]]}, t=500.0)))
    host.clock = 1.050
    room.relay(s0, PacketEvent("m1", 0, "s1", packet({"left": [0, [0]]}, t=800.0, echo=500.0, hold=5.0)))
    assert s0.ping_ms == pytest.approx(45.0) and s1.ping_ms is None
    host.clock = 1.100   # s1 answers s0's packet after holding it 20 ms: 50 - 20
    room.relay(s1, PacketEvent("m1", 0, "s0", packet({"right": [1, [0]]}, t=600.0, echo=800.0, hold=20.0)))
    assert s1.ping_ms == pytest.approx(30.0)
    host.clock = 1.200   # an echo of a packet the server never relayed, or of another holder, is not timed
    room.relay(s0, PacketEvent("m1", 0, "s1", packet({"left": [1, [0]]}, t=900.0, echo=123.0, hold=0.0)))
    room.relay(s0, PacketEvent("m1", 0, "s1", packet({"left": [2, [0]]}, t=950.0, echo=600.0, hold=0.0,
                                                     peer_gen=1)))
    assert list(room.rtt_samples) == pytest.approx([45.0, 30.0])


def seat_row(room: Any, addr: str) -> dict[str, Any]:
    """The dashboard's row of the seat, checked to be JSON (it is pushed to the page as such)."""
    rows = json.loads(json.dumps(_match(room, 10.0)))["seats"]
    return next(row for row in rows if row["addr"] == addr)


def test_each_ai_seat_shows_where_it_runs(tmp_path: Path) -> None:
    room, _ = make_room(tmp_path)
    s0, s1 = room.seats["s0"], room.seats["s1"]
    s1.kind, s1.participant, s1.policy, s1.host = AI, None, AISeat("random", runs="browser"), "s0"
    row = seat_row(room, "s1")
    assert (row["runs"], row["host"], row["policy"], row["state"]) == ("browser", "s0", "random",
                                                                       "AI in the browser of pa (seat s0)")
    assert seat_row(room, "s0")["state"] == "playing" and seat_row(room, "s0")["runs"] is None
    s0.absent_since, s0.policy = 4.0, "idle"   # its participant dropped: the stand-in plays the hosted AI too
    assert seat_row(room, "s0")["state"] == "absent 6 s (stand-in on the server)"
    row = seat_row(room, "s1")
    assert (row["runs"], row["host"], row["state"]) == ("server", None,
                                                        "AI on the server (its host seat s0 is played there too)")
    s1.kind, s1.participant, s1.policy, s1.host = AGENT, "agent:llm:3", AISeat(runs="remote", agent="llm"), None
    s1.last_heard = 9.5
    row = seat_row(room, "s1")
    assert (row["runs"], row["agent"], row["policy"], row["participant"], row["state"], row["silent_s"]) == (
        "remote", "llm", "agent:llm", None, "remote agent llm", 0.5)
    s1.kind, s1.participant, s1.policy = AI, None, AISeat("idle", seed=3)   # its agent left: the fallback plays
    row = seat_row(room, "s1")
    assert (row["runs"], row["agent"], row["policy"], row["state"]) == ("server", None, "idle", "AI on the server")


def test_a_pause_of_new_entries_is_kept_in_the_store(tmp_path: Path) -> None:
    path = str(tmp_path / "coplay.sqlite")
    with Store(path) as store:
        pause = EntryPause(store)
        assert pause.state() == {"paused": False, "since": None, "by": None}
        assert pause.set(True, "dr-lee") is True
        assert pause.set(True, "someone else") is False   # already paused: nothing logged
    with Store(path) as store:
        again = EntryPause(store)
        assert again.paused is True and again.by == "dr-lee" and again.since is not None
        assert again.set(False, "dr-lee") is True
        assert [e["kind"] for e in store.events()] == ["entries_paused", "entries_resumed"]
    with Store(path) as store:
        assert EntryPause(store).paused is False


def test_a_snapshot_counts_participants_by_scene_and_outcome(tmp_path: Path) -> None:
    experiment = Experiment("e", [Page("p", "P", markdown="x"), Page("q", "Q", markdown="y"),
                                  End("end", completion_code="DONE")],
                            outcomes={"excluded": Outcome(completion_code="EXCL")})
    store = Store(str(tmp_path / "db.sqlite"))
    flow = Flow(experiment, store)
    hub = Hub(flow, str(tmp_path), Services(
        emit=lambda *a, **k: None, disconnect=lambda sid: None, spawn=lambda *a: None, sleep=lambda s: None,
        now=lambda: 0.0, resolve_game=lambda g: object, game_source=lambda c: "", make_policy=lambda *a: None,
        game_spec=lambda g: "", metrics=Metrics(process=False)))
    people = [flow.enter({"PROLIFIC_PID": f"p{i}"}).participant for i in range(6)]
    assert all(people)
    for person in people[:3]:
        flow.advance(person, 0, {})                  # on page q
    flow.advance(people[0], 1, {})                   # completed
    flow.set_outcome(people[1], "excluded")          # excluded (its page has a code)
    flow.set_outcome(people[5], "declined")          # declined (no code)
    snapshot = Dashboard(hub).snapshot()
    counts = snapshot["participants"]
    assert counts["total"] == 6
    assert counts["by_status"] == {"active": 3, "completed": 1, "declined": 1, "excluded": 1}
    assert counts["by_scene"] == {"p": {"active": 2}, "q": {"active": 1},
                                  "(ended)": {"completed": 1, "declined": 1, "excluded": 1}}
    assert counts["completion_codes"] == 2
    assert [p["id"] for p in counts["recent"]] == people[::-1]
    assert sum(n for _, n in snapshot["arrivals"]) == 6 and sum(n for _, n in snapshot["completions"]) == 1
    assert snapshot["entries"]["paused"] is False and snapshot["live"]["sockets"] == 0
    assert snapshot["health"]["admission"] == hub.admission.status() and snapshot["health"]["admission"]["open"]
    store.close()
