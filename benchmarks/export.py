"""Export speed and memory: `coplay export` of K recorded Pong episodes, for K = 1, 4, 16.

Records one match of K episodes of F frames each (seeded random inputs, simulated with
Pong as it is recorded), then exports it per format twice: once timed, once under
tracemalloc for the peak of traced memory. The steps table is spooled to disk episode by
episode, so the peak should stay flat as K grows (npz adds one column's worth).

    python benchmarks/export.py [--frames F] [--episodes 1 4 16] [--formats csv parquet npz]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.analysis.export import export  # noqa: E402
from tests.export_fixtures import PLAYERS, record  # noqa: E402


def measure(folder: Path, out: Path, fmt: str) -> tuple[int, float, int]:
    """(step rows, seconds, peak traced bytes) of exporting `folder` as `fmt`."""
    start = time.perf_counter()
    [result] = export(str(folder), fmt, str(out / "timed"))
    seconds = time.perf_counter() - start
    tracemalloc.start()
    export(str(folder), fmt, str(out / "traced"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result.rows["steps"], seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3600, help="frames per episode (3600: a minute at 60 fps)")
    parser.add_argument("--episodes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--formats", nargs="+", default=["csv", "parquet", "npz"])
    args = parser.parse_args()
    print(f"Pong, {args.frames} frames per episode, {len(PLAYERS)} players")
    print(f"{'format':8} {'K':>3} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'peak MiB':>9}")
    for k in args.episodes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "bench"
            record(folder, "bench", k, args.frames, seed=1)
            for fmt in args.formats:
                rows, seconds, peak = measure(folder, Path(tmp) / f"out-{fmt}", fmt)
                print(f"{fmt:8} {k:>3} {rows:>9} {seconds:>8.2f} {rows / seconds:>9.0f} {peak / 2**20:>9.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
