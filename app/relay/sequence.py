"""Each relay's reports numbered, so the coordinator applies every report once.

A report Redis took but did not answer in time (it hung, then resumed) is sent again by its relay,
and the coordinator's queue then holds it twice. So every report carries its relay's id, the relay
process's run (a nonce made when it starts: a relay restarted under the same id numbers from 1 again)
and its number in that run. A relay sends its reports one at a time, in order, the next only once
Redis took the last one, so a report numbered no higher than the last one applied from its run is a copy.
"""
from __future__ import annotations

import itertools
import secrets
from typing import Any


class Numbering:
    """A relay process's side: stamps each report with (relay, run, seq), seq counting from 1."""

    def __init__(self, relay_id: str) -> None:
        self.relay_id = relay_id
        self.run = secrets.token_hex(8)
        self._next = itertools.count(1)

    def stamp(self, message: dict[str, Any]) -> dict[str, Any]:
        return {**message, "relay": self.relay_id, "run": self.run, "seq": next(self._next)}


class Applied:
    """The coordinator's side: the last report number applied from each relay run."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], int] = {}

    def first_time(self, message: dict[str, Any]) -> bool:
        """Whether `message` is new (and from now on taken as applied); False for a copy of one applied."""
        seq = message.get("seq")
        if seq is None:   # a relay older than the numbering: nothing to compare
            return True
        run = (str(message.get("relay")), str(message.get("run")))
        if seq <= self._last.get(run, 0):
            return False
        self._last[run] = seq
        return True
