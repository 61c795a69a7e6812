"""A headless participant's connection, as a browser tab has it: the entry page's session cookie, then
Socket.IO with that cookie (docs/protocol.md).

Threads: the Socket.IO client's reader thread only queues what arrives: server events in `inbox` as
(generation, name, payload), netcode packets to `on_packet`. Each connect and drop starts a new
generation, so what an earlier connection still delivers can be told apart and ignored.

Uses the python-socketio *client* (threaded) and requests; never eventlet.
"""
from __future__ import annotations

import queue
import threading
import urllib.parse
from typing import Any, Callable, Mapping, Sequence

import requests
import socketio

from app.participant.result import _Finished
from app.participant.socket_client import OrderedClient, quietly

DISCONNECT_WAIT_SECONDS = 1.0   # the goodbye is sent at once; the close handshake may finish in the background
SERVER_EVENTS = ("scene", "waiting", "match_start", "seat_changed", "match_end", "error")


class Connection:
    """The HTTP session (`http`, with the cookie the entry page set) and the Socket.IO client of one participant.

    `enter` and `connect` end the run (`_Finished`) when the server refuses or cannot be reached.
    """

    def __init__(self, entry_url: str, server_url: str, params: Mapping[str, str], connect_timeout: float,
                 transports: Sequence[str], on_packet: Callable[[Any], None]) -> None:
        self.entry_url, self.server_url = entry_url, server_url
        self.params = params
        self.connect_timeout = connect_timeout
        self.transports = list(transports)
        self.on_packet = on_packet
        self.http = requests.Session()
        self.inbox: queue.Queue[tuple[int, str, Any]] = queue.Queue()
        self.generation = 0
        self._cookie = ""
        self._sio: OrderedClient | None = None

    def enter(self) -> None:
        """GET the entry page, keeping the session cookie it sets."""
        url = self.entry_url + ("?" + urllib.parse.urlencode(self.params) if self.params else "")
        try:
            response = self.http.get(url, timeout=self.connect_timeout)
        except requests.RequestException as error:
            raise _Finished(f"entry page failed: {error}") from None
        if response.status_code == 403:
            raise _Finished("refused: HTTP 403 (already taken part?)")
        if response.status_code != 200:
            raise _Finished(f"entry page answered HTTP {response.status_code}")
        self._cookie = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)
        if not self._cookie:
            raise _Finished("the entry page set no session cookie")

    def connect(self) -> None:
        """Connect Socket.IO with the session cookie, as a new generation."""
        self.generation += 1
        generation = self.generation
        client = OrderedClient(reconnection=False, handle_sigint=False, request_timeout=self.connect_timeout)

        def forward(name: str) -> Callable[[Any], None]:
            def handler(payload: Any = None) -> None:
                self.inbox.put((generation, name, payload))
            return handler

        for name in SERVER_EVENTS:
            client.on(name, forward(name))
        client.on("packet", self.on_packet)
        client.on("disconnect", lambda *why: self.inbox.put((generation, "disconnect", why[0] if why else None)))
        try:
            client.connect(
                self.server_url, headers={"Cookie": self._cookie}, transports=self.transports,
                wait_timeout=self.connect_timeout,
            )
        except socketio.exceptions.ConnectionError as error:
            raise _Finished(f"connect failed: {error}") from None
        self._sio = client

    def disconnect(self) -> None:
        """Say goodbye (Socket.IO disconnect) without waiting long for the server's close handshake."""
        client, self._sio = self._sio, None
        if client is not None:
            closer = threading.Thread(target=quietly, args=(client.disconnect,), name="disconnect", daemon=True)
            closer.start()
            closer.join(timeout=DISCONNECT_WAIT_SECONDS)
            ws = getattr(client.eio, "ws", None)
            if ws is not None:  # after a server crash the client may still hold the dead socket
                quietly(ws.shutdown)

    def drop(self) -> None:
        """Vanish like a crashed tab: shut the socket down with no Socket.IO or WebSocket goodbye."""
        client, self._sio = self._sio, None
        self.generation += 1
        if client is None:
            return
        ws = getattr(client.eio, "ws", None)
        if ws is not None:
            quietly(ws.shutdown)
        else:
            quietly(lambda: client.eio.disconnect(abort=True))

    def get_json(self, path: str, what: str) -> Any:
        """GET the server's `path` in this session; its JSON body. The run ends when `what` cannot be loaded."""
        try:
            response = self.http.get(self.server_url + path, timeout=self.connect_timeout)
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as error:
            raise _Finished(f"error: cannot load {what}: {error}") from None

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        client = self._sio
        if client is None:
            return
        try:
            client.emit(event, payload)
        except socketio.exceptions.SocketIOError:  # disconnected meanwhile; the run loop notices
            pass

    def close(self) -> None:
        """After the run: the HTTP session's pooled connections."""
        self.http.close()
