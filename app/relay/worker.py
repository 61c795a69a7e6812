"""A relay process's matches: the real `MatchRoom`s, hosted here instead of in the coordinator's Hub.

`RelayHost` is the `MatchHost` of every room the coordinator placed on this relay. Packets come
and go on the match channel (the same endpoint and frames as the coordinator's, app/web/match_channel.py);
everything else a room says to a seat (match_start, seat_changed, match_end...) and every event it
logs goes to the coordinator as a report, with the seats' new state. The coordinator's commands
(start a match, a seat's episode_done, rejoin, absent, lost, end) arrive on this relay's queue.
Recordings are written here, durably, and handed to the coordinator at match end with their sha256.

Each heartbeat carries the relay's load (its lag, measured as the coordinator's admission control
measures its own, relay time, packets per second, CPU) and its matches' progress (app/relay/load.py).
A relay cut off from Redis for nearly as long as its card lives (`CUT_OFF_S`) knows the coordinator
is about to take it for dead: it ends its matches as `interrupted` itself, keeping their recordings
durable here, and hands the recordings and its reports over once Redis answers again.

Every report and recording goes to Redis through one ordered queue (app/relay/outbox.py), sent by one
green thread (`run_sender`), so nothing waits for Redis under the relay's lock and a hung Redis never
stalls the matches. A match's end is one item: the sender reads its recording once, hands it over, then
sends the `ended` report that names its sha256, so reading and hashing a long recording never holds the
lock either. A full queue drops its oldest plain reports, never a match's end. Reports are numbered
(app/relay/sequence.py): one Redis took late, after its relay sent it again, is applied once; the
coordinator's commands are numbered the same way and applied here once.
"""
from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
import time
from typing import Any, Callable

from redis import RedisError

from app.data.recording import RecordingWriter, recording_path
from app.live.bots import BotPeer
from app.live.admission import DEFAULT_ADMISSION
from app.live.channel import CLOSE_FLOODING, CLOSE_GONE, CLOSE_TRY_LATER, ChannelHost, ChannelLink, ChannelRefused, OpenChannel
from app.live.hub import ABSENT_AFTER_S, REFEREE_STEPS, SILENT_AFTER_S
from app.live.match_room import MatchRoom
from app.live.seat import Seat
from app.live.metrics import Metrics, process_cpu_seconds
from app.live.protocol import EpisodeDone, ProtocolError
from app.live.ratelimit import DEFAULT_BUDGET, RateLimit
from app.live.recovery import INTERRUPTED
from app.live.tickets import Ticket, Tickets
from app.relay.bus import HEARTBEAT_S, HEARTBEAT_TTL_S, INTERRUPTED_MESSAGE, Bus, RelayCard, this_host
from app.relay.load import LoadMeter, match_status
from app.relay.outbox import Outbox
from app.relay.sequence import Applied, Numbering
from app.relay.wire import seat_states, seats_in, settings_in
from game.env import default_action_for
from game.loader import GameLoader
from scenes.ai_seat import as_ai_seat
from scenes.policies import Bot

log = logging.getLogger("coplay.relay")
TICK_S = 0.25
CUT_OFF_S = HEARTBEAT_TTL_S - 2 * HEARTBEAT_S   # ends its matches before the coordinator sees its card expire


