"""Remote agents in a real Hub, Flow, SQLite store and recording (the server adapter's part is in
tests/test_remote_agent.py): token checks, seating, metadata caps, the fallback when an agent drops."""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Iterator

import pytest

from app.data.recording import read_recording
from app.data.store import Store
from app.live.agents import (
    MAX_META_BYTES, MAX_META_ENTRIES, META_BURST, AgentPool, AgentTokenError, MetaLimit, name_of, parse_agent_meta,
)
from app.live.bots import BotPeer
from app.live.flow import Flow
from app.live.hub import Hub, Services
from app.live.seat import AGENT, AI
from app.live.metrics import Metrics
from app.live.protocol import ProtocolError
from app.web.admin import AdminTokenError
from app.web.agent_tokens import agent_names, agent_tokens, token_locations
from game.loader import GameLoader
from scenes import AISeat, End, Experiment, ExperimentError, Match, WaitingRoom
from tests.test_admission_hub import arrive

TOKEN = "t0ken-of-the-tracker-agent-0123456789"
OTHER = "t0ken-of-the-other-agent-9876543210xx"


def experiment(fallback: Any = "random", on_partner_drop: str = "ai", **timing: int) -> Experiment:
    return Experiment("agents", [
        Match(id="duel", game="game.games.pong:Pong", config={"max_frames": 600}, humans=("left",), fps=60,
              on_partner_drop=on_partner_drop, waiting_room=WaitingRoom(timeout_s=5, on_timeout="ai"),
              ai={"right": AISeat(runs="remote", agent="tracker", fallback=fallback, **timing)}),
        End(id="end"),
    ], allow_anonymous=True)


class Server:
    def __init__(self) -> None:
        self.clock = 1000.0
        self.emitted: list[tuple[str, dict[str, Any], str]] = []
        self.spawned: list[Any] = []
        self.disconnected: list[str] = []

    def emit(self, event: str, payload: dict[str, Any], to: str) -> None:
        self.emitted.append((event, payload, to))

    def to(self, sid: str, event: str) -> list[dict[str, Any]]:
        return [payload for name, payload, target in self.emitted if name == event and target == sid]


def make_hub(tmp_path: Path, exp: Experiment) -> tuple[Hub, Server, Store]:
    store = Store(str(tmp_path / "db.sqlite"))
    server = Server()
    resolve = GameLoader()
    exp.validate(resolve)
    metrics = Metrics(process=False)
    hub = Hub(Flow(exp, store, metrics), str(tmp_path), Services(
        emit=server.emit, disconnect=server.disconnected.append, spawn=lambda *task: server.spawned.append(task),
        sleep=lambda s: None, now=lambda: server.clock, resolve_game=resolve, game_source=lambda c: "",
        make_policy=lambda *a: None, game_spec=resolve.absolute, metrics=metrics),
        agents=AgentPool({"tracker": TOKEN, "other": OTHER}))
    return hub, server, store


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Hub, Server, Store]]:
    hub, server, store = make_hub(tmp_path, experiment())
    yield hub, server, store
    store.close()


def events(store: Store) -> int:
    return len(list(store.events()))


# ---------------------------------------------------------------- tokens


def test_the_pool_names_the_agent_whose_token_it_is_and_refuses_the_rest() -> None:
    pool = AgentPool({"tracker": TOKEN, "other": OTHER})
    assert pool.check(TOKEN) == "tracker" and pool.check(OTHER) == "other"
    for wrong, says in ((TOKEN[:-1], "wrong agent token"), (TOKEN + "x", "wrong agent token"),
                        ("", "no agent token"), (None, "no agent token"), (["list"], "no agent token")):
        with pytest.raises(AgentTokenError, match=says) as refused:
            pool.check(wrong)
        assert refused.value.code == "agent_token_refused"
    with pytest.raises(AgentTokenError, match="no remote AI seats"):
        AgentPool({}).check(TOKEN)


