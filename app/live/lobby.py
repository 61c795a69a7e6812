"""The Hub's waiting rooms and admission control: who waits for which match, what they are told while
they wait, and when a waiting room may start a match (app/live/waiting.py, app/live/admission.py).

The state (`hub.rooms`, `hub.admission`) stays on the Hub; `Lobby` holds its behaviour.
"""
from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from app.live.admission import BUSY_MESSAGE, Closed, Opened
from app.live.waiting import Held, StartMatch, TimedOut, WaitingRoom
from scenes.match import Match

if TYPE_CHECKING:
    from app.live.hub import Hub

log = logging.getLogger("coplay.server")
WAITING_UPDATE_S = 1.0   # how often the waiting hear how many are present and how long is left


class Lobby:
    """Waiting rooms and admission control, for one Hub (call with its lock held, except `run_lag_probe`
    and `probe_lag`)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._last_waiting_update = 0.0

    def join(self, participant: str, scene: Match) -> None:
        """`participant` is ready for match scene `scene`: they wait in its room (maybe starting a match)."""
        hub = self.hub
        room = hub.rooms.get(scene.id)
        if room is None:
            wait = scene.waiting_room
            room = hub.rooms[scene.id] = WaitingRoom(scene.id, len(scene.humans), wait.timeout_s, wait.on_timeout)
        room.join(participant, hub.services.now())
        hub.store.log_event("waiting", {"scene": scene.id}, participant_id=participant)
        self.poll_room(room)
        if participant in room.waiting:
            self.send_waiting(room, participant)

    def tick(self, now: float) -> None:
        """Run waiting-room timeouts and starts, and tell the waiting how it goes once a second."""
        for room in list(self.hub.rooms.values()):
            self.poll_room(room)
        if now - self._last_waiting_update >= WAITING_UPDATE_S:
            self._last_waiting_update = now
            for room in self.hub.rooms.values():
                for participant in room.waiting:
                    self.send_waiting(room, participant)

    def poll_room(self, room: WaitingRoom) -> None:
        hub = self.hub
        now = hub.services.now()
        for action in room.poll(now, hub.admission.open, hub.admission.settings.max_hold_s,
                                hub.admission.start_budget(now), hub.agent_seats.seatable(room.scene_id)):
            if isinstance(action, StartMatch):
                hub.admission.started(1)
                hub._start_match(room.scene_id, action)
            elif isinstance(action, Held):
                hub.metrics.admission_held_starts.inc(action.matches)
            elif isinstance(action, TimedOut):
                reason = {"reason": action.reason}
                hub.store.log_event("waiting_timeout", {"scene": room.scene_id, **reason},
                                    participant_id=action.participant)
                hub.flow.set_outcome(action.participant, "waiting_timeout", reason)
                hub._send_scene(action.participant)

    def send_waiting(self, room: WaitingRoom, participant: str) -> None:
        hub = self.hub
        sid = hub.sid_of.get(participant)
        if sid is not None:
            index, _ = hub.flow.current(participant)
            seconds_left = round(room.seconds_left(participant, hub.services.now()))
            payload: dict[str, Any] = {"scene": index, "present": len(room.waiting), "needed": room.needed,
                                       "seconds_left": seconds_left}
            if not hub.admission.open or (hub.admission.start_budget(hub.services.now()) < math.inf
                                          and participant in room.grouped()):   # waits for its turn to start
                payload.update(busy=True, message=BUSY_MESSAGE)
            hub.services.emit("waiting", payload, to=sid)

    # ------------------------------------------------------------ admission control

    def run_lag_probe(self) -> None:
        """Measure the server's lag for admission control, forever (a background task)."""
        while True:
            try:
                self.probe_lag()
            except Exception:  # a failing probe must not leave admission stuck: log it and measure on
                log.exception("the admission lag probe failed")
                self.hub.services.sleep(1.0)

    def probe_lag(self) -> None:
        """Sleep one probe interval and feed how late it woke, and the longest relay since, to admission."""
        hub = self.hub
        interval = hub.admission.settings.probe_interval_s
        before = hub.services.now()
        hub.services.sleep(interval)
        woke = hub.services.now()
        with hub.lock:
            change = hub.admission.observe(woke, woke - before - interval, hub.metrics.take_relay_max())
            if change is not None:
                self.admission_changed(change)

    def admission_changed(self, change: Closed | Opened) -> None:
        """Log and record a close or reopen once; tell the waiting, or start the matches held."""
        hub = self.hub
        waiting = sum(len(room.waiting) for room in hub.rooms.values())
        figures = {**change.figures.as_ms(), "max_lag_ms": round(hub.admission.settings.max_lag_s * 1000, 1),
                   "matches": len(hub.matches), "waiting": waiting}
        if isinstance(change, Closed):
            hub.metrics.admission_closes.inc()
            log.warning("%s", closed_message(change, figures))
            cause = {"relays": True} if change.above_s is None else {"above_s": round(change.above_s, 2)}
            hub.store.log_event("admission", {"open": False, **figures, **cause})
        else:
            log.warning("admission reopened after %.1f s (lag %.1f ms; %d matches running, %d waiting)",
                        change.closed_s, figures["lag_ms"], len(hub.matches), waiting)
            hub.store.log_event("admission", {"open": True, **figures, "closed_s": round(change.closed_s, 2)})
        for room in list(hub.rooms.values()):
            self.poll_room(room)   # closed: counts the held starts; open: starts them, in arrival order
            for participant in room.waiting:
                self.send_waiting(room, participant)

    def watch_admission(self) -> None:
        """Serve admission's state and lag figures on GET /metrics."""
        hub = self.hub
        hub.metrics.admission_open.set_function(lambda: float(hub.admission.open))
        for part, read in (("total", lambda: hub.admission.figures.lag_s),
                           ("event_loop", lambda: hub.admission.figures.loop_lag_s),
                           ("relay", lambda: hub.admission.figures.relay_s)):
            hub.metrics.lag_seconds.labels(part).set_function(read)


def closed_message(change: Closed, figures: dict[str, Any]) -> str:
    """The log line of admission closing: this server's lag and for how long, or the relays' (Hub.relays_admit);
    `figures` as `admission_changed` puts them together."""
    lag, limit = figures["lag_ms"], figures["max_lag_ms"]
    if change.above_s is None:
        why = f"every relay lags, the least-lagged one {lag:.1f} ms over {limit:.1f} ms"
    else:
        why = f"lag {lag:.1f} ms over {limit:.1f} ms for {change.above_s:.1f} s"
    return (f"admission closed: new matches wait ({why}: event loop {figures['loop_lag_ms']:.1f} ms, "
            f"relay {figures['relay_ms']:.2f} ms; {figures['matches']} matches running, {figures['waiting']} waiting)")
