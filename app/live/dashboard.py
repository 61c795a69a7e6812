"""What the researcher's dashboard (/admin) shows: one JSON-able dict, built from the Hub and the store.

I/O-free apart from reading the store and the process figures /metrics reads too, so the dashboard
shows nothing that a restart would lose: live state comes from the Hub (sockets, waiting rooms,
running matches), everything else from the store (participants, arrivals, outcomes, events).
`Dashboard.snapshot()` is called about once a second by the server (app/web/admin_routes.py),
which pushes it to every connected admin.
"""
from __future__ import annotations

import math
from collections import Counter, deque
from typing import Any, Callable

from app.live.hub import Hub
from app.live.agents import name_of
from app.live.match_room import MatchRoom
from app.live.seat import AGENT, HELD, HUMAN, Seat
from app.live.metrics import histogram_count, histogram_quantile, process_cpu_seconds, process_resident_bytes

# Event kinds shown under "recent events" (connects, waits and seat moves are too many to be useful there).
NOTABLE_EVENTS = ("client_error", "bot_error", "referee_error", "desync", "desync_settled", "refused",
                  "waiting_timeout", "match_start", "entries_paused", "entries_resumed", "admin_end_match",
                  "admin_end_study", "admin_export", "admin_login")
ERROR_EVENTS = ("client_error", "bot_error", "referee_error")
ADMIN_EVENTS = ("entries_paused", "entries_resumed", "admin_end_match", "admin_end_study", "admin_export",
                "admin_login")
RECENT = 30
RELAY_WINDOW_S = 10.0   # the relay p99 is over the last ~10 s, not since the server started


class Dashboard:
    """Builds snapshots of `hub`; `admission` (by default the hub's admission control's status) says whether
    new matches are admitted, for the health panel."""

    def __init__(self, hub: Hub, admission: Callable[[], dict[str, Any] | None] | None = None) -> None:
        self.hub = hub
        self.admission = admission or hub.admission.status
        self._cpu: tuple[float, float] | None = None          # (monotonic time, cpu seconds) at the last snapshot
        self._relay: deque[tuple[float, list[tuple[float, float]]]] = deque()

    def snapshot(self) -> dict[str, Any]:
        """Everything the dashboard shows, now."""
        hub = self.hub
        with hub.lock:
            live = self._live()
        store = hub.store
        summary = store.study_summary(RECENT)
        by_status: Counter[str] = Counter()
        by_scene: dict[str, Counter[str]] = {}
        for status, scene, n in summary["by_scene"]:
            by_status[status] += n
            by_scene.setdefault(scene or "(ended)", Counter())[status] += n
        experiment = hub.flow.experiment
        coded = {name for name in by_status if _completion_code(experiment, name)}
        return {
            "experiment": experiment.id,
            "at": store.now(),
            "entries": hub.flow.entries.state(),
            "health": self._health(),
            "live": live,
            "participants": {
                "total": sum(by_status.values()),
                "by_status": dict(sorted(by_status.items())),
                "by_scene": {scene: dict(counts) for scene, counts in by_scene.items()},
                "completion_codes": sum(by_status[name] for name in coded),
                "recent": [{"id": p.id, "platform_id": p.platform_id, "status": p.status,
                            "scene": p.plan[p.scene_index] if p.scene_index < len(p.plan) else None,
                            "created_at": p.created_at} for p in summary["recent"]],
            },
            "arrivals": [list(row) for row in summary["arrivals"]],
            "completions": [list(row) for row in summary["completions"]],
            "outcomes": sorted(name for name in by_status if name not in ("active", "completed")),
            "matches_ended": {status: n for status, n in summary["matches"].items() if status != "active"},
            "events": [_event(e) for e in store.recent_events(NOTABLE_EVENTS, RECENT)],
            "errors": [_event(e) for e in store.recent_events(ERROR_EVENTS, RECENT)],
            "actions": [_event(e) for e in store.recent_events(ADMIN_EVENTS, RECENT)],
        }

    def _live(self) -> dict[str, Any]:
        hub, now = self.hub, self.hub.services.now()
        rooms = [{"scene": room.scene_id, "needed": room.needed, "timeout_s": room.timeout_s,
                  "on_timeout": room.on_timeout,
                  "waiting": [{"participant": p, "waited_s": round(now - since, 1)} for p, since in room.waiting.items()]}
                 for room in hub.rooms.values()]
        return {"sockets": len(hub.participant_of), "waiting_rooms": rooms,
                "matches": [_match(room, now) for room in hub.matches.values()],
                "rtt_ms": [round(rtt, 1) for room in hub.matches.values() for rtt in room.rtt_samples]}

    def _health(self) -> dict[str, Any]:
        """CPU (percent of one core since the last snapshot), memory and the relay's p99, as /metrics has them."""
        now, cpu = self.hub.services.now(), process_cpu_seconds()
        cpu_percent = None
        if self._cpu is not None and now > self._cpu[0]:
            cpu_percent = round(100 * (cpu - self._cpu[1]) / (now - self._cpu[0]), 1)
        self._cpu = (now, cpu)
        histogram = self.hub.metrics.relay_seconds   # the histogram GET /metrics shows, read directly
        buckets = sorted((float(sample.labels["le"]), sample.value) for family in histogram.collect()
                         for sample in family.samples if sample.name.endswith("_bucket"))
        self._relay.append((now, buckets))
        while len(self._relay) > 1 and now - self._relay[1][0] >= RELAY_WINDOW_S:
            self._relay.popleft()
        old = dict(self._relay[0][1]) if len(self._relay) > 1 else {}
        recent = [(bound, count - old.get(bound, 0.0)) for bound, count in buckets]
        p99 = histogram_quantile(0.99, recent)
        return {"cpu_percent": cpu_percent, "memory_bytes": process_resident_bytes(),
                "relay_p99_ms": None if math.isnan(p99) else round(p99 * 1000, 3),
                "relayed_packets": histogram_count(histogram),
                "admission": self.admission()}


