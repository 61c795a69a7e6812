"""Relay processes coordinated through Redis (docs/scaling.md).

The coordinator (today's server) places each new match on the least-loaded live relay and keeps a
`RemoteRoom` standing in for it (room.py); a relay process (process.py) serves the match channel
and runs the real `MatchRoom`s through its `RelayHost` (worker.py). They talk over Redis lists
and a registry of heartbeats (bus.py).
"""
