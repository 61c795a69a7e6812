"""Which inputs a peer ever predicted: FrameRanges, the session's record, the episode_done
report, its validation, the recording event and the export's `predicted` lookup."""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.live.match_room import MatchRoom, MatchSettings
from app.live.seat import HUMAN, Seat
from app.analysis.predicted import PredictedLookup
from app.live.protocol import EpisodeDone, ProtocolError, parse_episode_done
from app.data.recording import Recording, RecordingWriter, make_header, read_recording
from game.games.pong import Pong
from game.spaces import Discrete
from netcode.frame_ranges import MAX_REPORTED_RANGES, FrameRanges, within_report_limit
from netcode.p2p import P2PSession
from netcode.requests import PREDICTED, AdvanceFrame, Request
from netcode.simmatch import run_sim_match
from tests.netcode_fixtures import Pair
from tests.tally import Tally
from tests.server_fixtures import SettlesAtOnce

# ----------------------------------------------------------------------------- FrameRanges


def test_frame_ranges_merge_adjacent_frames_in_any_order() -> None:
    ranges = FrameRanges()
    for frame in (3, 4, 5, 9, 1, 7, 8, 6, 0, 5):
        ranges.add(frame)
    assert ranges.ranges() == [[0, 2], [3, 10]]
    assert 6 in ranges and 2 not in ranges and "6" not in ranges and len(ranges) == 9
    assert FrameRanges([2, 0, 1]).ranges() == [[0, 3]] and FrameRanges().ranges() == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 200), max_size=150))
def test_frame_ranges_equal_a_plain_set(frames: list[int]) -> None:
    ranges = FrameRanges(frames)
    expected = sorted(set(frames))
    assert [f for start, end in ranges.ranges() for f in range(start, end)] == expected
    pairs = ranges.ranges()
    assert all(start < end for start, end in pairs)
    assert all(a[1] < b[0] for a, b in zip(pairs, pairs[1:])), "runs must be sorted, apart, never adjacent"
    assert all((f in ranges) == (f in set(frames)) for f in range(-1, 202))
    assert len(ranges) == len(expected) and ranges.run_count == len(pairs)


def test_a_report_leaves_out_players_whose_ranges_do_not_fit() -> None:
    many = [[2 * i, 2 * i + 1] for i in range(MAX_REPORTED_RANGES - 1)]
    assert within_report_limit({"b": [[0, 1], [2, 3]], "a": many}) == {"a": many}
    assert within_report_limit({"b": [[0, 5]], "a": many}) == {"a": many, "b": [[0, 5]]}


# ----------------------------------------------------------------------------- sessions


class PredictionObserver:
    """Independently records, per peer and remote player, the frames of AdvanceFrame requests
    whose input for that player was tagged predicted; keeps the sessions."""

    def __init__(self) -> None:
        self.seen: dict[int, dict[str, set[int]]] = {}
        self.sessions: dict[int, P2PSession] = {}

    def __call__(self, peer: int, session: P2PSession, requests: list[Request]) -> None:
        self.sessions[peer] = session
        seen = self.seen.setdefault(peer, {})
        for request in requests:
            if isinstance(request, AdvanceFrame):
                for player, status in request.status.items():
                    if status == PREDICTED:
                        seen.setdefault(player, set()).add(request.frame)


def frames_of(ranges: list[list[int]]) -> set[int]:
    return {f for start, end in ranges for f in range(start, end)}


@pytest.mark.parametrize(("profile", "peers", "seed"), [("wifi", 2, 1), ("bad", 3, 7), ("mobile", 2, 3)])
def test_reported_predicted_frames_are_exactly_the_frames_advanced_with_a_prediction(
        profile: str, peers: int, seed: int) -> None:
    observer = PredictionObserver()
    report = run_sim_match(lambda _: Tally({"players": peers}), peers=peers, profile=profile, frames=240, seed=seed,
                           settings={"input_delay": 1, "max_prediction": 8}, on_requests=observer)
    assert report.converged, report.reason
    total = 0
    for peer, session in observer.sessions.items():
        reported = session.predicted_frames()
        assert set(reported) == set(session._owner)          # every remote player, no local one
        for player, ranges in reported.items():
            assert frames_of(ranges) == observer.seen[peer].get(player, set()), (peer, player)
            assert ranges == FrameRanges(frames_of(ranges)).ranges()   # canonical: sorted and merged
            total += len(frames_of(ranges))
    assert total > 0 and report.rollbacks > 0, "this profile should make peers predict"