def test_connections_are_handed_out_once_and_come_back_when_released() -> None:
    pool = AgentPool({"tracker": TOKEN})
    first, second = pool.open("tracker"), pool.open("tracker")
    assert name_of(first) == "tracker" and first != second
    assert pool.take("tracker") == first and pool.take("tracker") == second and pool.take("tracker") is None
    pool.release(first)
    pool.release(first)
    assert pool.connected("tracker") == 1
    pool.close(first)
    assert pool.take("tracker") is None


def test_wrong_and_missing_tokens_change_nothing_in_the_hub(setup: tuple[Hub, Server, Store]) -> None:
    hub, server, store = setup
    before = events(store)
    for wrong in (TOKEN[:-1], "", None):
        with pytest.raises(AgentTokenError):
            hub.agent_connect("sid-x", wrong)
    assert hub.participant_of == {} and hub.sid_of == {} and hub.agents.free == {}
    assert events(store) == before


def test_the_waiting_room_waits_for_a_free_agent_until_its_timeout(setup: tuple[Hub, Server, Store]) -> None:
    hub, server, store = setup
    arrive(hub, "p1")
    server.clock += 4
    hub.tick()
    assert not hub.matches   # no agent yet: waits, as for a partner
    hub.agent_connect("agent-sid", TOKEN)
    hub.tick()
    (room,) = hub.matches.values()
    assert room.seats["s1"].kind == AGENT
    arrive(hub, "p2")
    arrive(hub, "p3")
    server.clock += 6   # their wait times out with the one agent busy: each starts with the fallback
    hub.tick()
    hub.tick()   # one timed-out group starts a poll
    assert len(hub.matches) == 3
    for other in hub.matches.values():
        if other is not room:
            assert other.seats["s1"].kind == AI and as_spec(other.seats["s1"].policy) == "random"
            assert len(other.seats) == 2


def as_spec(policy: Any) -> str:
    return policy.spec if isinstance(policy, AISeat) else policy


