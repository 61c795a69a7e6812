"""Transports move encoded packets between addresses; sessions only see this interface.

The server relays over Socket.IO, the browser over worker postMessage, tests over
`MemoryHub` here or the simulated network in `netcode.sim`.
"""
from __future__ import annotations

from collections import deque
from typing import Callable, Protocol, Sequence

from netcode.errors import NetcodeError
from netcode.events import BadPacket


# (sender, data), or (sender, data, arrival time on the session's clock) from a transport that
# stamps packets as they arrive, so round trips do not include the wait for the next tick.
Received = tuple[str, str] | tuple[str, str, float]


class Transport(Protocol):
    def send(self, to: str, data: str) -> None:
        """Queue `data` for the peer at address `to`."""

    def receive(self) -> Sequence[Received]:
        """Every packet that arrived since the last call."""


def receive_all(transport: Transport, handle: Callable[..., None]) -> list[BadPacket]:
    """Hand every received packet to `handle(addr, data[, received_at])`; the ones it refuses
    come back as BadPacket events."""
    refused = []
    for addr, data, *received_at in transport.receive():
        try:
            handle(addr, data, *received_at)
        except NetcodeError as error:
            refused.append(BadPacket(addr, error.code, str(error)))
    return refused


class Network(Protocol):
    """Carries packets between the addresses of one process: `MemoryHub`, `netcode.sim.SimNetwork`."""

    def deliver(self, sender: str, to: str, data: str) -> None:
        """Accept `data` from `sender` for `to`."""

    def take(self, addr: str) -> list[tuple[str, str]]:
        """The (sender, data) packets that have reached `addr` since the last call."""


class Endpoint:
    """One address on a `Network`: the transport a session there is given."""

    def __init__(self, network: Network, addr: str) -> None:
        self.network = network
        self.addr = addr

    def send(self, to: str, data: str) -> None:
        self.network.deliver(self.addr, to, data)

    def receive(self) -> list[tuple[str, str]]:
        return self.network.take(self.addr)


class MemoryHub:
    """Instant, lossless delivery between endpoints in one process."""

    def __init__(self) -> None:
        self._inboxes: dict[str, deque[tuple[str, str]]] = {}

    def endpoint(self, addr: str) -> Endpoint:
        self._inboxes.setdefault(addr, deque())
        return Endpoint(self, addr)

    def deliver(self, sender: str, to: str, data: str) -> None:
        inbox = self._inboxes.get(to)
        if inbox is not None:
            inbox.append((sender, data))

    def take(self, addr: str) -> list[tuple[str, str]]:
        inbox = self._inboxes[addr]
        items = list(inbox)
        inbox.clear()
        return items
