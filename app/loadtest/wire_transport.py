"""The wire-level load generator's transports: the Socket.IO client and the match channel.

`PacketClient` is python-socketio's AsyncClient (on aiohttp) with handlers run in arrival order and a
fast path for the `packet` event. `MatchChannel` is one seat's match channel (the protocol of issue 12:
a WebSocket to the URL `match_start` names, the ticket as its first frame, `ok` back, then
"<episode> <addr> <data>" frames both ways; "! reason" for a refused frame).
"""
from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any, Callable

import aiohttp
import engineio
import socketio

from game.errors import CoplayError

CONNECT_TIMEOUT = 20.0
CHANNEL_OK = "ok"
PACKET_FRAME = '2["packet",'   # a Socket.IO v5 EVENT of the default namespace named "packet"


# ----------------------------------------------------------------------------- Socket.IO client


class _OrderedAsyncEngineIOClient(engineio.AsyncClient):
    """Runs message handlers inline, in arrival order, instead of a task per message (our handlers
    only queue or route, so this is also the cheap way). Overrides a private hook of python-engineio 4.x."""

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "message":
            kwargs["run_async"] = False
        return await super()._trigger_event(event, *args, **kwargs)


class PacketClient(socketio.AsyncClient):
    """python-socketio's AsyncClient with a fast path for the one event sent and received 60 times a
    second: `packet` frames are encoded and decoded here in one json call (Socket.IO v5 text frames of
    the default namespace, `2["packet",{...}]`), not through the generic packet machinery, which
    costs the generator more CPU than the rest of a seat's tick. Everything else goes the usual way."""

    on_packet: Callable[[Any], None] = staticmethod(lambda payload: None)

    def _engineio_client_class(self) -> type:
        return _OrderedAsyncEngineIOClient

    async def emit_packet(self, payload: dict[str, Any]) -> None:
        await self.eio.send(PACKET_FRAME + json.dumps(payload, separators=(",", ":")) + "]")

    async def _handle_eio_message(self, data: Any) -> None:
        if isinstance(data, str) and data.startswith(PACKET_FRAME):
            try:
                payload = json.loads(data[len(PACKET_FRAME):-1])
            except ValueError:
                payload = None
            self.on_packet(payload)
            return
        await super()._handle_eio_message(data)


# ----------------------------------------------------------------------------- the match channel


def channel_url(server_url: str, url: str) -> str:
    """The channel's WebSocket URL: an absolute ws(s):// URL as it is, a path resolved against the server."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        return url
    base = urllib.parse.urlsplit(server_url)
    scheme = "wss" if base.scheme == "https" else "ws"
    return urllib.parse.urlunsplit((scheme, base.netloc, parts.path, parts.query, ""))


class ChannelRefused(CoplayError):
    """The server closed the channel instead of answering `ok` (code and reason in the message)."""

    code = "channel_closed_by_server"


class MatchChannel:
    """One seat's match channel: `open` sends the ticket and waits for `ok`; `send` queues a frame
    (a writer task sends them, so a tick never waits for the network); frames from the server go to
    `on_frame(episode, sender, data)`, refusals ("! reason") to `on_refusal(reason)`."""

    def __init__(self, http: aiohttp.ClientSession, url: str, ticket: str,
                 on_frame: Callable[[int, str, str], None], on_refusal: Callable[[str], None]) -> None:
        self.http, self.url, self.ticket = http, url, ticket
        self.on_frame, self.on_refusal = on_frame, on_refusal
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.closed_with: tuple[int | None, str] | None = None
        self._out: asyncio.Queue[str | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self, timeout: float = CONNECT_TIMEOUT) -> None:
        ws = await self.http.ws_connect(self.url, timeout=aiohttp.ClientWSTimeout(ws_close=5.0), autoping=True)
        await ws.send_str(self.ticket)
        message = await ws.receive(timeout=timeout)
        if message.type != aiohttp.WSMsgType.TEXT or message.data != CHANNEL_OK:
            code = ws.close_code
            await ws.close()
            what = message.data if message.type == aiohttp.WSMsgType.TEXT else message.extra or message.type.name
            raise ChannelRefused(f"match channel refused the ticket (code {code}): {what}")
        self.ws = ws
        self._tasks = [asyncio.ensure_future(self._read()), asyncio.ensure_future(self._write())]

    def send(self, episode: int, to: str, data: str) -> None:
        self._out.put_nowait(f"{episode} {to} {data}")

    async def _write(self) -> None:
        assert self.ws is not None
        while (frame := await self._out.get()) is not None:
            try:
                await self.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                return

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            text: str = message.data
            if text.startswith("! "):
                self.on_refusal(text[2:])
                continue
            episode, sender, data = (text.split(" ", 2) + ["", ""])[:3]
            if episode.isdigit() and sender and data:
                self.on_frame(int(episode), sender, data)
        self.closed_with = (self.ws.close_code, str(self.ws.exception() or ""))

    async def close(self) -> None:
        self._out.put_nowait(None)
        if self.ws is not None:
            await self.ws.close()
        for task in self._tasks:
            task.cancel()

    @property
    def is_open(self) -> bool:
        return self.ws is not None and not self.ws.closed
