"""A headless participant's connection: relayed packets routed to the episode's MatchClient,
and a Socket.IO client that handles events in arrival order."""
from __future__ import annotations

import threading
import urllib.parse
from typing import Any

import engineio
import socketio

from netcode.client import MatchClient

MAX_STASHED_PACKETS = 4096   # packets kept for an episode whose match_start has not been handled yet

# ----------------------------------------------------------------------------- packet routing


class PacketRouter:
    """Hands relayed packets (on the Socket.IO reader thread) to the current episode's
    `MatchClient`; stashes those of an episode whose `match_start` is not handled yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: MatchClient | None = None
        self._stash: dict[tuple[str, int], list[tuple[str, str]]] = {}
        self._stashed = 0

    def route(self, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        key = (payload.get("match"), payload.get("episode"))
        sender, data = payload.get("from"), payload.get("data")
        if not isinstance(sender, str) or not isinstance(data, str):
            return
        with self._lock:
            current = self._current
            if current is not None and key == (current.match, current.episode):
                current.receive(sender, data)
            elif self._stashed < MAX_STASHED_PACKETS and isinstance(key[0], str) and isinstance(key[1], int):
                # The peer may start an episode before we have handled its match_start.
                self._stash.setdefault(key, []).append((sender, data))  # type: ignore[arg-type]
                self._stashed += 1

    def attach(self, client: MatchClient | None) -> None:
        with self._lock:
            self._current = client
            if client is not None:
                for sender, data in self._stash.pop((client.match, client.episode), []):
                    client.receive(sender, data)
                # Anything stashed for other episodes is stale by now.
                self._stash.clear()
                self._stashed = 0


# ----------------------------------------------------------------------------- Socket.IO client


class OrderedEngineIOClient(engineio.Client):
    """Runs message handlers on the reader thread, in arrival order.

    The stock client starts a thread per message, so a `scene` and the `match_start`
    right after it may be handled out of order. Our handlers only enqueue, so running
    them inline is cheap. (Overrides a private hook of python-engineio 4.x.)
    """

    def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "message":
            kwargs["run_async"] = False
        return super()._trigger_event(event, *args, **kwargs)


class OrderedClient(socketio.Client):
    def _engineio_client_class(self) -> type:
        return OrderedEngineIOClient


def split_url(base_url: str) -> tuple[str, str, dict[str, str]]:
    """(entry page URL without query, Socket.IO server URL, query parameters already in base_url)."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{base_url!r} is not an http(s) URL")
    path = parts.path.rstrip("/")
    entry = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path + "/", "", ""))
    server = urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    params = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    return entry, server, params