def _match(room: MatchRoom, now: float) -> dict[str, Any]:
    seats = []
    for seat in room.seats.values():
        ai = seat.ai_info(room.seed)
        runs = None if ai is None else ai["runs"]
        host = room.seats.get(seat.host) if seat.host is not None else None
        if runs == "browser" and (host is None or host.kind != HUMAN or host.gone or host.absent_since is not None):
            runs = "server"   # its host seat is played on the server, and the AI seats it hosts with it
        agent = name_of(seat.participant) if seat.kind == AGENT and seat.participant else None
        seats.append({"addr": seat.addr, "players": list(seat.players), "kind": seat.kind,
                      "participant": None if seat.kind == AGENT else seat.participant,
                      "policy": None if ai is None else ai["policy"], "runs": runs,
                      "host": seat.host if runs == "browser" else None, "agent": agent,
                      "state": _seat_state(seat, runs, host, agent, now),
                      "silent_s": round(now - seat.last_heard, 1) if seat.kind in HELD and not seat.gone else None,
                      "ping_ms": None if seat.ping_ms is None else round(seat.ping_ms, 1)})
    return {"id": room.id, "scene": room.scene_id, "episode": room.episode, "episodes": room.settings.episodes,
            "frame": room.log.complete, "fps": room.settings.fps, "seats": seats,
            "desyncs": len(room.desync_frames), "faults": dict(room.faults),
            "relay": getattr(room, "relay_id", None) or None,   # a relayed match (app/relay/room.py): where it runs
            "rollbacks": None, "stalls": None}   # counted in the peers, which do not report them to the server


def _seat_state(seat: Seat, runs: str | None, host: Seat | None, agent: str | None, now: float) -> str:
    """Who plays the seat now, and where: a participant, an AI on the server, an AI in the browser of the
    participant holding its host seat, or a remote agent."""
    if seat.gone:
        return "gone"
    if seat.absent_since is not None:
        return f"absent {round(now - seat.absent_since)} s (stand-in on the server)"
    if seat.kind == HUMAN:
        return "playing"
    if seat.kind == AGENT:
        return f"remote agent {agent}"
    if runs == "browser" and host is not None:
        return f"AI in the browser of {host.participant} (seat {host.addr})"
    if host is not None:
        return f"AI on the server (its host seat {host.addr} is played there too)"
    return "AI on the server"


def _completion_code(experiment: Any, outcome: str) -> str | None:
    try:
        return experiment.end_scene(outcome).completion_code
    except KeyError:
        return None


def _event(row: dict[str, Any]) -> dict[str, Any]:
    data = row["data"]
    text = ", ".join(f"{k}={_short(v)}" for k, v in data.items()) if isinstance(data, dict) else _short(data)
    return {"id": row["id"], "at": row["at"], "kind": row["kind"], "participant": row["participant_id"],
            "match": row["match_id"], "text": text[:300]}


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:119] + "…"

