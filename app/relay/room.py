"""The coordinator's side: placing matches on relays, and a `RemoteRoom` standing in for each.

`RelayPool.place` is the Hub's match placer (Hub.placer): it puts a new match on the live relay with
the fewest of this coordinator's matches, among those under the lag limit, and returns a
`RemoteRoom`, which the Hub keeps in `matches` and `seat_of` like any room. What the Hub asks of a
room (a seat's episode_done, rejoin, absent, lost, end) goes to the relay as a command; the relay's
reports come back on the coordinator's queue (each once: app/relay/sequence.py) and `RelayPool.handle`
turns them into what the Hub does for an in-process room: emit to the seat (match_start gets a ticket for the relay's channel),
log, end the match and collect its recording.

A relay whose heartbeat expired is dead: `watch` ends its matches as `interrupted` (as a restart
does after a crash, app/live/recovery.py), closes their recordings where the coordinator can reach
them, and places no more matches there. Socket.IO `packet` events of a relayed match are dropped:
its packets go on the relay's channel only (the netcode resends what was not acknowledged).

Admission control sees the relays: `watch` judges each relay's reported lag with an `Admission` of
its own (same settings and hysteresis as the coordinator's); a relay past the limit gets no new
matches, and while every relay is, new matches wait (`Hub.relays_admit`). The relays' figures and
their matches' progress (their heartbeats) reach the dashboard and /metrics.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from redis import RedisError

from app.data.modes import make_folder, open_file
from app.data.recording import recording_path
from app.live.admission import Admission, Closed, Figures, Opened
from app.live.hub import Hub
from app.live.match_room import MatchRoom, MatchSettings
from app.live.seat import Seat
from app.live.protocol import EpisodeDone, PacketEvent
from app.live.recovery import INTERRUPTED, close_interrupted_recording
from app.live.tickets import Tickets
from app.relay.bus import HEARTBEAT_S, INTERRUPTED_MESSAGE, Bus, RelayCard, relay_secret
from app.relay.outbox import Outbox
from app.relay.sequence import Applied, Numbering
from app.relay.wire import seats_out, settings_out

log = logging.getLogger("coplay.server")


class _RecordedByRelay:
    """A relayed match's recording, as the Hub sees it: written by the relay, collected at its end."""

    def close(self) -> None:
        pass


@dataclass(eq=False)
class RemoteRoom(MatchRoom):
    """A match running on relay `relay_id`; its seats mirror the relay's (who holds each, and how)."""

    relay_id: str = ""
    channel_url: str = ""
    pool: Any = None
    placed_at: float = 0.0
    start_message: dict[str, Any] = field(default_factory=dict)

    def start_next_episode(self) -> None:
        if self.episode < 0:
            self.episode = 0
            self.pool.start(self)

    def episode_done(self, seat: Seat, done: EpisodeDone) -> None:
        self.pool.command(self, "episode_done", seat=seat.addr, done=asdict(done))

    def relay(self, sender: Seat, event: PacketEvent) -> None:
        pass   # not refused: a page sends over Socket.IO until its channel says `ok`

    def end(self, reason: str, message: str | None = None) -> None:
        self.pool.command(self, "end", reason=reason, message=message)

    def seat_absent(self, seat: Seat, why: str) -> None:
        self.pool.command(self, "absent", seat=seat.addr, why=why)

    def rejoin(self, seat: Seat) -> None:
        self.pool.command(self, "rejoin", seat=seat.addr)

    def seat_lost(self, seat: Seat, why: str) -> None:
        self.pool.command(self, "lost", seat=seat.addr, why=why)

    def check_seats(self, absent_after_s: float, silent_after_s: float) -> None:
        pass   # the relay checks its seats

    def referee_work(self, max_steps: int) -> bool:
        return False

    def progress(self, status: dict[str, Any] | None, now: float) -> None:
        """Take the match's progress from its relay's heartbeat (app/relay/load.py `match_status`)."""
        if not status:
            return
        self.episode = max(self.episode, status["episode"])
        self.log.complete = status["frame"]
        self.desync_frames = set(status["desync_frames"])
        self.faults = dict(status["faults"])
        self.rtt_samples.clear()
        self.rtt_samples.extend(status["rtt_ms"])
        for addr, seat_status in status["seats"].items():
            seat = self.seats.get(addr)
            if seat is not None:
                seat.ping_ms = seat_status["ping_ms"]
                seat.last_heard = now - seat_status["silent_s"]

    def mirror(self, states: dict[str, dict[str, Any]] | None) -> None:
        """Take the seats' state from a relay's report."""
        now = time.monotonic()
        for addr, state in (states or {}).items():
            seat = self.seats.get(addr)
            if seat is None:
                continue
            seat.kind, seat.participant, seat.gen, seat.gone = state["kind"], state["participant"], state["gen"], \
                state["gone"]
            seat.last_heard = now   # as far as the dashboard knows: the relay judges silence
            if not state["absent"]:
                seat.absent_since = None
            elif seat.absent_since is None:
                seat.absent_since = now


