"""The match channel's frames and close codes, and what the Hub keeps of an open channel.

A match channel is one WebSocket per seat holder carrying only netcode packets, as text frames
`"<episode> <addr> <data>"` (docs/protocol.md). The transport lives in app/web/match_channel.py;
the Hub sees it as a `ChannelLink` and decides everything else. I/O-free.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.live.protocol import MAX_ID_CHARS, MAX_PACKET_CHARS, ProtocolError
from app.live.tickets import Ticket
from game.errors import CoplayError

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
