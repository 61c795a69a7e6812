"""The dashboard's cost: ms to build one snapshot (app/live/dashboard.py), as the server does every second
for its connected admins, against a study of N participants in a real SQLite store.

    python benchmarks/dashboard.py [--participants N ...] [--events-per-participant E] [--repeat R]

The store holds N participants (a fifth completed, a few excluded) with E events each (connects,
disconnects, a few errors), as a study of that size leaves it. The snapshot reads every participant
once (counts by scene and outcome, arrivals and completions per minute), the matches, and the latest
notable events; the charts (app/web/admin_charts.py) are timed apart. Best of R.
Figures depend on the machine and its load: run on a quiet machine.
"""
from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.data.store import Store  # noqa: E402
from app.live.dashboard import Dashboard  # noqa: E402
from app.live.flow import Flow  # noqa: E402
from app.live.hub import Hub, Services  # noqa: E402
from app.live.metrics import Metrics  # noqa: E402
from app.web.admin_charts import charts  # noqa: E402
from scenes import End, Experiment, Page  # noqa: E402


def build(folder: str, participants: int, events: int) -> Hub:
    experiment = Experiment("bench", [Page("p", "P", markdown="x"), End("end", completion_code="DONE")],
                            allow_anonymous=True)
    store = Store(f"{folder}/db.sqlite")
    flow = Flow(experiment, store)
    for i in range(participants):
        entered = flow.enter({"PROLIFIC_PID": f"bench-{i}"})
        assert entered.participant is not None
        for j in range(events):
            store.log_event("client_error" if j % 50 == 49 else ("connect", "disconnect")[j % 2], {"sid": "x"},
                            participant_id=entered.participant)
        if i % 5 == 0:
            flow.advance(entered.participant, 0, {})
        elif i % 97 == 0:
            flow.set_outcome(entered.participant, "excluded")
    return Hub(flow, folder, Services(
        emit=lambda *a, **k: None, disconnect=lambda sid: None, spawn=lambda *a: None, sleep=lambda s: None,
        now=time.monotonic, resolve_game=lambda g: object, game_source=lambda c: "", make_policy=lambda *a: None,
        game_spec=lambda g: "", metrics=Metrics()))


def best_ms(function: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        function()  # type: ignore[operator]
        times.append((time.perf_counter() - began) * 1000)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--events-per-participant", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'participants':>12} {'events':>8} {'snapshot ms':>12} {'charts ms':>10}")
    for n in args.participants:
        with tempfile.TemporaryDirectory() as folder:
            dashboard = Dashboard(build(folder, n, args.events_per_participant))
            snapshot = dashboard.snapshot()
            snap_ms = best_ms(dashboard.snapshot, args.repeat)
            chart_ms = best_ms(functools.partial(charts, snapshot), args.repeat)
            print(f"{n:>12} {n * args.events_per_participant:>8} {snap_ms:>12.1f} {chart_ms:>10.1f}")


if __name__ == "__main__":
    main()
