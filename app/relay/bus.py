"""What coordinator and relays say to each other through Redis, and the relay registry.

Keys live under `coplay:<experiment id>:` so several studies may share one Redis:

- `relay:<id>`       a live relay's card (JSON: id, url, matches, pid, host, its load figures and its
                     matches' progress, app/relay/load.py), set with a TTL of
                     `HEARTBEAT_TTL_S` and renewed every `HEARTBEAT_S`: a relay whose key expired is dead;
- `relays`           the set of relay ids ever registered (the coordinator prunes the dead);
- `to-relay:<id>`    a list of commands for one relay (start a match, a seat's episode_done, rejoin...);
- `to-coordinator`   a list of the relays' reports (send an event to a seat, a logged event, match end),
                     each numbered by its relay (app/relay/sequence.py);
- `recording:<id>`   a finished match's recording, for the coordinator to fetch (checked by sha256).

Lists, not pub/sub: a message waits in Redis while its reader reconnects, and stays in order.
"""
from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from typing import Any

import redis

from game.errors import CoplayError

HEARTBEAT_S = 1.0
HEARTBEAT_TTL_S = 10.0   # generous: a relay busy past its beat must not be taken for dead
READ_TIMEOUT_S = 1        # a blocking read wakes this often, so its loop can notice it should stop
RECORDING_TTL_S = 24 * 3600
SECRET_ENV = "COPLAY_RELAY_SECRET"
MIN_SECRET_CHARS = 32
INTERRUPTED_MESSAGE = "The game stopped because of a problem on our side."


class RelayError(CoplayError):
    """A relay or coordinator that cannot run as configured (Redis unreachable, no shared secret...)."""

    code = "relay_error"


def relay_secret(environ: Any = os.environ) -> str:
    """The key coordinator and relays sign match-channel tickets with (COPLAY_RELAY_SECRET)."""
    secret = environ.get(SECRET_ENV, "")
    if len(secret) < MIN_SECRET_CHARS:
        raise RelayError(f"set {SECRET_ENV} to the same secret of at least {MIN_SECRET_CHARS} characters for the "
                         "coordinator and every relay (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)")
    return secret


@dataclass(frozen=True)
class RelayCard:
    """A live relay as it registered: where participants reach its match channel, and its load."""

    id: str
    url: str
    matches: int
    pid: int = 0
    host: str = ""
    load: dict[str, Any] = field(default_factory=dict)       # app/relay/load.py `Load`
    statuses: dict[str, Any] = field(default_factory=dict)   # match id -> `match_status`


class Bus:
    """One process's connection to the Redis of a study (`namespace`: the experiment id)."""

    def __init__(self, redis_url: str, namespace: str) -> None:
        try:
            self.redis = redis.Redis.from_url(redis_url, socket_timeout=READ_TIMEOUT_S + 5,
                                              socket_connect_timeout=5, health_check_interval=30)
            self.redis.ping()
        except (redis.RedisError, ValueError) as error:
            raise RelayError(f"cannot reach Redis at {redis_url}: {error}; start redis-server or fix --redis") from None
        self.prefix = f"coplay:{namespace}:"

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # ------------------------------------------------------------ the registry

    def heartbeat(self, card: RelayCard) -> None:
        """Register (or renew) `card`; it expires unless renewed within HEARTBEAT_TTL_S."""
        pipe = self.redis.pipeline()
        pipe.set(self.key("relay", card.id), json.dumps(card.__dict__), px=int(HEARTBEAT_TTL_S * 1000))
        pipe.sadd(self.key("relays"), card.id)
        pipe.execute()

    def leave(self, relay_id: str) -> None:
        """A relay stopping on purpose: gone at once, not after its TTL."""
        self.redis.delete(self.key("relay", relay_id))

    def live_relays(self) -> dict[str, RelayCard]:
        """Every relay whose heartbeat has not expired, by id."""
        ids = sorted(m.decode() if isinstance(m, bytes) else m for m in self.redis.smembers(self.key("relays")))
        if not ids:
            return {}
        cards = {}
        for relay_id, raw in zip(ids, self.redis.mget([self.key("relay", i) for i in ids])):
            if raw is not None:
                cards[relay_id] = RelayCard(**json.loads(raw))
        return cards

    def forget(self, relay_id: str) -> None:
        """A dead relay: out of the set, and its unread commands dropped."""
        self.redis.srem(self.key("relays"), relay_id)
        self.redis.delete(self.key("to-relay", relay_id))

    # ------------------------------------------------------------ messages

    def to_relay(self, relay_id: str, message: dict[str, Any]) -> None:
        self.redis.rpush(self.key("to-relay", relay_id), json.dumps(message))

    def to_coordinator(self, message: dict[str, Any]) -> None:
        self.redis.rpush(self.key("to-coordinator"), json.dumps(message))

    def read(self, queue: str, timeout_s: int = READ_TIMEOUT_S) -> dict[str, Any] | None:
        """The next message of `queue` ("to-coordinator" or "to-relay:<id>"), waiting up to `timeout_s`."""
        got = self.redis.blpop([self.prefix + queue], timeout=timeout_s)
        return None if got is None else json.loads(got[1])

    # ------------------------------------------------------------ recordings

    def put_recording(self, match_id: str, data: bytes) -> None:
        self.redis.set(self.key("recording", match_id), data, ex=RECORDING_TTL_S)

    def take_recording(self, match_id: str) -> bytes | None:
        pipe = self.redis.pipeline()
        pipe.get(self.key("recording", match_id))
        pipe.delete(self.key("recording", match_id))
        data, _ = pipe.execute()
        return data


def this_host() -> str:
    return socket.gethostname()
