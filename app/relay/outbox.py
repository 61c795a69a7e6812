"""What a relay process or the coordinator sends to Redis, in order, never waiting for Redis itself.

`Outbox.put` queues an item and wakes `Outbox.run`, one green thread that hands items to Redis one at
a time, in the order they were queued. An item stays at the head until Redis took it, so what is
queued meanwhile waits behind it; while Redis fails, the sender tries again every `retry_s`. The
queue has a lock of its own, held only to look at or remove its head: a caller may queue under its
own lock (the relay's, the Hub's) and never waits for Redis there, so a hung Redis never stalls the
matches or the scene flow. A queue past `limit` drops its oldest droppable item (e.g. a report,
never a match's end or a command) and logs once until it empties again.

An item whose hand-over Redis took but did not answer (it hung, then resumed) is sent again, so the
receiver may get it twice: senders number what they send (app/relay/sequence.py) and the receiver
applies each number once.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable, Generic, TypeVar

from redis import RedisError

log = logging.getLogger("coplay.server")

Item = TypeVar("Item")
DEFAULT_LIMIT = 100_000   # items kept while Redis is unreachable (then the oldest droppable ones go)


class Outbox(Generic[Item]):
    """An ordered queue of items for Redis and the one sender that drains it (see the module's docstring)."""

    def __init__(self, name: str, deliver: Callable[[Item], None], sleep: Callable[[float], None], retry_s: float,
                 droppable: Callable[[Item], bool] = lambda item: False, limit: int = DEFAULT_LIMIT) -> None:
        self.name = name              # who sends, for the log ("relay r1", "the coordinator")
        self.deliver = deliver        # hands one item to Redis; raises RedisError when Redis fails
        self.sleep, self.retry_s, self.droppable, self.limit = sleep, retry_s, droppable, limit
        self._items: deque[Item] = deque()
        self._lock = threading.Lock()
        self._queued = threading.Event()
        self._handing_over = threading.Lock()   # one hand_over at a time: nothing is sent twice from here
        self._dropped = 0                       # items dropped from a full queue since it was last empty

    def put(self, item: Item) -> None:
        """Queue `item` and wake the sender; never waits for Redis."""
        with self._lock:
            self._items.append(item)
            if len(self._items) > self.limit:
                oldest = next((i for i, queued in enumerate(self._items) if self.droppable(queued)), None)
                if oldest is not None:
                    del self._items[oldest]
                    self._dropped += 1
                    if self._dropped == 1:
                        log.error("%s: %d items wait for Redis: the oldest droppable ones are dropped",
                                  self.name, self.limit)
        self._queued.set()

    def run(self, stopping: Callable[[], bool]) -> None:
        """Hand what is queued to Redis as soon as it is queued, until `stopping()`; while Redis fails, try
        again every `retry_s`."""
        failing = False
        while not stopping():
            self._queued.wait(self.retry_s)   # a timeout, so the loop notices `stopping`
            self._queued.clear()
            try:
                self.hand_over()
            except RedisError as error:
                if not failing:
                    log.warning("%s: what it sends waits for Redis: %s", self.name, error)
                failing = True
                self.sleep(self.retry_s)
                self._queued.set()
                continue
            if failing:
                log.info("%s: Redis took what waited", self.name)
            failing = False

    def hand_over(self) -> None:
        """Send what is queued, in order, until the queue is empty. Raises RedisError when Redis fails."""
        with self._handing_over:
            while (head := self._head()) is not None:
                self.deliver(head)
                with self._lock:
                    if self._items and self._items[0] is head:   # unless a full queue dropped it meanwhile
                        self._items.popleft()

    def _head(self) -> Item | None:
        """The oldest item, left in place; None when the queue is empty (items are never None)."""
        with self._lock:
            if self._items:
                return self._items[0]
            self._dropped = 0
            return None
