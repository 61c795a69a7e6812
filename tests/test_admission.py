"""Admission control decides from measured lag, with hysteresis; waiting rooms hold matches while closed."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from app.live.admission import (
    MAX_LAG_ENV, Admission, AdmissionError, AdmissionSettings, Closed, Figures, Opened, parse_max_lag_ms,
    settings_for,
)
from app.live.waiting import SERVER_BUSY, Held, StartMatch, TimedOut, WaitingRoom

SETTINGS = AdmissionSettings(max_lag_s=0.1, close_after_s=1.0, reopen_after_s=5.0, window_s=0.5,
                             probe_interval_s=0.05)


def feed(admission: Admission, start: float, end: float, loop_lag_s: float, relay_s: float = 0.0,
         step: float = 0.05) -> list[tuple[float, Closed | Opened]]:
    """One sample every `step` seconds from `start` to `end`; the changes, with when they happened."""
    changes = []
    for i in range(round((end - start) / step)):
        at = round(start + i * step, 6)
        change = admission.observe(at, loop_lag_s, relay_s)
        if change is not None:
            changes.append((at, change))
    return changes


def test_admission_closes_only_after_the_lag_stays_above_the_high_water_mark() -> None:
    admission = Admission(SETTINGS)
    assert feed(admission, 0, 10, loop_lag_s=0.004) == [] and admission.open
    changes = feed(admission, 10, 12, loop_lag_s=0.150)
    [(at, closed)] = changes
    assert at == 11.0 and isinstance(closed, Closed) and not admission.open
    assert closed.above_s == pytest.approx(1.0) and closed.figures.loop_lag_s == pytest.approx(0.150)
    status = admission.status()   # what the dashboard's health panel shows
    assert status["open"] is False and status["enabled"] is True and status["lag_ms"] == pytest.approx(150.0)
    assert status["max_lag_ms"] == pytest.approx(SETTINGS.max_lag_s * 1000)


def test_short_spikes_never_close_it() -> None:
    """A 300 ms stall every two seconds (garbage collection, a big file): the worst sample stays in the
    window for half a second, less than the second the lag must stay high."""
    admission = Admission(SETTINGS)
    for second in range(0, 60, 2):
        assert feed(admission, second, second + 0.05, loop_lag_s=0.3) == []
        assert feed(admission, second + 0.05, second + 2, loop_lag_s=0.002) == []
    assert admission.open


def test_it_reopens_only_after_the_lag_stays_below_the_low_water_mark_for_longer() -> None:
    admission = Admission(SETTINGS)
    feed(admission, 0, 2, loop_lag_s=0.2)
    assert not admission.open
    # Between the marks (70 ms): overloaded still, it stays closed however long.
    assert feed(admission, 2, 30, loop_lag_s=0.07) == [] and not admission.open
    # Below the low-water mark, but a relapse after 4 s restarts the count.
    assert feed(admission, 30, 34, loop_lag_s=0.01) == []
    assert feed(admission, 34, 34.05, loop_lag_s=0.08) == []
    changes = feed(admission, 34.05, 45, loop_lag_s=0.01)
    [(at, opened)] = changes
    # The relapse stays in the half-second window, so the count starts at 34.5 and ends 5 s later.
    assert isinstance(opened, Opened) and at == 39.5 and admission.open
    assert opened.closed_s == pytest.approx(39.5 - 1.0)


def test_a_lag_oscillating_around_the_marks_does_not_flap() -> None:
    admission = Admission(SETTINGS)
    changes = []
    for second in range(0, 30):   # 0.4 s above the high-water mark, 0.6 s just below it: stays open
        changes += feed(admission, second, second + 0.4, loop_lag_s=0.12)
        changes += feed(admission, second + 0.4, second + 1, loop_lag_s=0.09)
    assert changes == [] and admission.open
    for second in range(30, 90, 4):   # 2 s far above, 2 s far below: one close, then it stays closed
        changes += feed(admission, second, second + 2, loop_lag_s=0.3)
        changes += feed(admission, second + 2, second + 4, loop_lag_s=0.01)
    assert [(at, type(change)) for at, change in changes] == [(31.0, Closed)] and not admission.open


def test_relay_time_counts_with_the_loop_lag_and_the_figures_are_the_windows_worst() -> None:
    admission = Admission(SETTINGS)
    admission.observe(0.0, 0.060, 0.001)
    admission.observe(0.05, 0.010, 0.050)
    assert admission.figures == Figures(lag_s=pytest.approx(0.061), loop_lag_s=pytest.approx(0.060),
                                        relay_s=pytest.approx(0.050))
    admission.observe(0.6, 0.002, 0.0)   # both earlier samples left the window
    assert admission.figures == Figures(lag_s=pytest.approx(0.002), loop_lag_s=pytest.approx(0.002), relay_s=0.0)
    # A packet waiting 60 ms to be read and then taking 50 ms in the relay spent 110 ms in the server.
    changes = feed(admission, 1, 3, loop_lag_s=0.06, relay_s=0.05)
    assert [type(change) for _, change in changes] == [Closed]


def test_a_stall_longer_than_the_window_is_one_late_sample() -> None:
    """A probe that wakes 2 s late reports it once; the next, on time, is fine: no close."""
    admission = Admission(SETTINGS)
    assert admission.observe(2.0, 2.0, 0.0) is None
    assert feed(admission, 2.05, 5, loop_lag_s=0.001) == [] and admission.open


def test_after_reopening_match_starts_ramp_up_and_a_server_that_never_closed_is_not_limited() -> None:
    admission = Admission(SETTINGS)
    assert admission.start_budget(0) == math.inf
    feed(admission, 0, 2, loop_lag_s=0.3)
    assert admission.start_budget(2) == 0
    [(reopened, _)] = feed(admission, 2, 10, loop_lag_s=0.001)
    assert admission.start_budget(reopened) == 1
    admission.started(1)
    assert admission.start_budget(reopened + 0.9) == 0
    assert admission.start_budget(reopened + 1) == 2        # 3 in all by the end of the second step
    admission.started(2)
    assert admission.start_budget(reopened + 2.5) == 4 and admission.start_budget(reopened + 3) == 12
    feed(admission, 10, reopened + 9.9, loop_lag_s=0.001)
    assert admission.start_budget(reopened + 9.9) == 1023 - 3
    admission.observe(reopened + 10, 0.001, 0)               # ten steps on, the slow start is over
    assert admission.start_budget(reopened + 10) == math.inf
    feed(admission, 20, 22, loop_lag_s=0.3)                   # closed again: nothing; then a new slow start
    assert not admission.open and admission.start_budget(22) == 0
    [(again, _)] = feed(admission, 22, 30, loop_lag_s=0.001)
    assert admission.start_budget(again) == 1


def test_zero_turns_admission_control_off_but_figures_are_still_kept() -> None:
    admission = Admission(settings_for(0))
    assert feed(admission, 0, 20, loop_lag_s=5.0) == [] and admission.open
    assert admission.figures.loop_lag_s == 5.0


@pytest.mark.parametrize("text, words", [
    ("fast", "must be a number of milliseconds"), ("-5", "must be 0 to 60000 ms"), ("nan", "must be 0 to 60000"),
    ("5", "must be 10 to 60000 ms, got 5.0; give 0 to turn admission control off"), ("1e9", "60000"),
])
def test_a_bad_max_lag_is_refused_with_what_to_give(text: str, words: str) -> None:
    with pytest.raises(AdmissionError, match="max relay lag") as error:
        parse_max_lag_ms(text)
    assert words in str(error.value) and error.value.code == "bad_admission_setting"


def test_bad_settings_are_refused() -> None:
    assert parse_max_lag_ms("250") == 250 and settings_for(250).low_water_s == 0.125
    with pytest.raises(AdmissionError, match="reopening lag must be at least 0 and below the max relay lag"):
        Admission(AdmissionSettings(max_lag_s=0.1, reopen_lag_s=0.2))
    with pytest.raises(AdmissionError, match="close_after_s must be 0.001 to 86400 s, got -1"):
        AdmissionSettings(close_after_s=-1).check()


# ------------------------------------------------------------------ waiting rooms while admission is closed

def test_a_closed_room_holds_its_matches_and_starts_them_in_arrival_order_when_open() -> None:
    room = WaitingRoom("pong", needed=2, timeout_s=30, on_timeout="ai")
    for name, at in (("a", 0), ("b", 1), ("c", 2)):
        room.join(name, at)
    assert room.poll(3, admit=False) == [Held(1)]
    assert room.poll(4, admit=False) == []          # the same held match is counted once
    room.join("d", 5)
    room.join("e", 6)
    assert room.poll(6, admit=False) == [Held(1)]
    assert list(room.waiting) == ["a", "b", "c", "d", "e"]
    assert room.poll(20) == [StartMatch(("a", "b"), 0), StartMatch(("c", "d"), 0)]
    assert list(room.waiting) == ["e"]


def test_an_open_room_starts_at_most_max_starts_and_the_rest_wait_in_order() -> None:
    room = WaitingRoom("pong", needed=2, timeout_s=30, on_timeout="ai")
    for name, at in (("a", 0), ("b", 0), ("c", 1), ("d", 1), ("e", 2), ("f", 2), ("g", 3)):
        room.join(name, at)
    assert room.poll(4, max_starts=1) == [StartMatch(("a", "b"), 0), Held(2)]
    assert room.poll(5, max_starts=0) == []
    assert room.poll(40, max_starts=1) == [StartMatch(("c", "d"), 0)]   # g timed out, but e and f go first
    assert room.poll(41, max_starts=2) == [StartMatch(("e", "f"), 0), StartMatch(("g",), 1)]


def test_the_timeout_clock_pauses_while_closed_so_no_ai_fill_and_no_timeout() -> None:
    room = WaitingRoom("pong", needed=2, timeout_s=30, on_timeout="ai")
    room.join("a", 0)
    assert room.poll(20) == []
    assert room.poll(25, admit=False) == []
    assert room.poll(100, admit=False) == [] and room.seconds_left("a", 100) == 5   # frozen at 25 s counted
    assert room.poll(100) == [] and room.seconds_left("a", 104) == 1   # open again: the clock runs on
    [start] = room.poll(105)
    assert start == StartMatch(("a",), 1) and start.waited_s == (105,)


def test_a_participant_joining_while_closed_starts_counting_at_reopening() -> None:
    room = WaitingRoom("coop", needed=3, timeout_s=30, on_timeout="leave")
    room.poll(0, admit=False)
    room.join("a", 10)
    assert room.poll(50, admit=False) == [] and room.seconds_left("a", 50) == 30
    assert room.poll(50) == [] and room.poll(79) == []
    assert room.poll(80) == [TimedOut("a")]


def test_a_participant_held_too_long_leaves_with_the_reason_server_busy() -> None:
    room = WaitingRoom("pong", needed=2, timeout_s=30, on_timeout="ai")
    room.join("a", 0)
    room.join("b", 100)
    assert room.poll(110, admit=False, max_hold_s=300) == [Held(1)]
    assert room.poll(200) == [StartMatch(("a", "b"), 0)]  # reopened: started
    room.join("c", 200)
    assert room.poll(220, admit=False, max_hold_s=120) == []
    assert room.poll(240) == []          # c was held 20 s; it adds up over closures
    room.join("d", 250)                  # ... d joins while open
    assert room.poll(260, admit=False, max_hold_s=120) == [Held(1)]
    assert room.poll(359, admit=False, max_hold_s=120) == []
    assert room.poll(360, admit=False, max_hold_s=120) == [TimedOut("c", SERVER_BUSY)]
    assert room.poll(379, admit=False, max_hold_s=120) == []
    assert room.poll(380, admit=False, max_hold_s=120) == [TimedOut("d", SERVER_BUSY)]
    assert room.waiting == {} and room.held_s == {}


# ------------------------------------------------------------------ the command line


def test_serve_takes_the_max_lag_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli import build_parser

    assert build_parser().parse_args(["demo"]).max_relay_lag_ms == 150
    assert build_parser().parse_args(["demo", "--max-relay-lag-ms", "0"]).max_relay_lag_ms == 0
    monkeypatch.setenv(MAX_LAG_ENV, "250")
    assert build_parser().parse_args(["demo"]).max_relay_lag_ms == 250
    assert build_parser().parse_args(["demo", "--max-relay-lag-ms", "40"]).max_relay_lag_ms == 40


@pytest.mark.parametrize("flag, env", [(["--max-relay-lag-ms", "5"], None), ([], "lots")])
def test_serve_refuses_a_bad_max_lag_before_starting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str], flag: list[str],
                                                     env: str | None) -> None:
    from app.cli import main

    if env is not None:
        monkeypatch.setenv(MAX_LAG_ENV, env)
    with pytest.raises(SystemExit) as exit:
        main(["demo", "--data", str(tmp_path / "data"), "--async-mode", "threading", "--port", "1", *flag])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "--max-relay-lag-ms" in err and MAX_LAG_ENV in err
    assert ("must be 10 to 60000 ms, got 5.0" if flag else "must be a number of milliseconds") in err
    assert not (tmp_path / "data").exists()


def test_every_relay_lagging_closes_admission_and_a_relay_taking_matches_reopens_it_with_a_slow_start() -> None:
    admission = Admission(SETTINGS)
    relay_figures = Figures(lag_s=0.3, loop_lag_s=0.3)
    change = admission.gate(1.0, relays_open=False, figures=relay_figures)
    assert isinstance(change, Closed) and change.figures == relay_figures and not admission.open
    assert change.above_s is None   # the relays closed it, not a lag of this server's
    assert admission.start_budget(1.0) == 0
    assert admission.gate(2.0, relays_open=False, figures=relay_figures) is None   # no change: said once
    assert feed(admission, 2, 10, loop_lag_s=0.004) == [] and not admission.open   # its own lag is fine
    reopened = admission.gate(11.0, relays_open=True, figures=Figures())
    assert isinstance(reopened, Opened) and reopened.closed_s == pytest.approx(10.0) and admission.open
    assert admission.start_budget(11.0) == 1   # the slow start, as after its own overload


def test_own_lag_and_the_relays_each_hold_new_matches_and_both_must_clear() -> None:
    admission = Admission(SETTINGS)
    [(_, closed)] = feed(admission, 0, 2, loop_lag_s=0.150)
    assert isinstance(closed, Closed)
    assert admission.gate(2.0, relays_open=False, figures=Figures()) is None   # closed already
    assert feed(admission, 2, 10, loop_lag_s=0.004) == [] and not admission.open   # the relays still lag
    reopened = admission.gate(10.0, relays_open=True, figures=Figures())
    assert isinstance(reopened, Opened) and admission.open
    admission.relays = [{"id": "r1", "admitting": True}]
    assert admission.status()["relays"] == [{"id": "r1", "admitting": True}]
    assert admission.status()["relays_open"] is True