def test_in_lockstep_nothing_is_predicted() -> None:
    observer = PredictionObserver()
    report = run_sim_match(lambda _: Tally({"players": 2}), peers=2, profile="bad", frames=120, seed=5,
                           settings={"input_delay": 2, "max_prediction": 0}, on_requests=observer)
    assert report.converged, report.reason
    assert all(observer.seen[peer] == {} for peer in observer.seen)
    assert [observer.sessions[i].predicted_frames() for i in (0, 1)] == [{"p1": []}, {"p0": []}]


def test_a_frame_first_run_predicted_stays_predicted_after_the_rollback_confirms_it() -> None:
    pair = Pair(input_delay=0)
    for _ in range(3):
        pair.tick("a", 1)                      # b silent: a runs frames 0-2 predicting p1
    for _ in range(5):
        pair.tick("b", 2)                      # b's real inputs differ from the prediction
    rerun = pair.tick("a", 1)                  # rollback: frames 0-2 re-run confirmed, frame 3 confirmed
    assert rerun[0] == {"op": "load", "frame": 0}
    assert all(r["status"]["p1"] == "confirmed" for r in rerun if r["op"] == "advance")
    assert pair.a.predicted_frames() == {"p1": [[0, 3]]}
    assert pair.b.predicted_frames() == {"p0": [[3, 5]]}   # b ran frames 3-4 before hearing a's


# ----------------------------------------------------------------------------- episode_done validation

GOOD = {"match": "m1", "episode": 0, "frame": 90, "checksum": "aaaa"}


def test_episode_done_carries_the_predicted_ranges_or_none() -> None:
    assert parse_episode_done(GOOD).predicted is None     # an older client: unknown
    done = parse_episode_done({**GOOD, "predicted": {"right": [[0, 3], [5, 90]], "left": []}})
    assert done.predicted == {"right": [[0, 3], [5, 90]], "left": []}


@pytest.mark.parametrize(("predicted", "message"), [
    ([[0, 1]], "predicted must be an object of player -> ranges, got list"),
    ({"": []}, "predicted: player names must be non-empty strings of at most 64 characters"),
    ({"right": {"0": 1}}, "predicted['right'] must be a list of [start, end] pairs, got dict"),
    ({"right": [[0, 1, 2]]}, "predicted['right']: each range must be a [start, end] pair of ints, got [0, 1, 2]"),
    ({"right": [[0, 1.5]]}, "each range must be a [start, end] pair of ints, got [0, 1.5]"),
    ({"right": [[True, 2]]}, "each range must be a [start, end] pair of ints, got [True, 2]"),
    ({"right": [3]}, "each range must be a [start, end] pair of ints, got 3"),
    ({"right": [[-1, 2]]}, "predicted['right']: range [-1, 2] must satisfy 0 <= start < end <= frame 90"),
    ({"right": [[4, 4]]}, "range [4, 4] must satisfy 0 <= start < end <= frame 90"),
    ({"right": [[80, 91]]}, "range [80, 91] must satisfy 0 <= start < end <= frame 90"),
    ({"right": [[5, 9], [0, 2]]}, "predicted['right']: range [0, 2] overlaps or comes before the previous one; "
                                  "ranges must be sorted and must not overlap"),
    ({"right": [[0, 5], [4, 9]]}, "range [4, 9] overlaps or comes before the previous one"),
    ({"a": [[2 * i, 2 * i + 1] for i in range(30)], "b": [[0, 1]] * (MAX_REPORTED_RANGES - 29)},
     f"predicted holds more than {MAX_REPORTED_RANGES} ranges"),
    ({f"p{i}": [] for i in range(65)}, "predicted names more than 64 players"),
])
def test_bad_predicted_fields_are_refused_with_a_clear_reason(predicted: Any, message: str) -> None:
    with pytest.raises(ProtocolError) as error:
        parse_episode_done({**GOOD, "predicted": predicted})
    assert message in str(error.value)


