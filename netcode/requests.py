"""Requests a session returns for its caller to run against the env, in order.

A list of them is one batch: in the browser the worker runs the whole list in one
call, so a rollback (load + re-steps + saves) costs a single round-trip. They are plain
slotted records, not frozen ones (a session makes a few every frame, and a frozen
dataclass costs several times as much to build); treat them as read-only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CONFIRMED = "confirmed"
PREDICTED = "predicted"
DISCONNECTED = "disconnected"


@dataclass(slots=True)
class SaveState:
    """Snapshot the env, which is at `frame`; hash it too when `checksum`."""

    frame: int
    checksum: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"op": "save", "frame": self.frame, "checksum": self.checksum}


@dataclass(slots=True)
class LoadState:
    """Restore the snapshot taken at `frame`."""

    frame: int

    def to_json(self) -> dict[str, Any]:
        return {"op": "load", "frame": self.frame}


@dataclass(slots=True)
class AdvanceFrame:
    """Step the env from `frame` to `frame + 1` with one action per player.

    `status[player]` tells whether that input is confirmed, predicted or a
    disconnected player's default.
    """

    frame: int
    inputs: dict[str, Any]
    status: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"op": "advance", "frame": self.frame, "inputs": self.inputs, "status": self.status}


Request = SaveState | LoadState | AdvanceFrame


def requests_to_json(requests: list[Request]) -> list[dict[str, Any]]:
    return [request.to_json() for request in requests]
