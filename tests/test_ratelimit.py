"""The one rate limit (app/live/ratelimit.py), driven by a fake clock."""
from __future__ import annotations

from app.live.ratelimit import RATE_LIMITED, Budget, RateLimit, TokenBucket

BUDGET = Budget(rate=10, burst=20, connect_cost=5, report_every_s=1.0, quiet_s=1.0, disconnect_after_s=2.0)


def sent(limit: RateLimit, conn: str, count: int, now: float) -> int:
    """How many of `count` messages sent at `now` are allowed."""
    return sum(limit.charge(conn, now) for _ in range(count))


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    bucket.tokens = 0
    assert bucket.refill(0.5) == 5
    assert bucket.refill(0.4) == 5   # a clock that steps back changes nothing
    assert bucket.refill(100.0) == 20


def test_a_connection_gets_its_burst_then_its_rate() -> None:
    limit = RateLimit(BUDGET)
    assert limit.open("a", "p", 0.0)
    assert sent(limit, "a", 100, 0.0) == 15          # the burst less the connection's cost
    assert sent(limit, "a", 100, 1.0) == 10          # then the rate
    assert sent(limit, "unknown", 5, 1.0) == 0       # a socket that never opened has no budget


def test_a_second_connection_of_a_participant_shares_its_budget() -> None:
    limit = RateLimit(BUDGET)
    assert limit.open("tab1", "p", 0.0) and limit.open("tab2", "p", 0.0)
    assert sent(limit, "tab1", 100, 0.0) + sent(limit, "tab2", 100, 0.0) == 10   # 20 - 2 connections
    assert sent(limit, "tab1", 100, 1.0) + sent(limit, "tab2", 100, 1.0) == 10   # not twice the rate
    assert limit.open("other", "q", 1.0) and sent(limit, "other", 100, 1.0) == 15  # others keep theirs


def test_reconnecting_does_not_refill_the_budget_and_costs_a_connection() -> None:
    limit = RateLimit(BUDGET)
    assert limit.open("a", "p", 0.0)
    sent(limit, "a", 100, 0.0)
    limit.close("a")
    assert not limit.open("b", "p", 0.0)             # no tokens left for a connection
    assert limit.open("b", "p", 0.5)                 # half a second pays for one
    assert sent(limit, "b", 100, 0.5) == 0


def test_refusals_are_reported_at_once_then_at_most_once_a_second() -> None:
    limit = RateLimit(BUDGET)
    limit.open("a", "p", 0.0)
    sent(limit, "a", 15, 0.0)
    reports = []
    for step in range(15):                      # 1.5 s of refusals, 100 a second
        now = step * 0.1
        for _ in range(10):
            if not limit.charge("a", now):
                limit.refused("a", "invalid", now)   # the same socket also sends bad events
            report = limit.report("a", now)
            if report is not None:
                reports.append((now, report.total, report.counts))
    assert [now for now, _, _ in reports] == [0.0, 1.0]
    assert reports[0][1] == 2 and reports[0][2] == {RATE_LIMITED: 1, "invalid": 1}
    assert reports[1][2][RATE_LIMITED] > 50
    due = dict(limit.due(2.5))                  # the rest, once a second has passed, by the ticker
    assert due["a"].total > 0 and due["a"].participant == "p"
    assert list(limit.due(2.6)) == [] and limit.close("a") is None


def test_a_flood_longer_than_two_seconds_is_told_to_go_once() -> None:
    limit = RateLimit(BUDGET)
    limit.open("a", "p", 0.0)
    disconnects = []
    for step in range(40):                      # 4 s, 50 messages a second: 5 times the rate
        now = step * 0.1
        for _ in range(5):
            if not limit.charge("a", now):
                report = limit.report("a", now)
                if report is not None and report.disconnect:
                    disconnects.append(now)
    assert len(disconnects) == 1 and 2.0 < disconnects[0] <= 2.5
    assert sent(limit, "a", 5, 10.0) == 0      # refused quietly until closed
    assert limit.report("a", 10.0) is None
    limit.close("a")
    gone_at = disconnects[0]
    assert not limit.open("b", "p", gone_at + BUDGET.penalty_s)   # the participant's budget is in debt
    assert limit.open("b", "p", gone_at + BUDGET.penalty_s + 0.5)


def test_a_quiet_spell_ends_a_flood() -> None:
    limit = RateLimit(BUDGET)
    limit.open("a", "p", 0.0)
    for burst_at in (0.0, 1.5, 3.0, 4.5):       # short bursts over budget, quiet in between
        sent(limit, "a", 40, burst_at)
        report = limit.report("a", burst_at)
        assert report is None or not report.disconnect


def test_closing_hands_over_what_was_not_reported() -> None:
    limit = RateLimit(BUDGET)
    limit.open("a", "p", 0.0)
    limit.refused("a", "malformed", 0.0)
    assert limit.report("a", 0.0) is not None
    limit.refused("a", "malformed", 0.2, "*: malformed frame")
    limit.refused("a", "binary", 0.3, "*: binary frames are not accepted")
    assert limit.report("a", 0.3) is None
    report = limit.close("a", 0.4)
    assert report is not None and report.counts == {"malformed": 1, "binary": 1} and report.seconds == 0.2
    assert report.example == "*: malformed frame"
    assert len(limit) == 0


def test_participant_budgets_are_bounded() -> None:
    limit = RateLimit(BUDGET, max_participants=3)
    for i in range(10):
        limit.open(f"c{i}", f"p{i}", 0.0)
        limit.close(f"c{i}")
    assert len(limit._participants) == 3
