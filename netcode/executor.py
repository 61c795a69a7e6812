"""Runs a session's request list against an env in one call: the batch.

Snapshots live in a ring keyed by frame. A load of a frame that was never saved (or
has been overwritten) raises NetcodeError("snapshot_missing") instead of silently
restoring the wrong state.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from game.hashing import state_hash
from netcode.errors import NetcodeError
from netcode.requests import AdvanceFrame, LoadState, Request, SaveState


@dataclass
class BatchResult:
    """What one batch produced: checksums of saves that asked for one, and step results."""

    checksums: list[tuple[int, str]] = field(default_factory=list)
    steps: dict[int, dict[str, Any]] = field(default_factory=dict)
    frame: int = 0


class Executor:
    """Applies requests to `env` (anything with get_state/set_state/step)."""

    def __init__(self, env: Any, capacity: int = 72, hasher: Callable[[Any], str] = state_hash) -> None:
        self.env = env
        self.capacity = capacity
        self.hasher = hasher
        self._ring: list[tuple[int, Any] | None] = [None] * capacity
        self.frame = 0

    def run(self, requests: list[Request]) -> BatchResult:
        result = BatchResult()
        env, steps = self.env, result.steps
        for request in requests:
            if type(request) is AdvanceFrame:
                if request.frame != self.frame:
                    self._expect_frame(request.frame, "advance")
                steps[request.frame] = env.step(request.inputs)
                self.frame = request.frame + 1
            elif type(request) is SaveState:
                if request.frame != self.frame:
                    self._expect_frame(request.frame, "save")
                state = env.get_state()
                self._ring[request.frame % self.capacity] = (request.frame, state)
                if request.checksum:
                    result.checksums.append((request.frame, self.hasher(state)))
            elif type(request) is LoadState:
                slot = self._ring[request.frame % self.capacity]
                if slot is None or slot[0] != request.frame:
                    raise NetcodeError(
                        "snapshot_missing", f"no snapshot of frame {request.frame} to load; raise the executor's "
                        f"capacity ({self.capacity}) above the session's max_prediction", frame=request.frame)
                env.set_state(slot[1])
                self.frame = request.frame
            else:
                raise NetcodeError("invalid_request", f"unknown request {request!r:.60}")
        result.frame = self.frame
        return result

    def _expect_frame(self, frame: int, op: str) -> None:
        if frame != self.frame:
            raise NetcodeError("invalid_request", f"{op} of frame {frame} but the env is at frame {self.frame}", frame=frame)
