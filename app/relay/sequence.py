"""What relays and the coordinator send each other through Redis, numbered, so each message is applied once.

A message Redis took but did not answer in time (it hung, then resumed) is sent again by its sender
(app/relay/outbox.py), and the receiving queue then holds it twice. So every report of a relay, and
every command of the coordinator, carries its sender's id, the sender process's run (a nonce made when
it starts: a relay restarted under the same id numbers from 1 again) and its number in that run. A
sender hands its messages over one at a time, in order, the next only once Redis took the last one, so
a message numbered no higher than the last one applied from its run is a copy.
"""
from __future__ import annotations

import itertools
import secrets
from typing import Any


class Numbering:
    """A sender's side: stamps each message with (sender, run, seq), seq counting from 1."""

    def __init__(self, sender_id: str) -> None:
        self.sender_id = sender_id
        self.run = secrets.token_hex(8)
        self._next = itertools.count(1)

    def stamp(self, message: dict[str, Any]) -> dict[str, Any]:
        return {**message, "sender": self.sender_id, "run": self.run, "seq": next(self._next)}


class Applied:
    """A receiver's side: the last number applied from each sender's run."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], int] = {}

    def first_time(self, message: dict[str, Any]) -> bool:
        """Whether `message` is new (and from now on taken as applied); False for a copy of one applied."""
        seq = message.get("seq")
        if seq is None:   # not numbered: nothing to compare
            return True
        run = (str(message.get("sender")), str(message.get("run")))
        if seq <= self._last.get(run, 0):
            return False
        self._last[run] = seq
        return True
