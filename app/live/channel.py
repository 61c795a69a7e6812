"""The match channel's frames and close codes, and what the Hub keeps of an open channel.

A match channel is one WebSocket per seat holder carrying only netcode packets, as text frames
`"<episode> <addr> <data>"` (docs/protocol.md). The transport lives in app/web/match_channel.py
(and app/web/channel_pump.py); a host of matches (the coordinator's Hub, or a relay process's
RelayHost) sees it as a `ChannelLink` and decides everything else, through `ChannelHost`. I/O-free.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from app.live.protocol import MAX_ID_CHARS, MAX_PACKET_CHARS, PacketEvent, ProtocolError
from app.live.ratelimit import RateLimit
from app.live.tickets import Ticket
from game.errors import CoplayError

if TYPE_CHECKING:
    from app.live.match_room import MatchRoom
    from app.live.seat import Seat

CHANNEL_PATH = "/match-ws"   # where the server's own channel endpoint listens
CLOSE_BAD_TICKET = 4401   # bad or expired ticket (the reason says which)
CLOSE_GONE = 4410         # match over, or the seat is no longer this holder's
CLOSE_FLOODING = 1008     # policy violation: over the rate limit for too long
CLOSE_TRY_LATER = 1013    # too many connections just now
MAX_EPISODE_DIGITS = 10


class ChannelLink(Protocol):
    """An open channel's transport; both methods return at once, from any thread."""

    def send(self, text: str) -> None:
        """Queue one text frame."""

    def close(self, code: int, reason: str) -> None:
        """Send what is queued, then close with `code`."""


class ChannelRefused(CoplayError):
    """A channel that may not open, or must close; `close_code` says how it closes."""

    code = "channel_refused"

    def __init__(self, message: str, close_code: int, code: str) -> None:
        super().__init__(message, code=code)
        self.close_code = close_code


@dataclass(eq=False)
class OpenChannel:
    """A channel the Hub accepted: whose seat it carries, and its rate-limit connection id."""

    link: ChannelLink
    ticket: Ticket
    conn: str
    closed: bool = False

    def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.link.close(code, reason)


def parse_frame(raw: object) -> tuple[int, str, str]:
    """(episode, addr, data) of a client frame `"<episode> <addr> <data>"`; ProtocolError when malformed."""
    if type(raw) is not str:
        raise ProtocolError("binary frames are not accepted: send text frames \"<episode> <to> <data>\"")
    parts = raw.split(" ", 2)
    if len(parts) != 3:
        raise ProtocolError("a frame is \"<episode> <to> <data>\", separated by single spaces")
    episode, addr, data = parts
    if not (0 < len(episode) <= MAX_EPISODE_DIGITS and episode.isascii() and episode.isdigit()):
        raise ProtocolError(f"episode must be a decimal int of at most {MAX_EPISODE_DIGITS} digits")
    if not 0 < len(addr) <= MAX_ID_CHARS:
        raise ProtocolError(f"the seat address must be 1 to {MAX_ID_CHARS} characters")
    if not 0 < len(data) <= MAX_PACKET_CHARS:
        raise ProtocolError(f"data must be 1 to {MAX_PACKET_CHARS} characters")
    return int(episode), addr, data


class ChannelHost:
    """The match channels of a host of MatchRooms: accepting one, its frames, its end; written once for
    the coordinator's Hub and a relay process's RelayHost, which give `lock`, `rate_limit`, the two maps
    and the hooks (`_channel_seat`, `now`, `_rate_limited`, `_close_budget`, `_frame_refused`,
    `_frame_relayed`)."""

    lock: Any                              # the host's RLock: every room of the host changes under it
    rate_limit: RateLimit                  # the participants' budgets, shared with their Socket.IO events
    channels: dict[str, OpenChannel]       # participant -> their seat's open channel
    channel_conns: dict[str, OpenChannel]  # rate-limit connection id -> channel

    # ------------------------------------------------------------ hooks
    def _channel_seat(self, ticket: Ticket) -> tuple[MatchRoom, Seat]:
        """The room and seat `ticket` names, while the seat is still its holder's; else ChannelRefused."""
        raise NotImplementedError

    def now(self) -> float:
        raise NotImplementedError

    def _rate_limited(self, conn: str, now: float) -> None:
        """A frame of connection `conn` was refused unread for the rate: tally it, report a flood."""
        raise NotImplementedError

    def _close_budget(self, conn: str) -> None:
        """Connection `conn` is gone: its rate-limit budget ends."""
        raise NotImplementedError

    def _frame_refused(self, channel: OpenChannel, error: ProtocolError) -> None:
        """`channel` sent a frame that changed nothing: tell it `! reason`."""
        raise NotImplementedError

    def _frame_relayed(self) -> None:
        """A frame was relayed (figures to count)."""

    # ------------------------------------------------------------ the channels
    def _accept_channel(self, link: ChannelLink, ticket: Ticket, conn: str) -> OpenChannel:
        """Serve `ticket`'s seat on `link` (a verified ticket, a budget open as `conn`): `ok`, and a channel
        the seat had already closes."""
        old = self.channels.get(ticket.participant)
        if old is not None:
            self._drop_channel(old, CLOSE_GONE, "replaced by a newer channel of this seat")
        channel = self.channels[ticket.participant] = self.channel_conns[conn] = OpenChannel(link, ticket, conn)
        link.send("ok")
        return channel

    def channel_frame(self, channel: OpenChannel, raw: Any) -> bool:
        """One frame an open channel received: charged to its participant's budget, then relayed as a
        `packet` event would be; a refused frame gets `! reason` back. False when refused unread for the
        rate (its reader should pause a moment, as the Socket.IO gate does)."""
        with self.lock:
            return self.channel_frame_locked(channel, raw)

    def channel_frame_locked(self, channel: OpenChannel, raw: Any) -> bool:
        """`channel_frame`, for a caller holding `lock` already (the pump, over a batch of frames)."""
        if channel.closed:
            return True
        now = self.now()
        if not self.rate_limit.charge(channel.conn, now):
            self._rate_limited(channel.conn, now)
            return False
        try:
            room, seat = self._channel_seat(channel.ticket)
        except ChannelRefused as error:
            self._drop_channel(channel, error.close_code, error.message)
            return True
        try:
            episode, to, data = parse_frame(raw)
            room.relay(seat, PacketEvent(room.id, episode, to, data))
        except ProtocolError as error:
            self._frame_refused(channel, error)
            return True
        self._frame_relayed()
        return True

    def channel_closed(self, channel: OpenChannel) -> None:
        """The channel's transport closed (either side); its seat's packets go over Socket.IO again."""
        with self.lock:
            channel.closed = True
            self._forget_channel(channel)

    def _drop_channel(self, channel: OpenChannel, code: int, reason: str) -> None:
        channel.close(code, reason)
        self._forget_channel(channel)

    def _forget_channel(self, channel: OpenChannel) -> None:
        if self.channels.get(channel.ticket.participant) is channel:
            del self.channels[channel.ticket.participant]
        if self.channel_conns.pop(channel.conn, None) is not None:
            self._close_budget(channel.conn)
