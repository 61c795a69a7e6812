"""A set of frame numbers kept as sorted, merged half-open ranges.

Sessions record which frames of each remote player they ever simulated with a predicted
input; over a match that is a few long runs, so `[[start, end_exclusive], ...]` is far
smaller than the frames themselves. Pure Python, deterministic, no I/O (runs in Pyodide).
"""
from __future__ import annotations

from bisect import bisect_right
from typing import Iterable

MAX_REPORTED_RANGES = 2048
"""Ranges (over all players) one `episode_done` report may carry: at most ~24 characters a
range, which keeps the event well under the server's 64 KiB Socket.IO message limit."""


class FrameRanges:
    """Frames as sorted, non-overlapping, non-adjacent `[start, end)` runs.

    `add` is O(1) amortised when frames arrive in increasing order (the usual case: a
    session advances frame by frame) and correct, O(log n + moved ranges), in any order.
    """

    def __init__(self, frames: Iterable[int] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for frame in frames:
            self.add(frame)

    def add(self, frame: int) -> None:
        """Put `frame` (an int >= 0) in the set."""
        starts, ends = self._starts, self._ends
        if starts and frame >= starts[-1]:          # fast path: at or past the last run
            if frame < ends[-1]:
                return
            if frame == ends[-1]:
                ends[-1] = frame + 1
                return
            starts.append(frame)
            ends.append(frame + 1)
            return
        i = bisect_right(starts, frame) - 1         # the run starting at or before frame, or -1
        if i >= 0 and frame < ends[i]:
            return
        joins_left = i >= 0 and ends[i] == frame
        joins_right = i + 1 < len(starts) and starts[i + 1] == frame + 1
        if joins_left and joins_right:
            ends[i] = ends[i + 1]
            del starts[i + 1], ends[i + 1]
        elif joins_left:
            ends[i] = frame + 1
        elif joins_right:
            starts[i + 1] = frame
        else:
            starts.insert(i + 1, frame)
            ends.insert(i + 1, frame + 1)

    def __contains__(self, frame: object) -> bool:
        if not isinstance(frame, int):
            return False
        i = bisect_right(self._starts, frame) - 1
        return i >= 0 and frame < self._ends[i]

    def __len__(self) -> int:
        """How many frames are in the set."""
        return sum(e - s for s, e in zip(self._starts, self._ends))

    def ranges(self) -> list[list[int]]:
        """`[[start, end_exclusive], ...]`, sorted, neither overlapping nor adjacent (fresh lists)."""
        return [[s, e] for s, e in zip(self._starts, self._ends)]

    @property
    def run_count(self) -> int:
        return len(self._starts)


def within_report_limit(predicted: dict[str, list[list[int]]]) -> dict[str, list[list[int]]]:
    """The players (in sorted order) whose ranges fit in `MAX_REPORTED_RANGES` together.

    A player left out is reported as unknown rather than making the whole report too big
    for the server to accept.
    """
    kept: dict[str, list[list[int]]] = {}
    total = 0
    for player in sorted(predicted):
        ranges = predicted[player]
        if total + len(ranges) <= MAX_REPORTED_RANGES:
            kept[player] = ranges
            total += len(ranges)
    return kept