class RelayPool:
    """This coordinator's relayed matches, and the reading of its relays' reports."""

    def __init__(self, bus: Bus, hub: Hub, tickets: Tickets, base_dir: str | None,
                 sleep: Callable[[float], None]) -> None:
        self.bus, self.hub, self.tickets, self.base_dir, self.sleep = bus, hub, tickets, base_dir, sleep
        self.rooms: dict[str, RemoteRoom] = {}
        self.dead: set[str] = set()
        self.origins: tuple[str, ...] = ()   # of the live relays' channels, for the pages' CSP (app/web/security.py)
        self._warned_empty = False
        self.cards: dict[str, RelayCard] = {}          # the live relays at the last look
        self.admissions: dict[str, Admission] = {}     # every relay ever seen: whether it takes new matches
        self.applied = Applied()                       # the reports applied, by relay run: copies are dropped
        self.numbering = Numbering("coordinator")      # of the commands, so that each relay applies each once
        # the commands, sent in order by run_commands: a hung Redis never holds the Hub's lock
        self.outbox: Outbox[tuple[str, dict[str, Any]]] = Outbox(
            "the coordinator", lambda item: self.bus.to_relay(*item), sleep, HEARTBEAT_S)
        hub.metrics.registry.register(_RelayGauges(self))

    def place(self, match_id: str, scene_id: str, settings: MatchSettings, seats: dict[str, Seat],
              header: dict[str, Any], seed: int, game_class: type) -> MatchRoom | None:
        """A RemoteRoom on the least-loaded live relay; None (the Hub runs the match itself) when none is live."""
        cards = {i: c for i, c in self.bus.live_relays().items() if i not in self.dead}
        if not cards:
            if not self._warned_empty:
                log.warning("no live relay: new matches run in the coordinator until one registers")
                self._warned_empty = True
            return None
        self._warned_empty = False
        admitting = {i: c for i, c in cards.items() if i not in self.admissions or self.admissions[i].open}
        cards = admitting or cards   # every relay lags: admission holds new matches (any placed meanwhile go on)
        load = {i: 0 for i in cards}
        for room in self.rooms.values():
            if room.relay_id in load:
                load[room.relay_id] += 1
        card = min(cards.values(), key=lambda c: (load[c.id], c.matches, c.id))
        start = {"type": "start", "match": match_id, "scene": scene_id, "seed": seed, "settings": settings_out(settings),
                 "seats": seats_out(seats), "header": header, "base_dir": self.base_dir}
        room = RemoteRoom(match_id, scene_id, settings, seats, self.hub, _RecordedByRelay(), seed, game_class,
                          relay_id=card.id, channel_url=card.url, pool=self, placed_at=time.monotonic(),
                          start_message=start)
        self.rooms[match_id] = room
        self.hub.store.log_event("match_placed", {"relay": card.id, "url": card.url}, match_id=match_id)
        return room

    def live_count(self) -> int:
        """Relays registered and alive now (GET /health)."""
        try:
            return len(self.bus.live_relays())
        except RedisError:
            return 0

    def start(self, room: RemoteRoom) -> None:
        self.outbox.put((room.relay_id, self.numbering.stamp(room.start_message)))

    def command(self, room: RemoteRoom, kind: str, **fields: Any) -> None:
        if room.id in self.rooms:
            self.outbox.put((room.relay_id, self.numbering.stamp({"type": kind, "match": room.id, **fields})))

    # ------------------------------------------------------------ background tasks

    def run_commands(self) -> None:
        """Hand the commands to the relays' queues as soon as they are given, in order, forever."""
        self.outbox.run(lambda: False)

    def run_reports(self) -> None:
        """Act on the relays' reports, in order, forever."""
        while True:
            try:
                message = self.bus.read("to-coordinator")
            except RedisError as error:   # Redis went away for a moment: keep trying
                log.warning("reading the relays' reports failed: %s", error)
                self.sleep(1.0)
                continue
            if message is None:
                continue
            try:
                self.take(message)
            except Exception:
                log.exception("a relay's report could not be handled: %.300r", message)

    def watch(self) -> None:
        """End the matches of relays whose heartbeat expired, forever."""
        while True:
            self.sleep(HEARTBEAT_S)
            try:
                seen_at = time.monotonic()
                live = self.bus.live_relays()
            except RedisError as error:
                log.warning("reading the relay registry failed: %s", error)
                continue
            newly_dead: set[str] = set()
            with self.hub.lock:
                for room in list(self.rooms.values()):
                    if room.relay_id not in live and room.placed_at < seen_at:
                        if room.relay_id not in self.dead:
                            log.warning("relay %s stopped answering: its matches end as interrupted", room.relay_id)
                            self.dead.add(room.relay_id)
                            newly_dead.add(room.relay_id)
                        self.interrupt(room)
                self.dead -= set(live)   # a relay back under the same id serves again
                self.origins = tuple(sorted({_origin(card.url) for card in live.values()}))
                self.judge(live, seen_at)
            for relay_id in newly_dead:   # out of the registry, its unread commands dropped: Redis, not under the lock
                try:
                    self.bus.forget(relay_id)
                except RedisError as error:
                    log.warning("relay %s: leaving it out of the registry failed: %s", relay_id, error)

    def judge(self, live: dict[str, RelayCard], now: float) -> None:
        """Feed each live relay's lag to its `Admission`, take its matches' progress, and open or close the
        coordinator's admission on whether any relay takes new matches."""
        self.cards = {i: c for i, c in live.items() if i not in self.dead}
        for relay_id, card in self.cards.items():
            admission = self.admissions.get(relay_id)
            if admission is None:
                admission = self.admissions[relay_id] = Admission(self.hub.admission.settings)
            load = card.load
            change = admission.observe(now, load.get("loop_lag_ms", 0.0) / 1000, load.get("relay_ms", 0.0) / 1000)
            if isinstance(change, Closed):
                log.warning("relay %s lags (%.1f ms for %.1f s): no new matches go there", relay_id,
                            change.figures.lag_s * 1000, change.above_s)
            elif isinstance(change, Opened):
                log.warning("relay %s takes new matches again (lag %.1f ms)", relay_id, change.figures.lag_s * 1000)
        for room in self.rooms.values():
            host = self.cards.get(room.relay_id)
            if host is not None:
                room.progress(host.statuses.get(room.id), now)
        judged = [self.admissions[i] for i in self.cards]
        best = min(judged, key=lambda a: a.figures.lag_s, default=None)
        self.hub.admission.relays = self.status()
        self.hub.relays_admit(not judged or any(a.open for a in judged), best.figures if best else Figures())

    def status(self) -> list[dict[str, Any]]:
        """Each live relay's figures and whether it takes new matches (the dashboard's health panel)."""
        return [{"id": i, "url": c.url, "matches": c.matches, "admitting": self.admissions[i].open,
                 "lag_ms": self.admissions[i].figures.as_ms()["lag_ms"], **c.load}
                for i, c in sorted(self.cards.items()) if i in self.admissions]

    # ------------------------------------------------------------ reports

    def take(self, message: dict[str, Any]) -> None:
        """Apply a relay's report, once. An `ended` report's recording is collected first, outside the Hub's
        lock (it may be megabytes from Redis, written and synced to disk), then the report is applied under it."""
        if not self.applied.first_time(message):   # Redis took it late, after its relay sent it again
            log.debug("relay %s: report %s was applied already: dropped", message.get("sender"), message.get("seq"))
            return
        missing = None
        if message["type"] == "ended" and message.get("recording_error"):   # the relay could not read it
            missing = {"error": message["recording_error"]}
        elif message["type"] == "ended" and message.get("sha256"):
            missing = self._collect_recording(message["match"], message["sha256"])
        with self.hub.lock:
            self.handle(message, missing)

    def handle(self, message: dict[str, Any], missing: dict[str, Any] | None) -> None:
        """Apply a relay's report (under the Hub's lock); `missing`: why an `ended` report's recording was
        not collected (None: it was, or there was none)."""
        room = self.rooms.get(message.get("match") or "")
        if missing is not None:
            self.hub.store.log_event("recording_not_collected", missing, match_id=message["match"])
        if room is None:
            if message["type"] == "ended" and message.get("sha256") and missing is None:
                # a relay cut off from Redis ended it late: its copy replaced what the coordinator closed itself
                log.info("match %s: its recording arrived from its relay after the match was interrupted",
                         message["match"])
                self.hub.store.log_event("recording_collected_late", {"sha256": message["sha256"]},
                                         match_id=message["match"])
            return
        room.mirror(message.get("seats"))
        kind = message["type"]
        if kind == "send":
            self._emit(room, message["participant"], message["event"], message["payload"])
        elif kind == "log" and message["kind"] == "refused":
            data = message["data"]
            sid = self.hub.sid_of.get(data["participant"] or "")
            if sid is not None:
                self.hub.refuse(sid, data["event"], "invalid", data["reason"])
        elif kind == "log":
            self.hub.log_event(room, message["kind"], message["data"])
        elif kind == "ended":
            self.rooms.pop(room.id, None)
            if message.get("error"):   # the relay could not start the match
                log.error("match %s could not start on relay %s: %s", room.id, room.relay_id, message["error"])
                self.hub.store.log_event("relay_error", {"relay": room.relay_id, "error": message["error"]},
                                         match_id=room.id)
            if message["reason"] == INTERRUPTED:   # the relay was stopped: as if it had died, recording collected
                self._interrupted(room)
                return
            room.ended, room.end_reason, room.end_message = True, message["reason"], message.get("message")
            self.hub.match_ended(room, message["reason"])

    def _emit(self, room: RemoteRoom, participant: str, event: str, payload: dict[str, Any]) -> None:
        if event == "match_start":
            room.episode = max(room.episode, payload["episode"])   # for the dashboard
        sid = self.hub.sid_of.get(participant)
        if sid is None:
            return
        if event == "match_start":
            ticket = self.tickets.issue(room.id, payload["seat"], participant, payload["gen"])
            payload = {**payload, "channel": {"url": room.channel_url, "ticket": ticket}}
        self.hub.services.emit(event, payload, to=sid)

    def _collect_recording(self, match_id: str, sha256: str) -> dict[str, Any] | None:
        """The relay's recording into the coordinator's data folder, checked by its sha256 (already there
        when the relay writes into the same folder). None once the coordinator has it; otherwise why not (the
        data of a `recording_not_collected` event: the match still ends, the relay keeps its copy)."""
        path = recording_path(self.hub.experiment_dir, match_id)
        try:
            data = self.bus.take_recording(match_id)
            if os.path.exists(path) and _sha256_of(path) == sha256:
                return None
            if data is None or hashlib.sha256(data).hexdigest() != sha256:
                log.error("match %s: its recording did not reach the coordinator intact; it stays on its relay",
                          match_id)
                return {"sha256": sha256}
            make_folder(os.path.dirname(path))
            part = path + ".part"
            fd = open_file(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(part, path)
        except (OSError, RedisError) as error:
            log.error("match %s: collecting its recording failed: %s", match_id, error)
            return {"sha256": sha256, "error": str(error)}
        return None

    def interrupt(self, room: RemoteRoom) -> None:
        """End a dead relay's match as interrupted; its participants go on as the scene's on_interrupted says."""
        path = recording_path(self.hub.experiment_dir, room.id)
        if os.path.exists(path):
            close_interrupted_recording(path, room.id)
        else:
            log.warning("match %s: its recording stays on the dead relay %s's machine", room.id, room.relay_id)
        self.rooms.pop(room.id, None)
        self._interrupted(room)

    def _interrupted(self, room: RemoteRoom) -> None:
        hub = self.hub
        room.ended, room.end_reason, room.end_message = True, INTERRUPTED, INTERRUPTED_MESSAGE
        hub.metrics.matches_ended.labels(INTERRUPTED).inc()
        hub.store.end_match(room.id, INTERRUPTED)
        hub.matches.pop(room.id, None)
        hub.ended_matches.append(room.id)
        choices: dict[str, str | None] = {}
        for seat in room.seats.values():
            participant = seat.participant
            if participant is None or hub.seat_of.get(participant, (None,))[0] is not room:
                continue
            del hub.seat_of[participant]
            try:
                choices[participant] = hub.flow.match_interrupted(participant, room.scene_id, room.id)
            except (LookupError, ValueError) as error:
                log.error("match %s: participant %s cannot go on: %s", room.id, participant, error)
                choices[participant] = "error"
            sid = hub.sid_of.get(participant)
            if sid is not None:
                hub.services.emit("match_end", {"match": room.id, "reason": INTERRUPTED,
                                                "message": INTERRUPTED_MESSAGE}, to=sid)
                hub.services.emit("scene", hub.flow.scene_payload(participant), to=sid)
        hub.store.log_event("match_interrupted", {"relay": room.relay_id, "participants": choices}, match_id=room.id)


class _RelayGauges:
    """The relays' figures in the coordinator's /metrics, labelled by relay id (read from the last heartbeats)."""

    def __init__(self, pool: RelayPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        pool = self.pool
        gauges = {
            "up": GaugeMetricFamily("coplay_relay_up", "1 while the relay's heartbeat is live, 0 once it expired.",
                                    labels=["relay"]),
            "admitting": GaugeMetricFamily("coplay_relay_admitting", "1 while the relay takes new matches, 0 while "
                                           "it lags past the limit.", labels=["relay"]),
            "matches": GaugeMetricFamily("coplay_relay_matches", "Matches running on the relay.", labels=["relay"]),
            "lag": GaugeMetricFamily("coplay_relay_lag_seconds", "The relay's event-loop lag plus relay time, as "
                                     "admission control judges it.", labels=["relay"]),
            "p99": GaugeMetricFamily("coplay_relay_p99_seconds", "The relay's 99th percentile time to relay one "
                                     "packet, over its last heartbeat.", labels=["relay"]),
            "packets": GaugeMetricFamily("coplay_relay_packets_per_second", "Packets the relay relayed per second.",
                                         labels=["relay"]),
            "cpu": GaugeMetricFamily("coplay_relay_cpu_ratio", "The relay process's CPU use (1 = one core).",
                                     labels=["relay"]),
        }
        for relay_id, admission in sorted(pool.admissions.items()):
            card = pool.cards.get(relay_id)
            gauges["up"].add_metric([relay_id], float(card is not None))
            if card is None:
                continue
            load = card.load
            gauges["admitting"].add_metric([relay_id], float(admission.open))
            gauges["matches"].add_metric([relay_id], float(card.matches))
            gauges["lag"].add_metric([relay_id], admission.figures.lag_s)
            for key, name, scale in (("p99", "relay_p99_ms", 1000), ("packets", "packets_per_s", 1),
                                     ("cpu", "cpu_percent", 100)):
                if load.get(name) is not None:
                    gauges[key].add_metric([relay_id], load[name] / scale)
        yield from gauges.values()

    def describe(self) -> Iterator[Metric]:
        return iter(())


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def attach(hub: Hub, redis_url: str, namespace: str, base_dir: str | None, spawn: Callable[..., Any],
           sleep: Callable[[float], None]) -> RelayPool:
    """Make `hub` place new matches on the relays registered in Redis under `namespace` (the experiment id)."""
    pool = RelayPool(Bus(redis_url, namespace), hub, Tickets(relay_secret()), base_dir, sleep)
    hub.placer = pool.place
    spawn(pool.run_reports)
    spawn(pool.run_commands)
    spawn(pool.watch)
    return pool
