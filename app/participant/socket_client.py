"""A headless participant's connection: relayed packets routed to the episode's MatchClient,
a Socket.IO client that handles events in arrival order, and the match channel."""
from __future__ import annotations

import threading
import urllib.parse
from typing import Any, Callable

import engineio
import socketio
import websocket

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


# ----------------------------------------------------------------------------- the match channel

CHANNEL_OPEN_TIMEOUT_S = 3.0   # a channel not `ok` by then is given up: packets stay on Socket.IO


def channel_url(server_url: str, url: str) -> str:
    """match_start's channel URL (a path, or an absolute ws:// / wss:// URL) resolved against the server's."""
    if url.startswith(("ws://", "wss://")):
        return url
    parts = urllib.parse.urlsplit(server_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urllib.parse.urlunsplit((scheme, parts.netloc, url, "", ""))


class MatchChannel:
    """One match channel (docs/protocol.md), opened on its own thread with match_start's URL and ticket.

    Frames from the server go to `on_packet` as `packet` payloads; `send` returns False until the
    server said `ok` (the caller sends over Socket.IO instead). When it closes, `on_closed(code, reason,
    was_ready)` is called once, unless `close` or `abort` closed it."""

    def __init__(self, server_url: str, spec: dict[str, Any], match: str, headers: list[str],
                 on_packet: Callable[[dict[str, Any]], None], on_closed: Callable[[int | None, str, bool], None]) -> None:
        self.url = channel_url(server_url, str(spec.get("url", "")))
        self.ticket = str(spec.get("ticket", ""))
        self.match = match
        self.headers = headers
        self.on_packet = on_packet
        self.on_closed = on_closed
        self.ready = False
        self.ended = False   # closed by us
        self.refusals: list[str] = []
        self.ws: websocket.WebSocket | None = None
        self._thread = threading.Thread(target=self._run, name="match-channel", daemon=True)
        self._thread.start()

    def send(self, packet: dict[str, Any]) -> bool:
        ws = self.ws
        if not self.ready or ws is None:
            return False
        try:
            ws.send(f"{packet['episode']} {packet['to']} {packet['data']}")
        except (websocket.WebSocketException, OSError):
            return False
        return True

    def close(self) -> None:
        """Say goodbye (close code 1000)."""
        self.ended, self.ready = True, False
        ws = self.ws
        if ws is not None:
            quietly(lambda: ws.close(timeout=0.5))

    def abort(self) -> None:
        """Vanish with no goodbye, like a crashed tab."""
        self.ended, self.ready = True, False
        ws = self.ws
        if ws is not None:
            quietly(ws.shutdown)

    def _run(self) -> None:
        code: int | None = None
        reason = ""
        was_ready = False
        try:
            ws = websocket.create_connection(self.url, timeout=CHANNEL_OPEN_TIMEOUT_S, header=self.headers,
                                             enable_multithread=True)
            self.ws = ws
            if self.ended:
                return
            ws.send(self.ticket)
            while True:
                opcode, frame = ws.recv_data(control_frame=False)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code, reason = _close_status(frame)
                    break
                text = frame.decode("utf-8", "replace")
                if self.ready:
                    self._frame(text)
                elif text == "ok":
                    ws.settimeout(None)
                    self.ready = was_ready = True
                else:
                    raise websocket.WebSocketException(f"the server answered {text!r:.80} instead of ok")
        except (websocket.WebSocketException, OSError) as error:
            reason = str(error)
        finally:
            self.ready = False
            if not self.ended:
                self.ended = True
                self.on_closed(code, reason, was_ready)
            if self.ws is not None:
                quietly(self.ws.shutdown)

    def _frame(self, text: str) -> None:
        if text.startswith("! "):
            if len(self.refusals) < 100:
                self.refusals.append(text[2:])
            return
        parts = text.split(" ", 2)
        if len(parts) == 3 and parts[0].isdigit():
            self.on_packet({"match": self.match, "episode": int(parts[0]), "from": parts[1], "data": parts[2]})


def _close_status(frame: bytes) -> tuple[int | None, str]:
    if len(frame) < 2:
        return None, ""
    return int.from_bytes(frame[:2], "big"), frame[2:].decode("utf-8", "replace")


def quietly(action: Callable[[], Any]) -> None:
    """Run a closing action whose failure only means the connection is already gone."""
    try:
        action()
    except Exception:  # noqa: BLE001 - closing a dead socket may raise anything; nothing to do about it
        pass