def test_generated_tokens_are_private_files_and_env_tokens_must_be_long(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    exp = experiment()
    assert agent_names(exp) == ["tracker"]
    monkeypatch.delenv("COPLAY_AGENT_TOKEN_TRACKER", raising=False)
    tokens = agent_tokens(exp, str(tmp_path))
    path = tmp_path / "agent_token_tracker"
    assert tokens == {"tracker": path.read_text().strip()} and len(tokens["tracker"]) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert agent_tokens(exp, str(tmp_path)) == tokens   # kept, not regenerated
    assert all(tokens["tracker"] not in line for line in token_locations(exp, str(tmp_path)))
    monkeypatch.setenv("COPLAY_AGENT_TOKEN_TRACKER", "short")
    with pytest.raises(AdminTokenError, match="COPLAY_AGENT_TOKEN_TRACKER must be at least 16"):
        agent_tokens(exp, str(tmp_path))
    monkeypatch.setenv("COPLAY_AGENT_TOKEN_TRACKER", OTHER)
    assert agent_tokens(exp, str(tmp_path)) == {"tracker": OTHER}


# ---------------------------------------------------------------- seats


@pytest.mark.parametrize("seat, message", [
    (AISeat(runs="remote"), "a remote seat names its agent"),
    (AISeat(runs="remote", agent="Bad Name"), "a remote seat names its agent"),
    (AISeat(runs="remote", agent="x", fallback=AISeat(runs="remote", agent="y")), "fallback runs on the server"),
    (AISeat(runs="remote", agent="x", fallback="not a policy"), "fallback: 'not a policy' is not a policy"),
    (AISeat("random", agent="x"), "agent= and fallback= are settings of remote seats"),
])
def test_bad_remote_seats_are_refused(seat: AISeat, message: str) -> None:
    match = Match(id="m", game="game.games.pong:Pong", humans=("left",), ai={"right": seat})
    with pytest.raises(ExperimentError, match=message):
        Experiment("x", [match, End(id="end")]).validate(GameLoader())


def test_an_agent_takes_the_remote_seat_and_its_fallback_takes_over_when_it_drops(
        setup: tuple[Hub, Server, Store]) -> None:
    hub, server, store = setup
    hub.agent_connect("agent-sid", TOKEN)
    conn = hub.participant_of["agent-sid"]
    arrive(hub, "p1")
    (room,) = hub.matches.values()
    seat = room.seats["s1"]
    assert seat.kind == AGENT and seat.participant == conn and hub.agents.connected("tracker") == 0
    (start,) = server.to("agent-sid", "match_start")
    assert start["seat"] == "s1" and start["players"] == ["right"]
    assert store.match_participants() and all(mp["seat"] == "s0" for mp in store.match_participants())
    header = read_recording(room.recording.path).header
    assert header["seats"]["s1"]["kind"] == "agent" and header["seats"]["s1"]["participant"] is None
    assert header["seats"]["s1"]["ai"]["runs"] == "remote" and header["seats"]["s1"]["ai"]["agent"] == "tracker"

    hub.handle("advance", "agent-sid", {"index": 0, "data": {}})
    assert server.to("agent-sid", "error")[-1]["reason"].startswith("an agent connection sends only")

    hub.disconnect("agent-sid")
    assert seat.kind == AI and as_spec(seat.policy) == "random" and isinstance(seat.bot, BotPeer)
    changes = [e for e in read_recording(room.recording.path).events if e["kind"] == "seat_changed"]
    assert [(c["data"]["by"], c["data"]["why"], c["data"]["policy"]) for c in changes] == [
        ("ai", "disconnected", "random")]
    assert conn not in hub.seat_of and not room.ended


def test_the_agent_is_told_the_seats_reaction_delay_and_action_repeat(tmp_path: Path) -> None:
    hub, server, store = make_hub(tmp_path, experiment(reaction_delay_frames=5, action_repeat=3))
    hub.agent_connect("agent-sid", TOKEN)
    arrive(hub, "p1")
    (start,) = server.to("agent-sid", "match_start")
    assert start["pacing"] == {"reaction_delay_frames": 5, "action_repeat": 3}   # app.agent.client applies it
    human = server.to("p1", "match_start")
    assert human and all("pacing" not in payload for payload in human)
    store.close()


def test_with_no_fallback_and_on_partner_drop_end_the_match_ends(tmp_path: Path) -> None:
    hub, server, store = make_hub(tmp_path, experiment(fallback=None, on_partner_drop="end"))
    hub.agent_connect("agent-sid", TOKEN)
    arrive(hub, "p1")
    (room,) = hub.matches.values()
    hub.disconnect("agent-sid")
    assert room.ended and room.end_reason == "partner_dropped"
    assert server.to("p1", "match_end")[-1]["reason"] == "partner_dropped"
    store.close()


def test_a_finished_match_frees_the_agent_for_the_next(setup: tuple[Hub, Server, Store]) -> None:
    hub, server, store = setup
    hub.agent_connect("agent-sid", TOKEN)
    arrive(hub, "p1")
    (room,) = hub.matches.values()
    room.end("completed")
    assert server.to("agent-sid", "match_end")[-1]["reason"] == "completed"
    assert hub.agents.connected("tracker") == 1 and hub.participant_of["agent-sid"] not in hub.seat_of


# ---------------------------------------------------------------- metadata


def meta_event(match: str, *steps: tuple[int, int, dict[str, Any]]) -> dict[str, Any]:
    return {"match": match, "steps": [{"episode": e, "frame": f, "meta": m} for e, f, m in steps]}


def test_metadata_is_checked_and_capped() -> None:
    match, entries = parse_agent_meta(meta_event("m1", (0, 5, {"latency_ms": 12, "message": "hi"})))
    assert match == "m1" and [(e.episode, e.frame, e.meta) for e in entries] == [(0, 5, {"latency_ms": 12,
                                                                                        "message": "hi"})]
    big = {"message": "x" * MAX_META_BYTES}
    for bad, says in ((meta_event("m1", (0, 5, big)), f"over the limit of {MAX_META_BYTES}"),
                      ({"match": "m1", "steps": []}, "1 to 32 steps"),
                      (meta_event("m1", *[(0, f, {}) for f in range(MAX_META_ENTRIES + 1)]), "1 to 32 steps"),
                      (meta_event("m1", (0, -1, {})), "non-negative"),
                      (meta_event("m1", (0, 1, ["not", "a", "dict"])), "a JSON object"),   # type: ignore[arg-type]
                      ({"match": 3, "steps": []}, "agent_meta takes"), ("junk", "agent_meta takes")):
        with pytest.raises(ProtocolError, match=says):
            parse_agent_meta(bad)
    limit = MetaLimit(0.0)
    assert limit.allow(int(META_BURST), 0.0) and not limit.allow(1, 0.0)
    assert not limit.allow(61, 1.0) and limit.allow(60, 1.0)


def test_metadata_is_recorded_and_oversize_or_too_much_is_refused_changing_nothing(
        setup: tuple[Hub, Server, Store]) -> None:
    hub, server, store = setup
    hub.agent_connect("agent-sid", TOKEN)
    arrive(hub, "p1")
    (room,) = hub.matches.values()

    def metas() -> list[dict[str, Any]]:
        return [e for e in read_recording(room.recording.path).events if e["kind"] == "agent_meta"]

    hub.handle("agent_meta", "agent-sid", meta_event(room.id, (0, 0, {"message": "x" * (MAX_META_BYTES + 1)})))
    assert "over the limit" in server.to("agent-sid", "error")[-1]["reason"] and metas() == []
    hub.handle("agent_meta", "agent-sid", meta_event(room.id, (0, 0, {"latency_ms": 3})))
    assert [(m["frame"], m["data"]) for m in metas()] == [(0, {"seat": "s1", "players": ["right"],
                                                               "meta": {"latency_ms": 3}})]
    hub.handle("agent_meta", "agent-sid", meta_event(room.id, (0, 100_000, {})))
    assert "past the seat's inputs" in server.to("agent-sid", "error")[-1]["reason"] and len(metas()) == 1
    hub.handle("agent_meta", "p1", meta_event(room.id, (0, 0, {})))
    assert "remote agents only" in server.to("p1", "error")[-1]["reason"]
    for _ in range(int(META_BURST) // MAX_META_ENTRIES):
        hub.handle("agent_meta", "agent-sid", meta_event(room.id, *[(0, 1, {})] * MAX_META_ENTRIES))
    recorded = len(metas())
    hub.handle("agent_meta", "agent-sid", meta_event(room.id, *[(0, 1, {})] * MAX_META_ENTRIES))
    assert "too much agent metadata" in server.to("agent-sid", "error")[-1]["reason"] and len(metas()) == recorded


def test_a_silent_agent_loses_its_seat_to_the_fallback_and_is_let_go(setup: tuple[Hub, Server, Store]) -> None:
    hub, server, store = setup
    hub.agent_connect("agent-sid", TOKEN)
    conn = hub.participant_of["agent-sid"]
    arrive(hub, "p1")
    (room,) = hub.matches.values()
    server.clock += 5
    hub.tick()
    assert room.seats["s1"].kind == AGENT   # not silent for long enough yet (it never sent a packet)
    server.clock += 0.2
    for _ in range(30):   # 6 s more, ticking as the server does
        server.clock += 0.2
        hub.tick()
    seat = room.seats["s1"]
    assert seat.kind == AI and as_spec(seat.policy) == "random" and isinstance(seat.bot, BotPeer)
    assert server.to("agent-sid", "match_end")[-1]["reason"] == "seat_taken_over"
    assert server.disconnected == ["agent-sid"] and conn not in hub.seat_of
    hub.disconnect("agent-sid")   # the socket closes: nothing more to do
    assert hub.agents.connected("tracker") == 0 and "agent-sid" not in hub.participant_of
