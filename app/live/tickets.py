"""Signed, short-lived tickets that open a match channel (docs/protocol.md, "The match channel").

A ticket names one seat of one match as its holder had it when the ticket was issued: match id,
seat address, participant and the seat's holder generation. The server signs it with its secret key
(itsdangerous); anyone holding it may open the channel within `max_age_s`, and the Hub checks at
opening that the seat is still that holder's. I/O-free: the clock is injected.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from game.errors import CoplayError

TICKET_SALT = "coplay.match-channel"
TICKET_MAX_AGE_S = 60
MAX_TICKET_CHARS = 512


class TicketError(CoplayError, ValueError):
    """A ticket that opens nothing: forged, garbled, or for another server."""

    code = "bad_ticket"


class TicketExpired(TicketError):
    """A ticket older than its lifetime."""

    code = "ticket_expired"


@dataclass(frozen=True)
class Ticket:
    match: str
    seat: str
    participant: str
    gen: int


class Tickets:
    """Issues and verifies tickets signed with `secret_key`; `clock` is seconds since the epoch."""

    def __init__(self, secret_key: str | bytes, max_age_s: int = TICKET_MAX_AGE_S,
                 clock: Callable[[], float] = time.time) -> None:
        if not secret_key:
            raise ValueError("a ticket signer needs a non-empty secret key")
        self.max_age_s = max_age_s

        class Signer(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

        self._serializer = URLSafeTimedSerializer(secret_key, salt=TICKET_SALT, signer=Signer)

    def issue(self, match: str, seat: str, participant: str, gen: int) -> str:
        return self._serializer.dumps([match, seat, participant, gen])

    def verify(self, text: Any) -> Ticket:
        """The ticket `text` carries; TicketExpired or TicketError when it opens nothing."""
        if not isinstance(text, str) or not 0 < len(text) <= MAX_TICKET_CHARS:
            raise TicketError(f"a ticket is a text frame of at most {MAX_TICKET_CHARS} characters, "
                              "as match_start's channel.ticket gives it")
        try:
            fields = self._serializer.loads(text, max_age=self.max_age_s)
        except SignatureExpired:
            raise TicketExpired(f"the ticket is older than {self.max_age_s} s; send `ready` again "
                                "for a fresh one") from None
        except BadSignature:
            raise TicketError("the ticket's signature is not this server's; use the ticket of the "
                              "latest match_start") from None
        if not (isinstance(fields, list) and len(fields) == 4 and all(type(f) is str for f in fields[:3])
                and type(fields[3]) is int):
            raise TicketError("the ticket is signed but malformed")
        return Ticket(fields[0], fields[1], fields[2], fields[3])
