"""The blocking wrapper of an `Agent` (app.agent.client), for code that is not async:

    with connect(URL, token=TOKEN).sync() as agent:
        for step in agent.steps():
            agent.act(choose(step.observations), meta={"message": "..."})

The agent's event loop runs in a thread of its own; calls are handed to it and wait for the result.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Iterator, Mapping

from app.agent.client import Agent, MatchRecord, Step


class SyncAgent:
    """`Agent` with blocking methods: open/close (or `with`), steps, act, play."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="coplay-agent", daemon=True)

    def __enter__(self) -> SyncAgent:
        self.open()
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def open(self) -> None:
        self._thread.start()
        try:
            self._call(self.agent.open())
        except BaseException:
            self._stop()
            raise

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self.agent.close())
            self._stop()

    def steps(self, matches: int | None = None) -> Iterator[Step]:
        stream = self.agent.steps(matches)
        while True:
            try:
                yield self._call(stream.__anext__())
            except StopAsyncIteration:
                return

    def act(self, actions: Mapping[str, Any] | Any, meta: Mapping[str, Any] | None = None) -> None:
        future = asyncio.run_coroutine_threadsafe(self._act(actions, meta), self._loop)
        future.result()

    def play(self, matches: int | None = None) -> list[MatchRecord]:
        return self._call(self.agent.play(matches))

    async def _act(self, actions: Mapping[str, Any] | Any, meta: Mapping[str, Any] | None) -> None:
        self.agent.act(actions, meta)

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()
