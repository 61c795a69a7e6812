"""The server settles what seats report by re-simulating the confirmed inputs itself: a seat that
sends fake checksums or a forged `episode_done` is named, the honest seat is not blamed, and replay
verifies against the server's checksums. A single-player match is recorded like any other.
Real server (subprocess), real Socket.IO headless participants, real SQLite."""
from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

from app.analysis.replay import replay
from app.cli import main
from app.data.recording import Recording, read_recording
from app.data.store import DATABASE_NAME, Store
from app.participant.headless import HeadlessParticipant, _Episode
from game.games.pong import Pong
from game.lockstep import Lockstep
from netcode import codec
from netcode.client import MatchClient
from tests.server_fixtures import Server, pid, run_together
from tests.test_server_e2e import SHORT_EXPERIMENT   # consent, page, survey, 2 Pong episodes of 90 frames, end

FAKE = "0" * 16
FORGED_AT = 30   # the frame a liar claims episode 0 ended at (the game ends at 90)

SOLO_GAME = '''
from game.games.pong import Pong


class SoloPong(Pong):
    """Pong for one player: the right paddle never moves."""

    players = ("left",)
'''

SOLO_EXPERIMENT = '''
from scenes import End, Experiment, Match

EXPERIMENT = Experiment(id="solo", scenes=[
    Match(id="solo", game="solo_game.py:SoloPong", config={"max_score": 1000, "max_frames": 400},
          humans=("left",), episodes=2, fps=60),
    End(id="end", html="<p>Thanks</p>", completion_code="SOLO"),
])
'''