# ----------------------------------------------------------------------------- the match room


class Host(SettlesAtOnce):
    """What the room asks of a server, collected; no bots."""

    def __init__(self) -> None:
        self.ended: list[str] = []

    def send(self, seat: Seat, event: str, payload: dict[str, Any]) -> None:
        pass

    def start_bot(self, room: MatchRoom, seat: Seat, preload: Any) -> Any:
        raise AssertionError("no bots here")

    def match_ended(self, room: MatchRoom, reason: str) -> None:
        self.ended.append(reason)

    def log_event(self, room: MatchRoom, kind: str, data: dict[str, Any]) -> None:
        pass

    def now(self) -> float:
        return 0.0


def make_room(tmp_path: Path) -> MatchRoom:
    seats = {"s0": Seat("s0", ("left",), HUMAN, participant="pa"), "s1": Seat("s1", ("right",), HUMAN, participant="pb")}
    match_settings = MatchSettings(
        game="game.games.pong:Pong", config={}, players=("left", "right"),
        action_spaces={"left": Discrete(3), "right": Discrete(3)}, episodes=1, fps=60, netcode={}, keys={},
        on_partner_drop="end", fill_policy="random")
    header = make_header(match="m1", experiment="x", scene="pong", created_at="now", game=match_settings.game,
                         game_source="", config={}, players=["left", "right"], seats={}, netcode={}, fps=60)
    writer = RecordingWriter(str(tmp_path / f"m1-{uuid.uuid4().hex}.jsonl"), header)
    room = MatchRoom("m1", "pong", match_settings, seats, Host(), writer, seed=7, game_class=Pong)
    room.start_next_episode()
    return room


def test_the_room_records_reports_and_refuses_one_about_the_seats_own_players(tmp_path: Path) -> None:
    room = make_room(tmp_path)
    s0, s1 = room.seats["s0"], room.seats["s1"]
    for players in ({"left": [[0, 4]]}, {"nobody": []}):
        with pytest.raises(ProtocolError, match=r"a seat reports only the players it does not play: \['right'\]"):
            room.episode_done(s0, EpisodeDone("m1", 0, 90, "aaaa", players))
    assert s0.done is None, "a refused report changes nothing"
    room.episode_done(s0, EpisodeDone("m1", 0, 90, "aaaa", {"right": [[3, 20]]}))
    room.episode_done(s1, EpisodeDone("m1", 0, 90, "aaaa"))              # an older client: no report
    room.recording.close()
    events = [e for e in read_recording(room.recording.path).events if e["kind"] == "predicted"]
    assert events == [{"type": "event", "episode": 0, "frame": 90, "kind": "predicted",
                       "data": {"seat": "s0", "players": {"right": [[3, 20]]}}}]


# ----------------------------------------------------------------------------- the export's lookup


def recording_with(events: list[dict[str, Any]], seats: tuple[str, ...] = ("s0", "s1")) -> Recording:
    header = {"players": ["left", "right"], "seats": {s: {"players": []} for s in seats}}
    return Recording(path="x.jsonl", header=header,
                     events=[{"type": "event", "episode": e, "frame": f, "kind": k, "data": d} for e, f, k, d in events])


def test_lookup_is_true_false_or_unknown() -> None:
    owners = {"left": "s0", "right": "s1"}
    recording = recording_with([
        (0, 50, "predicted", {"seat": "s0", "players": {"right": [[10, 20]]}}),
        (0, 50, "predicted", {"seat": "s1", "players": {"left": []}}),
        (1, 40, "predicted", {"seat": "s1", "players": {"left": [[0, 2]]}}),   # s0 never reported episode 1
    ])
    first, second = PredictedLookup(recording, 0, owners), PredictedLookup(recording, 1, owners)
    assert [first(f, "right") for f in (9, 10, 19, 20)] == [False, True, True, False]
    assert first(30, "left") is False and first(50, "left") is None     # past the report: not covered
    assert second(1, "left") is True and second(2, "left") is False and second(5, "right") is None
    assert PredictedLookup(recording_with([]), 0, owners)(0, "left") is None


