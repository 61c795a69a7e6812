"""Every Socket.IO message a client sends, charged to its budget before anything reads it.

The gate takes python-socketio's place as the Engine.IO `message` handler. Left to itself,
python-socketio would hand an event named `connect` or `disconnect` to the connection
handlers (bypassing any limit), log a traceback for every malformed frame, and start a
green thread per event. Here every message of a connected socket first pays `Hub.admit`
(a refused one is dropped unread, and its reader yields for a moment, so a flooder cannot
starve the others); then an event is decoded once and goes to `Hub.handle` whatever its
name; malformed, binary and unexpected packets get an `error` event. python-socketio still
handles the connection itself: the CONNECT packet of a new socket and a client's DISCONNECT.
Engine.IO's own packets below Socket.IO (pong, noop, unknown types) never reach the gate: their
reader yields for a moment after each, for the same reason.
"""
from __future__ import annotations

from typing import Any, Callable

from engineio import packet as eio
from socketio import Server
from socketio import packet as sio

from app.live.hub import Hub

NAMESPACE = "/"
REFUSED_PAUSE_S = 0.001   # a refused message's reader waits this long: a flooder is read at most ~1000 times a second


class SocketGate:
    """The Engine.IO `message` handler of `server`, in front of `hub`."""

    def __init__(self, server: Server, hub: Hub, sleep: Callable[[float], Any]) -> None:
        self.server = server
        self.hub = hub
        self.sleep = sleep
        self.socketio_handler = server.eio.handlers["message"]   # python-socketio's own, for (dis)connections
        self.socketio_connect = server.eio.handlers["connect"]
        server.eio.on("message", self.on_message)
        server.eio.on("connect", self.on_connect)

    def on_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        """A new Engine.IO session: pace the packets it sends below Socket.IO, then let python-socketio in."""
        session = self.server.eio.sockets.get(eio_sid)
        if session is not None:
            session.receive = _paced(session.receive, self.sleep)
        return self.socketio_connect(eio_sid, environ)

    def on_message(self, eio_sid: str, data: str | bytes) -> None:
        sid = self.server.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        if sid is None:
            self._unconnected(eio_sid, data)
        elif not self.hub.admit(sid):
            self.sleep(REFUSED_PAUSE_S)
        elif type(data) is not str:
            self.hub.refuse(sid, "*", "binary", "binary frames are not accepted")
        elif data[:1] == "2":
            self._event(eio_sid, sid, data)
        elif data[:1] == "1":
            self.socketio_handler(eio_sid, data)
        else:
            self.hub.refuse(sid, "*", "malformed", f"unexpected Socket.IO packet {data[:8]!r}: "
                                                   "send events, or disconnect")

    def _event(self, eio_sid: str, sid: str, data: str) -> None:
        try:
            pkt = self.server.packet_class(encoded_packet=data)
        except ValueError:
            self.hub.refuse(sid, "*", "malformed", "malformed frame: not a Socket.IO event")
            return
        args = pkt.data
        if pkt.namespace not in (None, NAMESPACE) or not (type(args) is list and args and type(args[0]) is str):
            self.hub.refuse(sid, "*", "malformed", "malformed event: expected [name, payload] on the default namespace")
            return
        self.hub.handle(args[0], sid, args[1] if len(args) == 2 else args[1:] or None)
        if pkt.id is not None:
            ack = self.server.packet_class(sio.ACK, namespace=NAMESPACE, id=pkt.id, data=[])
            self.server.eio.send(eio_sid, ack.encode())

    def _unconnected(self, eio_sid: str, data: str | bytes) -> None:
        """A socket not connected (yet, or any more: refused, or disconnected by the server) may only
        connect. Anything else closes its Engine.IO session, unread, with what it had buffered."""
        session = self.server.eio.sockets.get(eio_sid)
        if session is None or session.closing or session.closed:
            return   # what was in flight when it closed
        if type(data) is str and data[:1] == "0":
            try:
                pkt = self.server.packet_class(encoded_packet=data)
            except ValueError:
                pass
            else:
                self.socketio_handler(eio_sid, data)
                if self.server.manager.sid_from_eio_sid(eio_sid, pkt.namespace or NAMESPACE) is not None:
                    return   # connected (the researcher's dashboard connects to its own namespace only)
        self.hub.metrics.refused("unconnected")
        session.close(wait=False)
        self.sleep(REFUSED_PAUSE_S)


def _paced(receive: Callable[[Any], Any], sleep: Callable[[float], Any]) -> Callable[[Any], Any]:
    """An Engine.IO session's `receive` that yields for a moment after each packet other than a message."""
    def paced(pkt: Any) -> Any:
        try:
            return receive(pkt)
        finally:
            if pkt.packet_type != eio.MESSAGE:
                sleep(REFUSED_PAUSE_S)
    return paced
