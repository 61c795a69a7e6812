"""netcode/scheduler.py: due ticks, the catch-up cap, the debt reset and time-sync skips; and
static/worker_core.js's loop mirrors its constants."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from netcode import scheduler
from netcode.scheduler import MAX_CATCH_UP, MAX_DEBT, FixedStep

WORKER_CORE = Path(__file__).resolve().parents[1] / "static" / "worker_core.js"


def test_the_js_loop_uses_the_same_constants() -> None:
    source = WORKER_CORE.read_text(encoding="utf-8")
    for name in ("MAX_CATCH_UP", "MAX_DEBT"):
        found = re.findall(rf"^const {name} = (\d+);", source, re.MULTILINE)
        assert found == [str(getattr(scheduler, name))], f"{name} in worker_core.js: {found}"
    assert "netcode/scheduler.py" in source


def test_on_time_one_tick_is_due_then_none_until_the_next_period() -> None:
    schedule = FixedStep(10.0, now=100.0)
    assert schedule.due(100.0) == 1
    schedule.ticked()
    assert schedule.due(105.0) == 0 and schedule.delay(105.0) == 5.0
    assert schedule.due(110.0) == 1 and schedule.delay(111.0) == 0.0


def test_a_late_loop_catches_up_at_most_max_catch_up_per_round() -> None:
    schedule = FixedStep(10.0, now=0.0)
    now = 10.0 * (MAX_DEBT - 1) + 5   # MAX_DEBT ticks due: within the debt, all are owed
    ran = 0
    while due := schedule.due(now):
        assert due <= MAX_CATCH_UP
        for _ in range(due):
            schedule.ticked()
            ran += 1
    assert ran == MAX_DEBT and schedule.next_at == 10.0 * MAX_DEBT


def test_further_behind_than_max_debt_the_schedule_restarts_from_now() -> None:
    schedule = FixedStep(10.0, now=0.0)
    now = 10.0 * MAX_DEBT + 1
    assert schedule.due(now) == 1 and schedule.next_at == now
    schedule.ticked()
    assert schedule.due(now) == 0 and schedule.next_at == now + 10.0


def test_time_sync_skips_delay_the_schedule() -> None:
    schedule = FixedStep(10.0, now=0.0)
    assert schedule.due(0.0) == 1
    schedule.ticked(skip_frames=2)
    assert schedule.next_at == 30.0 and schedule.due(25.0) == 0 and schedule.due(30.0) == 1


def test_the_period_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FixedStep(0.0, now=0.0)