class RelayHost(ChannelHost):
    """Every match of one relay process. `spawn(fn, *args)` starts a green thread, `sleep(s)` yields."""

    def __init__(self, bus: Bus, relay_id: str, url: str, experiment_dir: str, tickets: Tickets,
                 spawn: Callable[..., Any], sleep: Callable[[float], None]) -> None:
        self.bus, self.id, self.url = bus, relay_id, url
        self.experiment_dir = experiment_dir
        self.tickets = tickets
        self.spawn, self.sleep = spawn, sleep
        self.lock = threading.RLock()
        self.rooms: dict[str, MatchRoom] = {}
        self.channels: dict[str, OpenChannel] = {}        # participant -> their seat's open channel
        self.channel_conns: dict[str, OpenChannel] = {}   # rate-limit connection id -> channel
        self.rate_limit = RateLimit(DEFAULT_BUDGET)
        self._conn_ids = itertools.count()
        self._settling: set[str] = set()
        self._policies: dict[str, Callable[..., Bot]] = {}   # match -> its make_policy (BotPeer)
        self.stopping = False
        self.metrics = Metrics()   # one for all this relay's rooms: its /metrics and the heartbeat's figures
        self.load = LoadMeter(self.metrics)
        self._beat_ok_at = time.monotonic()      # the last heartbeat Redis took
        # ("ended", (match id, report)) and ("report", message), sent by run_sender; full, it drops old reports
        self.outbox: Outbox[tuple[str, Any]] = Outbox(f"relay {relay_id}", self._hand_over, sleep, HEARTBEAT_S,
                                                      droppable=_plain_report)
        self.numbering = Numbering(relay_id)    # of the reports, so that the coordinator applies each once
        self.applied = Applied()                # the coordinator's commands applied: copies are dropped

    # ------------------------------------------------------------ loops (green threads)

    def run_commands(self) -> None:
        """Carry out the coordinator's commands, in order, until stopped."""
        queue = f"to-relay:{self.id}"
        while not self.stopping:
            try:
                message = self.bus.read(queue)
            except RedisError as error:   # Redis went away for a moment: keep trying
                log.warning("relay %s: reading commands failed: %s", self.id, error)
                self.sleep(1.0)
                continue
            if message is None or not self.applied.first_time(message):   # a copy Redis took late
                continue
            with self.lock:
                try:
                    self.command(message)
                except Exception as error:   # one bad command must not stop the relay
                    log.exception("relay %s: command %s failed", self.id, message.get("type"))
                    if message.get("type") == "start":   # the match cannot run here: it ends as an error
                        self._tell({"type": "ended", "match": message.get("match"), "reason": "error",
                                                 "message": None, "sha256": "", "seats": None,
                                                 "error": repr(error)[:300]})

    def run_ticks(self) -> None:
        """The silence checks of every seat (as the coordinator's Hub.tick does in-process), and ending every
        match once cut off from Redis for `CUT_OFF_S`."""
        while not self.stopping:
            with self.lock:
                for room in list(self.rooms.values()):
                    room.check_seats(ABSENT_AFTER_S, SILENT_AFTER_S)
                if self.rooms and time.monotonic() - self._beat_ok_at > CUT_OFF_S:
                    self.cut_off()
            self.sleep(TICK_S)
        self.shut_down()

    def run_heartbeats(self) -> None:
        """Renew the card with the relay's load every HEARTBEAT_S."""
        while not self.stopping:
            with self.lock:
                now = time.monotonic()
                card = RelayCard(self.id, self.url, len(self.rooms), os.getpid(), this_host(),
                                 self.load.take(now, process_cpu_seconds()).as_dict(),
                                 {match: match_status(room, now) for match, room in self.rooms.items()})
            try:
                self.bus.heartbeat(card)   # blocks up to the socket timeout while Redis hangs
                self._beat_ok_at = time.monotonic()
            except RedisError as error:   # missed beats expire the card: see run_ticks
                log.warning("relay %s: heartbeat failed: %s", self.id, error)
            self.sleep(HEARTBEAT_S)

    def run_lag_probe(self) -> None:
        """Measure this relay's lag as admission control measures the server's, for the heartbeat."""
        interval = DEFAULT_ADMISSION.probe_interval_s
        while not self.stopping:
            before = time.monotonic()
            self.sleep(interval)
            with self.lock:
                self.load.sample(time.monotonic() - before - interval)

    def cut_off(self) -> None:
        """Redis has not answered for CUT_OFF_S: the coordinator is about to end our matches as interrupted, so
        end them here first (their recordings stay on this disk until Redis answers again)."""
        log.warning("relay %s: cut off from Redis for %.0f s: its %d matches end as interrupted; their recordings "
                    "stay in %s and go to the coordinator once Redis answers", self.id,
                    time.monotonic() - self._beat_ok_at, len(self.rooms), self.experiment_dir)
        for room in list(self.rooms.values()):
            room.end(INTERRUPTED, INTERRUPTED_MESSAGE)

    def run_sender(self) -> None:
        """Hand the queued recordings and reports to Redis as soon as they are queued (app/relay/outbox.py)."""
        self.outbox.run(lambda: self.stopping)

    def hand_over(self) -> None:
        """Send what is queued, in order, until none is left. Raises RedisError when Redis fails."""
        self.outbox.hand_over()

    def _hand_over(self, item: tuple[str, Any]) -> None:
        kind, what = item
        if kind == "ended":
            self._hand_over_ended(*what)
        else:
            self.bus.to_coordinator(what)

    def _hand_over_ended(self, match_id: str, report: dict[str, Any]) -> None:
        """A match's recording, read once (outside the relay's lock), then its `ended` report naming the
        recording's sha256; when it cannot be read, the report says why (`recording_error`), and the
        coordinator logs recording_not_collected."""
        try:
            with open(recording_path(self.experiment_dir, match_id), "rb") as file:
                data = file.read()
        except OSError as error:
            log.error("relay %s: match %s: its recording cannot be read: %s", self.id, match_id, error)
            self.bus.to_coordinator({**report, "sha256": "", "recording_error": str(error)})
            return
        self.bus.put_recording(match_id, data)
        self.bus.to_coordinator({**report, "sha256": hashlib.sha256(data).hexdigest()})
        log.info("relay %s: match %s: its recording was handed over", self.id, match_id)

    def shut_down(self) -> None:
        """Stopping on purpose: every match ends as interrupted (recordings handed over), then leave and exit."""
        try:
            with self.lock:
                for room in list(self.rooms.values()):
                    room.end(INTERRUPTED, INTERRUPTED_MESSAGE)
            self.hand_over()
            self.bus.leave(self.id)
            log.info("relay %s: stopped", self.id)
        except Exception as error:   # Redis went first (the coordinator's private one): recordings stay here
            log.warning("relay %s: stopped without telling the coordinator (%s)", self.id, error)
        finally:
            os._exit(0)   # eventlet's hub and server threads hold nothing left to save

    # ------------------------------------------------------------ the coordinator's commands

    def command(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "start":
            self.start_match(message)
            return
        room = self.rooms.get(message["match"])
        if room is None:
            return   # over already: the coordinator hears of its end on its queue
        seat = room.seats[message["seat"]] if "seat" in message else None
        try:
            if kind == "episode_done" and seat is not None:
                room.episode_done(seat, EpisodeDone(**message["done"]))
            elif kind == "rejoin" and seat is not None:
                room.rejoin(seat)
            elif kind == "absent" and seat is not None:
                room.seat_absent(seat, message["why"])
            elif kind == "lost" and seat is not None:
                room.seat_lost(seat, message["why"])
            elif kind == "end":
                room.end(message["reason"], message.get("message"))
        except ProtocolError as error:
            if seat is not None:
                self._report(room, "refused", {"seat": seat.addr, "participant": seat.participant,
                                               "event": kind, "reason": str(error)})

    def start_match(self, message: dict[str, Any]) -> None:
        resolve = GameLoader(message.get("base_dir"))
        game_class = resolve(message["settings"]["game"])
        settings = settings_in(message["settings"], game_class)
        seats = seats_in(message["seats"])
        match_id = message["match"]
        recording = RecordingWriter(recording_path(self.experiment_dir, match_id), message["header"])

        def make_policy(spec: Any, player: str, action_space: Any, env: Any, seed: int) -> Bot:
            return Bot(as_ai_seat(spec).resolve(resolve), player=player, action_space=action_space,
                       default_action=default_action_for(env, player), seed=seed)

        self._policies[match_id] = make_policy
        room = MatchRoom(match_id, message["scene"], settings, seats, self, recording, message["seed"], game_class,
                         metrics=self.metrics)
        self.rooms[match_id] = room
        log.info("relay %s: match %s started (%d running)", self.id, match_id, len(self.rooms))
        room.start_next_episode()

    # ------------------------------------------------------------ MatchHost

    def send(self, seat: Seat, event: str, payload: dict[str, Any]) -> None:
        participant = seat.participant
        if participant is None:
            return
        if event == "packet":
            channel = self.channels.get(participant)
            if channel is not None:
                channel.link.send(f"{payload['episode']} {payload['from']} {payload['data']}")
            return   # no channel open: the netcode resends everything unacknowledged once it is
        room = self.rooms.get(payload.get("match", ""))
        self._tell({"type": "send", "match": payload.get("match"), "seat": seat.addr,
                                 "participant": participant, "event": event, "payload": payload,
                                 "seats": seat_states(room.seats) if room else None})

    def start_bot(self, room: MatchRoom, seat: Seat, preload: dict[str, list[Any]] | None) -> BotPeer:
        bot = BotPeer(room, seat, self._policies[room.id], time.monotonic, preload)
        self.spawn(self._play, room, bot)
        return bot

    def _play(self, room: MatchRoom, bot: BotPeer) -> None:
        while not (bot.stopped or room.ended):
            with self.lock:
                ok, _ = self._guarded(room, "bot_error", bot.run_due, time.monotonic())
                if not ok:
                    return
            self.sleep(bot.schedule.delay(time.monotonic()))

    def settle(self, room: MatchRoom) -> None:
        if room.id not in self._settling:
            self._settling.add(room.id)
            self.spawn(self._referee, room)

    def _referee(self, room: MatchRoom) -> None:
        more = True
        while more:
            with self.lock:
                ok, more = self._guarded(room, "referee_error", room.referee_work, REFEREE_STEPS)
                more = ok and bool(more)
                if not more:
                    self._settling.discard(room.id)
            self.sleep(0)

    def _guarded(self, room: MatchRoom, kind: str, work: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """(True, `work(*args)`); a game or policy bug ends the match as "error" instead of the relay: (False, None)."""
        try:
            return True, work(*args)
        except Exception as error:
            log.exception("relay %s: %s in match %s", self.id, kind, room.id)
            self.log_event(room, kind, {"error": repr(error)})
            room.end("error")
            return False, None

    def match_ended(self, room: MatchRoom, reason: str) -> None:
        room.recording.close()
        self.rooms.pop(room.id, None)
        self._policies.pop(room.id, None)
        for seat in room.seats.values():
            channel = self.channels.get(seat.participant or "")
            if channel is not None and channel.ticket.match == room.id:
                self._drop_channel(channel, CLOSE_GONE, f"match {room.id} is over")
        report = {"type": "ended", "match": room.id, "reason": reason, "message": room.end_message,
                  "seats": seat_states(room.seats)}
        self.outbox.put(("ended", (room.id, self.numbering.stamp(report))))   # sha256 added as it is sent
        log.info("relay %s: match %s ended (%s; %d running)", self.id, room.id, reason, len(self.rooms))

    def log_event(self, room: MatchRoom, kind: str, data: dict[str, Any]) -> None:
        self._report(room, kind, data)
        if kind == "seat_changed":
            channel = self.channels.get(data.get("participant") or "")
            if channel is not None and channel.ticket.match == room.id:
                self._drop_channel(channel, CLOSE_GONE, f"seat {data.get('seat')} changed holder")

    def _report(self, room: MatchRoom, kind: str, data: dict[str, Any]) -> None:
        self._tell({"type": "log", "match": room.id, "kind": kind, "data": data,
                                 "seats": seat_states(room.seats)})

    def now(self) -> float:
        return time.monotonic()

    def _tell(self, message: dict[str, Any]) -> None:
        """A report to the coordinator, numbered and queued for run_sender: never waits for Redis."""
        self.outbox.put(("report", self.numbering.stamp(message)))

    # ------------------------------------------------------------ match channels (app/web/match_channel.py)

    def open_channel(self, link: ChannelLink, ticket_text: Any) -> OpenChannel:
        """As Hub.open_channel: the ticket (signed with the secret shared with the coordinator), then `ok`."""
        with self.lock:
            ticket = self.tickets.verify(ticket_text)
            self._channel_seat(ticket)
            conn = f"channel-{next(self._conn_ids)}"
            if not self.rate_limit.open(conn, ticket.participant, time.monotonic()):
                raise ChannelRefused("too many connections just now: try again in a few seconds",
                                     CLOSE_TRY_LATER, "connect_rate")
            return self._accept_channel(link, ticket, conn)

    # ChannelHost hooks
    def _channel_seat(self, ticket: Ticket) -> tuple[MatchRoom, Seat]:
        room = self.rooms.get(ticket.match)
        if room is None or room.ended:
            raise ChannelRefused(f"match {ticket.match} is over (or not on this relay)", CLOSE_GONE, "gone")
        seat = room.seats.get(ticket.seat)
        if seat is None or seat.participant != ticket.participant or seat.gen != ticket.gen:
            raise ChannelRefused(f"seat {ticket.seat} of match {ticket.match} is no longer this ticket's holder's: "
                                 "send `ready` for a fresh ticket", CLOSE_GONE, "gone")
        return room, seat

    def _rate_limited(self, conn: str, now: float) -> None:
        report = self.rate_limit.report(conn, now)
        channel = self.channel_conns.get(conn)
        if report is not None and report.disconnect and channel is not None:
            self._drop_channel(channel, CLOSE_FLOODING, "too many frames for too long")

    def _close_budget(self, conn: str) -> None:
        self.rate_limit.close(conn, time.monotonic())

    def _frame_refused(self, channel: OpenChannel, error: ProtocolError) -> None:
        channel.link.send(f"! {error}")


def _plain_report(item: tuple[str, Any]) -> bool:
    """Whether a full queue may drop `item`: a report, but neither a match's end nor an `ended` report."""
    kind, what = item
    return kind == "report" and what["type"] != "ended"
