"""The server's state and the handling of every socket event, free of Flask and eventlet.

`Hub` keeps who is connected, the waiting rooms and the running matches. The server
module feeds it socket events and a periodic `tick`; the Hub answers through the
injected `emit`, starts background work with `spawn` and waits with `sleep`, so the
same logic runs under eventlet, gevent or threads, and in tests.

The Hub holds the state and dispatches; each part of its work has a module of its own:
app/live/lobby.py (waiting rooms, admission control), app/live/match_setup.py (a new match's seats
and settings), app/live/seating.py (match ends, seat changes, participants back after either) and
app/live/agent_seats.py (remote agents' connections and seats). The match channels' part is here.
"""
from __future__ import annotations

import itertools
import logging
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from app.live.agent_seats import AgentSeats
from app.live.agents import AgentPool, is_agent
from app.live.admission import DEFAULT_ADMISSION, Admission, AdmissionSettings, Figures
from app.live.bots import BotPeer
from app.live.channel import (
    CHANNEL_PATH, CLOSE_FLOODING, CLOSE_GONE, CLOSE_TRY_LATER, ChannelHost, ChannelLink, ChannelRefused, OpenChannel,
)
from app.live.flow import Flow
from app.live.lobby import Lobby
from app.live.log_text import log_text
from app.live.match_room import MatchHost, MatchRoom
from app.live.seat import HUMAN, Seat
from app.live.match_setup import match_settings, seats_for
from app.live.metrics import Metrics
from app.live.recovery import close_interrupted_matches
from app.live.protocol import (
    ProtocolError, parse_advance, parse_client_error, parse_episode_done, parse_packet, parse_ready,
)
from app.live.ratelimit import DEFAULT_BUDGET, RATE_LIMITED, Budget, RateLimit, Report
from app.live.tickets import Ticket, TicketError, Tickets
from app.data.recording import RecordingWriter, make_header, recording_path
from app.live.seating import END_MESSAGES, Seating
from app.live.waiting import StartMatch, WaitingRoom
from scenes.match import Match

log = logging.getLogger("coplay.server")
SILENT_AFTER_S = 10.0   # no first packet of an episode from a human seat for this long: its holder is absent
ABSENT_AFTER_S = 1.0    # packets from a human seat stopped this long ago: a stand-in plays it, partners go on
LATE_TICK_S = 0.5       # a tick this late means the server itself stalled: packets may be waiting unread
# In a relayed match the server decides when a seat is gone (and gives it to an AI, or ends
# the match); a peer's own timeout must not fire first, or the peers' inputs would diverge.
PEER_TIMEOUT_MS = (SILENT_AFTER_S + 20) * 1000
REFEREE_STEPS = 256   # frames a match's referee re-simulates before it lets the relay run again
AGENT_EVENTS = ("packet", "episode_done", "agent_meta")   # what a remote agent's connection may send


@dataclass
class Services:
    """What the Hub needs from the outside world."""

    emit: Callable[..., None]                 # emit(event, payload, to=sid)
    disconnect: Callable[[str], None]         # close a socket by sid
    spawn: Callable[..., Any]                 # start a background task
    sleep: Callable[[float], None]
    now: Callable[[], float]                  # seconds, monotonic
    resolve_game: Callable[[Any], type]       # a Match scene's `game` -> class
    game_source: Callable[[type], str]        # the source text recorded with a match
    make_policy: Callable[..., Any]           # make_policy(spec, player, action_space, env, seed) -> policy
    game_spec: Callable[[Any], str]           # a Match scene's `game` -> a spec any process here can load
    metrics: Metrics = field(default_factory=Metrics)  # the figures GET /metrics serves