class Liar(HeadlessParticipant):
    """Plays honestly but reports a fake checksum for every check frame and, in episode 0, a forged
    `episode_done` at frame FORGED_AT; `then_honest_end` also sends the real one when it comes."""

    def __init__(self, *args: Any, then_honest_end: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.then_honest_end = then_honest_end
        self.forged = False

    def _send_packet(self, packet: dict[str, Any]) -> None:
        body = codec.decode(packet["data"])
        fields = {"gen": body.gen, "frame": body.frame, "t": body.t, "gone": dict(body.gone),
                  "inputs": {p: (start, actions) for p, start, actions in body.inputs},
                  "checks": [(frame, FAKE) for frame, _ in body.checks]}
        forged = (codec.confirmed_packet(**fields) if body.kind == "confirmed" else
                  codec.input_packet(**fields, peer_gen=body.peer_gen, adv=body.adv, echo=body.echo, hold=body.hold,
                                     ack=dict(body.ack)))
        super()._send_packet({**packet, "data": forged})

    def _service_episode(self, ep: _Episode, now: float) -> None:
        client = ep.client
        if client.episode == 0 and not self.forged and client.session.current_frame >= FORGED_AT:
            self.forged = True
            self._emit("episode_done", {"match": client.match, "episode": 0, "frame": FORGED_AT, "checksum": FAKE})
            ep.reported = not self.then_honest_end
        super()._service_episode(ep, now)


class CorruptPong(Pong):
    """A runtime that diverges: from frame 40 on its left paddle creeps up a sub-pixel a frame."""

    def step(self, actions: dict) -> dict:
        result = super().step(actions)
        if self.frame >= 40:
            self.left_y = max(0, self.left_y - 1)
        return result


class Corrupted(HeadlessParticipant):
    """An honest reporter whose game state really diverges (a broken runtime)."""

    def _start_episode(self, payload: dict[str, Any], now: float) -> _Episode:
        episode = super()._start_episode(payload, now)
        client = MatchClient(payload, CorruptPong, clock=lambda: time.monotonic() * 1000.0)
        self._router.attach(client)
        return _Episode(client, episode.policy, started=now, schedule=episode.schedule)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("arbitration")
    (folder / "experiment.py").write_text(SHORT_EXPERIMENT)
    running = Server(["serve", str(folder / "experiment.py")], folder / "data")
    yield running
    running.stop()


def recording_of(server: Server, experiment: str, match: str) -> Recording:
    return read_recording(str(server.data_dir / experiment / "recordings" / f"{match}.jsonl"))


def events(recording: Recording, kind: str) -> list[dict[str, Any]]:
    return [e for e in recording.events if e["kind"] == kind]


def true_end(recording: Recording, episode: int) -> int:
    """The frame where the recorded inputs end the episode, re-simulated here."""
    data = recording.episodes[episode]
    sim = Lockstep(Pong(recording.header["config"]), data["seed"], recording.players, data["inputs"])
    for _ in sim.frames():
        if sim.result is not None and (sim.result["terminated"] or sim.result["truncated"]):
            return sim.frame
    raise AssertionError(f"episode {episode} never ended in {sim.frame} recorded frames")


def play_pair(server: Server, other: HeadlessParticipant) -> tuple[str, str, str, Recording]:
    """An honest participant and `other` play one match; (match, honest seat, other's seat, recording)."""
    honest = HeadlessParticipant(server.url, params={"PROLIFIC_PID": pid()}, seed=1)
    results = run_together([honest, other], timeout=90)
    assert results[0].completed and results[0].outcome == "completed", results[0].reason
    [mine], [theirs] = results[0].matches, results[1].matches
    assert mine["match"] == theirs["match"] and mine["reason"] == "completed", (mine, theirs)
    return mine["match"], mine["seat"], theirs["seat"], recording_of(server, "e2e", mine["match"])


def test_a_seat_with_fake_checksums_and_a_forged_end_is_named_and_the_honest_one_is_not(
        server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    liar = Liar(server.url, params={"PROLIFIC_PID": pid()}, seed=2)
    match, honest_seat, liar_seat, recording = play_pair(server, liar)
    assert events(recording, "desync"), "the seats' checksums disagree: the desync is still detected"
    settled = events(recording, "desync_settled")
    assert settled and {e["data"]["seat"] for e in settled} == {liar_seat}
    reasons = {(e["episode"], e["data"]["reason"]) for e in settled}
    assert (0, "episode_end") in reasons or (0, "checksum") in reasons
    # The forged end did not end episode 0: it ended where the inputs end it, checked by the server.
    ends = events(recording, "episode_end")
    assert [e["episode"] for e in ends] == [0, 1]
    for end in ends:
        assert end["frame"] == true_end(recording, end["episode"]) != FORGED_AT
        assert end["data"]["faults"].get(honest_seat) is None and end["data"]["faults"][liar_seat] > 0
    assert ends[0]["data"]["frames"][liar_seat] == FORGED_AT
    server_checks = [f for data in recording.episodes.values() for f, seats in data["checksums"].items()
                     if "server" in seats]
    assert len(server_checks) >= 10
    result = replay(recording.path)
    assert result.passed and result.verdict == "ok" and not result.mismatches, result
    assert result.client_mismatches and {m.seat for m in result.client_mismatches} == {liar_seat}
    assert main(["replay", recording.path]) == 0
    out = capsys.readouterr().out
    assert f"client-reported mismatches: {len(result.client_mismatches)} checksums of seat(s) {liar_seat}" in out
    assert "ok: every checksum that decides (the server's own, where it recorded one) matches" in out
    with Store(str(server.data_dir / "e2e" / DATABASE_NAME)) as store:
        logged = store.events(kind="desync_settled", match_id=match)
        first = store.events(kind="desync", match_id=match)
        repeated = store.events(kind="desyncs_repeated", match_id=match)
    assert logged and {e["data"]["seat"] for e in logged} == {liar_seat}
    # Lying at every check frame costs the store one desync row and one summary per episode; the recording keeps all.
    recorded = events(recording, "desync")
    assert len(recorded) > 2 * len(recording.episodes)
    assert sorted(e["data"]["episode"] for e in first) == sorted(recording.episodes)
    assert len(first) + sum(e["data"]["count"] for e in repeated) == len(recorded)
    assert len(repeated) <= len(recording.episodes)


def test_a_corrupted_peer_is_caught_by_desync_detection_and_named(server: Server) -> None:
    corrupted = Corrupted(server.url, params={"PROLIFIC_PID": pid()}, seed=3)
    _, honest_seat, bad_seat, recording = play_pair(server, corrupted)
    desyncs = events(recording, "desync")
    assert desyncs and all(e["frame"] >= 40 for e in desyncs)
    settled = events(recording, "desync_settled")
    assert settled and {e["data"]["seat"] for e in settled} == {bad_seat}
    assert min(e["frame"] for e in settled if e["data"]["reason"] == "checksum") >= 40
    result = replay(recording.path)
    assert result.passed and {m.seat for m in result.client_mismatches} == {bad_seat}, result


@pytest.fixture(scope="module")
def solo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("solo")
    (folder / "solo_game.py").write_text(SOLO_GAME)
    (folder / "experiment.py").write_text(SOLO_EXPERIMENT)
    running = Server(["serve", str(folder / "experiment.py")], folder / "data")
    yield running
    running.stop()


def test_a_single_player_match_records_every_frame_and_replays_with_checksums(solo: Server) -> None:
    alone = HeadlessParticipant(solo.url, params={"PROLIFIC_PID": pid()}, seed=4)
    result = alone.run(60)
    assert result.completed and result.completion_code == "SOLO", result.reason
    assert not result.errors and not result.desyncs, result.to_json()
    [match] = result.matches
    assert match["reason"] == "completed"
    recording = recording_of(solo, "solo", match["match"])
    ends = events(recording, "episode_end")
    assert [e["frame"] for e in ends] == [400, 400]
    assert all(len(recording.episodes[e]["inputs"]) >= 400 for e in (0, 1))
    replayed = replay(recording.path)
    assert replayed.verdict == "ok" and replayed.passed and replayed.frames == 800
    seats = {seat for data in recording.episodes.values() for seats in data["checksums"].values() for seat in seats}
    assert seats == {"s0", "server"} and replayed.checked > 20


def test_a_lone_seat_cannot_end_an_episode_early(solo: Server) -> None:
    """Alone, nobody else would contradict a forged end: the server's re-simulation does."""
    liar = Liar(solo.url, params={"PROLIFIC_PID": pid()}, seed=5, then_honest_end=True)
    result = liar.run(60)
    assert result.completed, result.reason
    [match] = result.matches
    recording = recording_of(solo, "solo", match["match"])
    settled = events(recording, "desync_settled")
    assert {(e["episode"], e["data"]["reason"]) for e in settled} >= {(0, "episode_not_over")}
    assert [e["frame"] for e in events(recording, "episode_end")] == [400, 400]
    replayed = replay(recording.path)
    assert replayed.passed and replayed.checked > 20 and {m.seat for m in replayed.client_mismatches} == {"s0"}