def test_an_ai_taking_over_reports_only_from_the_takeover_on() -> None:
    owners = {"left": "s0", "right": "s1"}
    recording = recording_with([
        (0, 30, "seat_changed", {"seat": "s0", "by": "ai"}),
        (0, 60, "predicted", {"seat": "s0", "players": {"right": [[20, 22], [40, 45]]}}),
    ])
    lookup = PredictedLookup(recording, 0, owners)
    assert [lookup(f, "right") for f in (5, 21, 35, 42, 59)] == [None, True, False, True, False]


def test_every_other_seat_must_report_for_a_false() -> None:
    owners = {"a": "s0", "b": "s1", "c": "s2"}
    recording = recording_with([(0, 50, "predicted", {"seat": "s1", "players": {"a": [[0, 5]], "c": []}})],
                               seats=("s0", "s1", "s2"))
    lookup = PredictedLookup(recording, 0, owners)
    assert lookup(3, "a") is True and lookup(7, "a") is None and lookup(7, "c") is None
    assert json.dumps([lookup(7, "c")]) == "[null]"


# ----------------------------------------------------------------------------- end to end

PREDICTED_EXPERIMENT = '''
from scenes import Consent, End, Experiment, Match, WaitingRoom

EXPERIMENT = Experiment(id="predicted", scenes=[
    Consent(id="consent", markdown="Agree?"),
    Match(id="pong", game="game.games.pong:Pong", config={"max_score": 1000, "max_frames": 150},
          humans=("left", "right"), episodes=1, fps=60, netcode={"input_delay": 3},
          waiting_room=WaitingRoom(timeout_s=20, on_timeout="ai"), on_partner_drop="ai", fill_policy="random"),
    End(id="end", html="<p>Thanks</p>", completion_code="P"),
])
'''


def test_a_relayed_match_exports_which_inputs_the_other_seat_predicted(tmp_path: Path) -> None:
    import csv

    from app.analysis.export import export
    from app.participant.headless import HeadlessParticipant
    from tests.server_fixtures import Server, pid, run_together

    (tmp_path / "experiment.py").write_text(PREDICTED_EXPERIMENT)
    # 25 ms each way against 3 frames (50 ms) of input delay: the start and the jitter are
    # predicted, most frames arrive in time.
    server = Server(["serve", str(tmp_path / "experiment.py"), "--relay-delay-ms", "25"], tmp_path / "data")
    try:
        results = run_together([HeadlessParticipant(server.url, {"PROLIFIC_PID": pid()}, seed=s) for s in (1, 2)])
    finally:
        server.stop()
    assert all(r.completed and r.ok for r in results), [r.reason for r in results]
    [match] = {m["match"] for r in results for m in r.matches}
    recording = read_recording(str(tmp_path / "data" / "predicted" / "recordings" / f"{match}.jsonl"))
    reports = {e["data"]["seat"]: e["data"]["players"] for e in recording.events if e["kind"] == "predicted"}
    seats = recording.header["seats"]
    assert set(reports) == set(seats) == {"s0", "s1"}
    for seat, players in reports.items():
        assert set(players) == {p for other, info in seats.items() if other != seat for p in info["players"]}

    export(str(tmp_path / "data" / "predicted"), "csv", str(tmp_path / "out"))
    with open(tmp_path / "out" / "steps.csv", newline="", encoding="utf-8") as file:
        steps = list(csv.DictReader(file))
    assert steps and {row["predicted"] for row in steps} == {"True", "False"}
    owner = {p: seat for seat, info in seats.items() for p in info["players"]}
    for row in steps:   # each row is one player's input; True means the other seat ran it predicted
        other = next(seat for seat in seats if seat != owner[row["player"]])
        ranges = reports[other][row["player"]]
        expected = any(start <= int(row["frame"]) < end for start, end in ranges)
        assert row["predicted"] == str(expected), row