class Hub(MatchHost, ChannelHost):
    """Every connected participant, waiting room and match of one experiment."""

    def __init__(self, flow: Flow, experiment_dir: str, services: Services, relay_delay_s: float = 0.0,
                 budget: Budget = DEFAULT_BUDGET, admission: AdmissionSettings = DEFAULT_ADMISSION,
                 tickets: Tickets | None = None, channel_url: str = CHANNEL_PATH,
                 agents: AgentPool | None = None) -> None:
        self.flow = flow
        self.relay_delay_s = relay_delay_s
        self.store = flow.store
        self.experiment_dir = experiment_dir
        self.services = services
        self.lock = threading.RLock()
        self.sid_of: dict[str, str] = {}
        self.participant_of: dict[str, str] = {}
        self.rate_limit = RateLimit(budget)
        self.agent_seats = AgentSeats(self)   # the parts of the Hub's work with a module each
        self.lobby = Lobby(self)
        self.seating = Seating(self)
        self._handlers: dict[str, Callable[[str, Any], None]] = {
            "advance": self._advance, "ready": self._ready, "packet": self._packet,
            "episode_done": self._episode_done, "client_error": self._client_error, "agent_meta": self.agent_seats.meta}
        self.agents = agents if agents is not None else AgentPool()   # remote agents' tokens and connections
        self.rooms: dict[str, WaitingRoom] = {}
        self.matches: dict[str, MatchRoom] = {}
        self.seat_of: dict[str, tuple[MatchRoom, Seat]] = {}
        self.ended_matches: deque[str] = deque(maxlen=1024)
        self.settling: set[str] = set()   # matches whose referee task is running
        self._last_tick = services.now()
        self.tickets = tickets            # None: match_start offers no match channel
        self.channel_url = channel_url
        # Places a new match on a relay process (app/relay/room.py), or None: it runs here.
        self.placer: Callable[..., MatchRoom | None] | None = None
        self.channels: dict[str, OpenChannel] = {}        # participant -> their seat's open channel
        self.channel_conns: dict[str, OpenChannel] = {}   # rate-limit connection id -> channel
        self._channel_ids = itertools.count()
        self.metrics = services.metrics
        self.metrics.channels_open.set_function(lambda: len(self.channels))
        self._by_socketio = self.metrics.packets_by_path.labels("socketio")
        self.metrics.sockets_connected.set_function(lambda: len(self.participant_of))
        self.metrics.matches_active.set_function(lambda: len(self.matches))
        self.admission = Admission(admission)
        self.lobby.watch_admission()
        interrupted = close_interrupted_matches(flow)  # matches a crash of the previous server left running
        self.metrics.matches_ended.labels("interrupted").inc(len(interrupted))

    # ------------------------------------------------------------ connections

    def connect(self, participant: str, sid: str) -> bool:
        """Seat a new socket of `participant`; False, changing nothing, when the participant has
        connected too often just now (its socket should be refused)."""
        with self.lock:
            if not self.rate_limit.open(sid, participant, self.services.now()):
                self.metrics.refused("connect_rate")
                return False
            old = self.sid_of.get(participant)
            if old is not None and old != sid:
                self.participant_of.pop(old, None)
                self._close_budget(old)
                self.services.disconnect(old)
            self.sid_of[participant] = sid
            self.participant_of[sid] = participant
            self.metrics.connected(participant)
            self.store.log_event("connect", {"sid": sid}, participant_id=participant)
            self.seating.reconnected(participant, sid, had_socket=old is not None)
            self._send_scene(participant)
            return True

    def disconnect(self, sid: str) -> None:
        with self.lock:
            if is_agent(self.participant_of.get(sid)):
                self.agent_seats.disconnected(sid)
                return
            self.metrics.socket_disconnects.inc()
            self._close_budget(sid)
            participant = self.participant_of.pop(sid, None)
            if participant is None or self.sid_of.get(participant) != sid:
                return
            del self.sid_of[participant]
            self.store.log_event("disconnect", {"sid": sid}, participant_id=participant)
            for room in self.rooms.values():
                room.leave(participant)
            seated = self.seat_of.get(participant)
            if seated is not None:
                match_room, seat = seated
                match_room.seat_absent(seat, "disconnected")

    # ------------------------------------------------------------ client events

    def admit(self, sid: str) -> bool:
        """Charge one incoming message of socket `sid` (any event, or a malformed frame) to its
        budget, before anything else is done with it. False: refuse it unread (the Hub tallies it,
        reports a flood at most once a second, and disconnects a socket flooding for too long)."""
        with self.lock:
            now = self.services.now()
            if self.rate_limit.charge(sid, now):
                return True
            self._rate_limited(sid, now)
            return False

    def _rate_limited(self, sid: str, now: float) -> None:
        self.metrics.refused(RATE_LIMITED)
        report = self.rate_limit.report(sid, now)
        if report is not None:
            self._report_refusals(sid, report)

    def handle(self, event: str, sid: str, payload: Any) -> None:
        """Dispatch one admitted client event; a refused one gets an `error` event and changes nothing."""
        with self.lock:
            handler = self._handlers.get(event)
            try:
                participant = self.participant_of.get(sid)
                if participant is None:
                    raise ProtocolError("this connection has no participant; reload the page")
                if handler is None:
                    raise ProtocolError(f"unknown event {event!r}")
                if is_agent(participant) and event not in AGENT_EVENTS:
                    raise ProtocolError(f"an agent connection sends only {', '.join(AGENT_EVENTS)}")
                handler(participant, payload)
                self.metrics.event(event)
            except ProtocolError as error:
                self.metrics.event(event, refused=True)
                self.refuse(sid, event, "invalid" if handler else "unknown_event", str(error))

    def refuse(self, sid: str, event: str, why: str, message: str) -> None:
        """Tell socket `sid` its `event` ("*" when unknown) was refused; tallied under `why`, a word
        of a bounded set (metrics label), and logged with the others of its burst, never alone."""
        with self.lock:
            now = self.services.now()
            self.metrics.refused(why)
            self._tell_refused(sid, event, message)
            self.rate_limit.refused(sid, why, now, f"{event[:40]}: {message[:160]}")
            report = self.rate_limit.report(sid, now)
            if report is not None:
                self._report_refusals(sid, report)

    def _report_refusals(self, sid: str | None, report: Report) -> None:
        """One log line and one database event for a burst of refusals; the socket, if given, is told
        about a rate limit, and disconnected when the report says so."""
        counts = ", ".join(f"{why} {n}" for why, n in sorted(report.counts.items()))
        log.warning("participant %s: %d events refused in %.1f s (%s)%s%s", report.participant, report.total,
                    report.seconds, counts, f"; the first: {report.example!r}" if report.example else "",
                    "; disconnected for flooding" if report.disconnect else "")
        self.store.log_event("refused", {"counts": report.counts, "seconds": report.seconds, "first": report.example,
                                         "disconnected": report.disconnect}, participant_id=report.participant)
        if sid is None or RATE_LIMITED not in report.counts:
            return
        budget = self.rate_limit.budget
        reason = f"too many events: at most {budget.rate:g} per second ({report.counts[RATE_LIMITED]} refused)"
        if report.disconnect:
            reason = f"disconnected: more than {budget.rate:g} events per second for over " \
                     f"{budget.disconnect_after_s:g} s"
        self._tell_refused(sid, "*", reason)
        if report.disconnect:
            channel = self.channel_conns.get(sid)
            if channel is not None:
                self._drop_channel(channel, CLOSE_FLOODING, reason)
            else:
                self.services.disconnect(sid)

    def _tell_refused(self, conn: str, event: str, reason: str) -> None:
        """An `error` event on a socket, or `! reason` on a match channel."""
        channel = self.channel_conns.get(conn)
        if channel is not None:
            channel.link.send(f"! {reason}")
        else:
            self.services.emit("error", {"event": event, "reason": reason}, to=conn)

    def _close_budget(self, sid: str) -> None:
        report = self.rate_limit.close(sid, self.services.now())
        if report is not None:
            self._report_refusals(None, report)

    def _advance(self, participant: str, payload: Any) -> None:
        index, data = parse_advance(payload)
        self.flow.advance(participant, index, data)
        self._send_scene(participant)

    def _ready(self, participant: str, payload: Any) -> None:
        index = parse_ready(payload)
        scene = self.flow.expect_match(participant, index)
        seated = self.seat_of.get(participant)
        if seated is not None and seated[1].participant == participant:
            seated[0].rejoin(seated[1])   # back (reconnect, reload) while their seat is held
            return
        if seated is not None:
            raise ProtocolError("already in a match")
        self.lobby.join(participant, scene)

    def _packet(self, participant: str, payload: Any) -> None:
        event = parse_packet(payload)
        if participant not in self.seat_of and event.match in self.ended_matches:
            return  # in flight when the match ended: expected, and harmless to drop
        room, seat = self._seat(participant)
        room.relay(seat, event)
        self._by_socketio.inc()

    def _episode_done(self, participant: str, payload: Any) -> None:
        done = parse_episode_done(payload)
        room, seat = self._seat(participant)
        room.episode_done(seat, done)

    def _client_error(self, participant: str, payload: Any) -> None:
        message, traceback = parse_client_error(payload)
        self.metrics.client_errors.inc()
        seated = self.seat_of.get(participant)
        match = seated[0].id if seated else None
        log.warning("participant %s reported an error%s: %s | %s", participant,
                    f" in match {match}" if match else "", log_text(message), log_text(traceback, 4000))
        self.store.log_event("client_error", {"message": message, "traceback": traceback},
                             participant_id=participant, match_id=match)
        if seated is not None and seated[1].participant == participant:
            seated[0].seat_lost(seated[1], "client_error")   # the game failed in their page: no point holding it

    def _seat(self, participant: str) -> tuple[MatchRoom, Seat]:
        seated = self.seat_of.get(participant)
        if seated is None or seated[1].participant != participant:
            raise ProtocolError("you are not playing in a match")
        return seated

    # ------------------------------------------------------------ match channels

    def open_channel(self, link: ChannelLink, ticket_text: Any) -> OpenChannel:
        """Accept a match channel whose first frame was `ticket_text`: it is told `ok`, and from now on
        carries its seat's packets both ways. Raises TicketError (close 4401) or ChannelRefused (close
        with its `close_code`), having changed nothing. A second channel of the seat closes the first."""
        with self.lock:
            try:
                if self.tickets is None:
                    raise ChannelRefused("this server offers no match channel", CLOSE_GONE, "gone")
                ticket = self.tickets.verify(ticket_text)
                self._channel_seat(ticket)
                conn = f"channel-{next(self._channel_ids)}"
                if not self.rate_limit.open(conn, ticket.participant, self.services.now()):
                    self.metrics.refused("connect_rate")
                    raise ChannelRefused("too many connections just now: send packets over Socket.IO, or try "
                                         "again in a few seconds", CLOSE_TRY_LATER, "connect_rate")
            except (TicketError, ChannelRefused) as error:
                self.metrics.channel_opens.labels(error.code).inc()
                raise
            self.metrics.channel_opens.labels("ok").inc()
            return self._accept_channel(link, ticket, conn)

    def _frame_refused(self, channel: OpenChannel, error: ProtocolError) -> None:
        self.metrics.event("packet", refused=True)
        self.refuse(channel.conn, "packet", "invalid", str(error))

    def _frame_relayed(self) -> None:
        self.metrics.packet_relayed("channel")

    def _channel_seat(self, ticket: Ticket) -> tuple[MatchRoom, Seat]:
        """The room and seat `ticket` names, while the seat is still its holder's; else ChannelRefused."""
        seated = self.seat_of.get(ticket.participant)
        if seated is None or seated[0].id != ticket.match or seated[0].ended:
            raise ChannelRefused(f"match {ticket.match} is over for this participant", CLOSE_GONE, "gone")
        seat = seated[1]
        if seat.addr != ticket.seat or seat.participant != ticket.participant or seat.gen != ticket.gen:
            raise ChannelRefused(f"seat {ticket.seat} of match {ticket.match} is no longer this ticket's "
                                 "holder's: send `ready` for a fresh ticket", CLOSE_GONE, "gone")
        return seated

    def _close_stale_channel(self, participant: str | None, reason: str) -> None:
        channel = self.channels.get(participant) if participant else None
        if channel is not None:
            try:
                self._channel_seat(channel.ticket)
            except ChannelRefused:
                self._drop_channel(channel, CLOSE_GONE, reason)

    # ------------------------------------------------------------ time

    def tick(self) -> None:
        """Run waiting-room timeouts, waiting updates and silence checks; call a few times a second."""
        with self.lock:
            now = self.services.now()
            self.lobby.tick(now)
            late, self._last_tick = now - self._last_tick > LATE_TICK_S, now
            if late:
                return   # seats look silent after a server stall; judge them at the next tick, packets read
            for match in list(self.matches.values()):
                match.check_seats(ABSENT_AFTER_S, SILENT_AFTER_S)
            for sid, report in self.rate_limit.due(now):
                self._report_refusals(sid, report)

    def run_lag_probe(self) -> None:
        """Measure the server's lag for admission control, forever (a background task)."""
        self.lobby.run_lag_probe()

    def probe_lag(self) -> None:
        """Sleep one probe interval and feed how late it woke, and the longest relay since, to admission."""
        self.lobby.probe_lag()

    def relays_admit(self, accepting: bool, figures: Figures) -> None:
        """Whether any relay still takes new matches (app/relay/room.py): when none does, new matches wait as
        when this server lags; `figures` are the least-lagged relay's."""
        with self.lock:
            change = self.admission.gate(self.services.now(), accepting, figures)
            if change is not None:
                self.lobby.admission_changed(change)

    def _send_scene(self, participant: str) -> None:
        sid = self.sid_of.get(participant)
        if sid is not None:
            self.services.emit("scene", self.flow.scene_payload(participant), to=sid)

    # ------------------------------------------------------------ matches

    def _start_match(self, scene_id: str, start: StartMatch) -> None:
        scene = self.flow.experiment.scene_by_id(scene_id)
        assert isinstance(scene, Match), f"waiting rooms open only on match scenes, not {scene_id!r}"
        game_class = self.services.resolve_game(scene.game)
        seats = seats_for(scene, start.participants)
        settings = match_settings(scene, game_class(scene.config), self.services.game_spec(scene.game), PEER_TIMEOUT_MS)
        seed = secrets.randbelow(1 << 31)
        self.agent_seats.seat(seats, settings.fill_policy)
        seat_info = {a: s.info(seed) for a, s in seats.items()}
        match_id = self.store.create_match(scene_id, seat_info, seed)
        path = recording_path(self.experiment_dir, match_id)
        header = make_header(
            match=match_id, experiment=self.flow.experiment.id, scene=scene_id, created_at=self.store.now(),
            game=settings.game, game_source=self.services.game_source(game_class), config=settings.config,
            players=list(settings.players), seats=seat_info, netcode=settings.netcode, fps=settings.fps,
        )
        room = self.placer(match_id, scene_id, settings, seats, header, seed, game_class) if self.placer else None
        if room is None:
            room = MatchRoom(match_id, scene_id, settings, seats, self, RecordingWriter(path, header), seed,
                             game_class, metrics=self.metrics)
        self.matches[match_id] = room
        self.metrics.matches_started.inc()
        for waited in start.waited_s:
            self.metrics.waiting_seconds.observe(waited)
        for seat in seats.values():
            if seat.participant is not None:
                self.seat_of[seat.participant] = (room, seat)
            if seat.participant is not None and seat.kind == HUMAN:
                self.store.add_match_participant(match_id, seat.participant, seat.addr, list(seat.players))
        self.store.log_event("match_start", {"seats": seat_info, "filled_with_ai": start.fill_with_ai},
                             match_id=match_id)
        room.start_next_episode()

    # MatchHost: what a MatchRoom asks of the server.

    def send(self, seat: Seat, event: str, payload: dict[str, Any]) -> None:
        participant = seat.participant
        if participant is None:
            return
        if event == "packet":
            if self.relay_delay_s > 0:
                self.services.spawn(self._deliver_later, participant, payload)
            else:
                self._deliver(participant, payload)
            return
        sid = self.sid_of.get(participant)
        if sid is None:
            return
        if event == "match_start" and self.tickets is not None:
            ticket = self.tickets.issue(payload["match"], seat.addr, participant, seat.gen)
            payload = {**payload, "channel": {"url": self.channel_url, "ticket": ticket}}
        self.services.emit(event, payload, to=sid)

    def _deliver(self, participant: str, payload: dict[str, Any]) -> None:
        """A relayed packet to its seat's holder: on their match channel when one is open, else over Socket.IO."""
        channel = self.channels.get(participant)
        if channel is not None:
            channel.link.send(f"{payload['episode']} {payload['from']} {payload['data']}")
            return
        sid = self.sid_of.get(participant)
        if sid is not None:
            self.services.emit("packet", payload, to=sid)

    def _deliver_later(self, participant: str, payload: dict[str, Any]) -> None:
        self.services.sleep(self.relay_delay_s)
        with self.lock:
            self._deliver(participant, payload)

    def start_bot(self, room: MatchRoom, seat: Seat, preload: dict[str, list[Any]] | None) -> BotPeer:
        bot = BotPeer(room, seat, self.services.make_policy, self.services.now, preload)
        self.services.spawn(self._run_bot, room, bot)
        return bot

    def _run_bot(self, room: MatchRoom, bot: BotPeer) -> None:
        while not bot.stopped and not room.ended:
            with self.lock:
                try:
                    bot.run_due(self.services.now())
                except Exception as error:  # a policy or game bug must not take the server down
                    log.exception("AI seat %s of match %s failed", bot.seat.addr, room.id)
                    self.store.log_event("bot_error", {"seat": bot.seat.addr, "error": repr(error)}, match_id=room.id)
                    room.end("error")
                    return
            self.services.sleep(bot.schedule.delay(self.services.now()))

    def settle(self, room: MatchRoom) -> None:
        if room.id not in self.settling:
            self.settling.add(room.id)
            self.services.spawn(self._run_referee, room)

    def _run_referee(self, room: MatchRoom) -> None:
        """Re-simulate a match's confirmed inputs a chunk at a time, yielding to the relay in between."""
        while True:
            with self.lock:
                try:
                    more = room.referee_work(REFEREE_STEPS)
                except Exception as error:  # a game bug must not take the server down
                    log.exception("the referee of match %s failed", room.id)
                    self.store.log_event("referee_error", {"error": repr(error)}, match_id=room.id)
                    room.end("error")
                    more = False
                if not more:
                    self.settling.discard(room.id)
                    return
            self.services.sleep(0)

    def match_ended(self, room: MatchRoom, reason: str) -> None:
        self.seating.match_ended(room, reason)

    def log_event(self, room: MatchRoom, kind: str, data: dict[str, Any]) -> None:
        self.seating.log_event(room, kind, data)

    def now(self) -> float:
        return self.services.now()

    # ------------------------------------------------------------ remote agents (app/live/agent_seats.py)

    def agent_connect(self, sid: str, token: Any) -> None:
        """Accept socket `sid` as a connection of the agent whose token `token` is (AgentSeats.connect)."""
        self.agent_seats.connect(sid, token)

    # ------------------------------------------------------------ researcher actions (app/web/admin_routes.py)

    def end_match(self, match_id: str, reason: str, message: str | None) -> bool:
        """End a running match with `reason`, telling its participants `message`; False if it is not running."""
        with self.lock:
            room = self.matches.get(match_id)
            if room is None:
                return False
            room.end(reason, message)
            return True

    def end_study(self, participant: str, outcome: str, data: dict[str, Any]) -> None:
        """End `participant`'s study with `outcome` (their seat, if any, goes to an AI or its match ends) and
        show them the outcome's page."""
        with self.lock:
            self.flow.set_outcome(participant, outcome, data)
            for room in self.rooms.values():
                room.leave(participant)
            seated = self.seat_of.pop(participant, None)
            if seated is not None and seated[1].participant == participant:
                self.send(seated[1], "match_end", {"match": seated[0].id, "reason": outcome,
                                                   "message": END_MESSAGES["study_ended"]})
                seated[0].seat_lost(seated[1], outcome)
            self._send_scene(participant)

