"""Waiting rooms group participants and handle timeouts."""
from __future__ import annotations

from app.live.waiting import StartMatch, TimedOut, WaitingRoom


def test_a_match_starts_when_enough_are_there_in_arrival_order() -> None:
    room = WaitingRoom("pong", needed=2, timeout_s=30, on_timeout="ai")
    for name, at in (("a", 0), ("b", 1), ("c", 2)):
        room.join(name, at)
    assert room.poll(3) == [StartMatch(("a", "b"), 0)]
    assert list(room.waiting) == ["c"] and room.seconds_left("c", 12) == 20


def test_timeout_fills_empty_seats_with_ai_when_allowed() -> None:
    room = WaitingRoom("pong", needed=3, timeout_s=30, on_timeout="ai")
    room.join("a", 0)
    room.join("b", 10)
    assert room.poll(29) == []
    assert room.poll(30) == [StartMatch(("a", "b"), 1)]
    assert room.waiting == {}


def test_timeout_sends_participants_on_when_ai_is_not_allowed() -> None:
    room = WaitingRoom("coop", needed=3, timeout_s=30, on_timeout="leave")
    room.join("a", 0)
    room.join("b", 20)
    assert room.poll(31) == [TimedOut("a")]
    assert list(room.waiting) == ["b"]


def test_joining_twice_keeps_the_first_arrival_and_leaving_removes() -> None:
    room = WaitingRoom("pong", needed=2, timeout_s=30, on_timeout="ai")
    room.join("a", 0)
    room.join("a", 25)
    assert room.seconds_left("a", 25) == 5
    room.leave("a")
    assert room.poll(100) == []


def test_a_started_match_says_how_long_each_participant_waited() -> None:
    room = WaitingRoom("m", needed=2, timeout_s=30, on_timeout="ai")
    room.join("a", 1.0)
    room.join("b", 4.0)
    [start] = room.poll(6.0)
    assert start.participants == ("a", "b") and start.waited_s == (5.0, 2.0)
    room.join("c", 10.0)
    [start] = room.poll(40.0)   # timed out: an AI fills the other seat
    assert start.participants == ("c",) and start.fill_with_ai == 1 and start.waited_s == (30.0,)
