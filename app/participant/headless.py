"""A headless participant: walks an experiment's whole flow over the real socket protocol.

It does what a browser does (docs/protocol.md): GET the entry page keeping the session
cookie, connect Socket.IO with that cookie, answer every scene, fetch `/bundle.json`
before the first match (and start only games it names), and play matches with
the very client the browser worker runs (`netcode.client.MatchClient`), relaying its
packets through the server. An AI seat it hosts (match_start's `local_ai`) plays with the
seat's policy, as the worker plays it; an ONNX model of the bundle with CPython onnxruntime. The load tester starts many of them; end-to-end tests use
them as scripted participants (drop mid-match, reload to prove resume).

Threads: the Socket.IO client's reader thread only queues what arrives (scene events
in the connection's inbox, app/participant/connection.py; netcode packets in the matching
episode's MatchClient). Everything else, scenes and the fixed-timestep match loop, runs in
the thread that calls `run()`, so the session and env are touched by one thread only.
What the run saw goes into a ParticipantResult (app/participant/result.py).

Uses the python-socketio *client* (threaded) and requests; never eventlet.
"""
from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from app.participant.answers import Policy, PolicyFn, generate_answers
from app.participant.bundle_models import BundleModels
from app.participant.connection import Connection
from app.participant.socket_client import MatchChannel, PacketRouter, split_url
from app.participant.link import ShapedLink
from app.participant.result import SEAT_TAKEN_OVER, ParticipantResult, _Finished, crash_reason, match_record
from game.adapters.onnx_policy import ONNX_PREFIX
from game.env import default_action_for
from game.loader import LoadError, load_class
from game.paced_policy import PacedPolicy, local_ai
from game.rng import Rng
from netcode.client import MatchClient
from netcode.errors import NetcodeError
from netcode.scheduler import FixedStep

EventCallback = Callable[[str, Any], None]

NONFATAL_ERROR_EVENTS = ("packet",)  # a refused packet (e.g. racing a match_end) does not end the run
BUNDLE_PATH = "/bundle.json"
RTT_SAMPLE_SECONDS = 0.5     # how often a playing participant samples its relay round trip (netcode ping)
MAX_RTT_SAMPLES = 5000       # per participant


@dataclass
class _Episode:
    client: MatchClient
    policy: Policy
    started: float
    schedule: FixedStep             # the episode's fixed-step ticks (netcode.scheduler)
    reported: bool = False          # episode_done sent
    first_frame_at: float | None = None
    desyncs_taken: int = 0          # of client.desyncs, already in the result
    next_rtt_sample: float = 0.0    # monotonic time of the next relay round-trip sample
    disconnects_taken: int = 0      # of client.disconnects, already in the result
    ai: dict[str, PacedPolicy] = field(default_factory=dict)   # local_ai: an AI seat's players this peer plays


class HeadlessParticipant:
    """One scripted participant. `run(timeout)` walks the flow and returns a ParticipantResult.

    base_url        the experiment's root, e.g. "http://127.0.0.1:5000"
    params          URL parameters of the entry GET (PROLIFIC_PID, STUDY_ID, ...)
    policy          "random" (sticky seeded random actions), "idle" (default action) or
                    policy(player, observation, frame) -> action
    seed            seeds the survey answers and the random policy
    survey_answers  {question_id: value} used instead of generated answers where given
    on_event        on_event(name, payload) for every server event but `packet` (on the run thread)
    drop_at_frame   disconnect abruptly once a match reaches this frame (the run ends, `dropped`)
    reload_at_scene disconnect and reconnect with the same cookie on first entering this scene index
    rejoin_at_frame vanish once a match reaches this frame (the first time), come back `rejoin_after_s`
                    later with the same cookie and take the seat back (the server resumes the match)
    link            a ShapedLink that delays, drops, duplicates and reorders netcode packets both ways
                    (app/participant/link.py); scene events are not shaped
    channel         send and receive packets on the match channel match_start offers (False: Socket.IO
                    `packet` events only); until the channel says `ok`, packets go over Socket.IO
    """

    def __init__(
        self,
        base_url: str,
        params: Mapping[str, Any] | None = None,
        policy: str | PolicyFn = "random",
        seed: int = 0,
        survey_answers: Mapping[str, Any] | None = None,
        on_event: EventCallback | None = None,
        drop_at_frame: int | None = None,
        reload_at_scene: int | None = None,
        rejoin_at_frame: int | None = None,
        rejoin_after_s: float = 2.0,
        connect_timeout: float = 10.0,
        transports: Sequence[str] = ("websocket",),
        link: ShapedLink | None = None,
        channel: bool = True,
    ) -> None:
        if not callable(policy) and policy not in ("random", "idle"):
            raise ValueError(f"policy must be 'random', 'idle' or a callable, got {policy!r}")
        self.entry_url, self.server_url, url_params = split_url(base_url)
        self.params = {**url_params, **{k: str(v) for k, v in (params or {}).items()}}
        self.policy = policy
        self.seed = seed
        self.rng = Rng(seed)
        self.survey_answers = dict(survey_answers or {})
        self.on_event = on_event
        self.drop_at_frame = drop_at_frame
        self.reload_at_scene = reload_at_scene
        self.rejoin_at_frame = rejoin_at_frame
        self.rejoin_after_s = rejoin_after_s
        self.connect_timeout = connect_timeout
        self.link = link
        self.use_channel = channel
        self._channel: MatchChannel | None = None
        self._stop_reason: str | None = None
        self.phase = "new"   # new, entering, connecting, <scene kind>, waiting, playing, done, failed
        self.result = ParticipantResult(completed=False, reason="not run")
        self._router = PacketRouter()
        self._conn = Connection(self.entry_url, self.server_url, self.params, connect_timeout, transports,
                                self._router.route if link is None else link.incoming.push)
        self._scene_index: int | None = None
        self._readied: set[int] = set()
        self._ready_at: dict[int, float] = {}
        self._match_scene: int | None = None
        self._episode: _Episode | None = None
        self._matches: dict[str, dict[str, Any]] = {}
        self._reloaded = False
        self._started = 0.0
        self._bundle_games: dict[str, str] | None = None
        self._bundle_models = BundleModels()         # the bundle's ONNX models (`onnx.models`)

    # ------------------------------------------------------------------ public

    def run(self, timeout: float = 120.0) -> ParticipantResult:
        """Walk the flow until the end scene, a fatal error, a drop, or `timeout` seconds; always disconnect.

        Call it once per participant object.
        """
        self._started = time.monotonic()
        deadline = self._started + timeout
        try:
            self._enter()
            self._connect()
            self._loop(deadline)
        except _Finished as finished:
            self.result.completed = finished.completed
            self.result.reason = finished.reason
        except Exception as error:  # a bug or an unexpected failure: report it, never hang
            self.result.reason = crash_reason(error)
        finally:
            self._close_episode("run ended")
            self._disconnect()
            self._conn.close()
            self.result.total_seconds = round(time.monotonic() - self._started, 3)
            if self.link is not None:
                self.result.link = self.link.counts()
            self.phase = "done" if self.result.completed else "failed"
        return self.result

    def stop(self, reason: str) -> None:
        """Ask a running `run()` (from another thread) to end soon, cleanly, with `reason` (not completed)."""
        self._stop_reason = reason
        self._conn.inbox.put((-1, "stop", reason))   # wakes the loop; the stale generation is ignored

    # ------------------------------------------------------------------ entering and connecting

    def _enter(self) -> None:
        self.phase = "entering"
        self._conn.enter()

    def _connect(self) -> None:
        self.phase = "connecting"
        self._conn.connect()

    def _disconnect(self) -> None:
        """Say goodbye (Socket.IO disconnect) without waiting long for the server's close handshake."""
        self._close_channel()
        self._conn.disconnect()

    def _drop(self) -> None:
        """Vanish like a crashed tab: shut the sockets down with no goodbye."""
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.abort()
        self._conn.drop()

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        self._conn.emit(event, payload)

    # ------------------------------------------------------------------ the loop

    def _loop(self, deadline: float) -> None:
        while True:
            now = time.monotonic()
            if self._stop_reason is not None:
                raise _Finished(self._stop_reason)
            if now >= deadline:
                raise _Finished("timeout")
            self._pump_link()
            episode = self._episode
            if episode is not None:
                self._service_episode(episode, now)
                wait = episode.schedule.delay(time.monotonic())
            else:
                wait = 0.1
            if self.link is not None and (due := self.link.next_due()) is not None:
                wait = min(wait, max(0.0, due - time.monotonic()))
            try:
                generation, name, payload = self._conn.inbox.get(timeout=min(wait, max(0.0, deadline - now)))
            except queue.Empty:
                continue
            if generation == self._conn.generation:
                self._handle(name, payload)
            while True:  # everything else that is already there
                try:
                    generation, name, payload = self._conn.inbox.get_nowait()
                except queue.Empty:
                    break
                if generation == self._conn.generation:
                    self._handle(name, payload)

    def _handle(self, name: str, payload: Any) -> None:
        if name == "disconnect":
            raise _Finished(f"disconnected ({payload or 'by the server'})")
        if name == "channel_closed":
            self._channel_closed(payload)
            return
        if self.on_event is not None:
            self.on_event(name, payload)
        if not isinstance(payload, dict):
            self.result.errors.append({"event": name, "reason": f"malformed {name} payload from the server"})
            raise _Finished(f"error: malformed {name} payload")
        getattr(self, f"_on_{name}")(payload)

    # ------------------------------------------------------------------ scenes

    def _on_scene(self, payload: dict[str, Any]) -> None:
        index, scene = payload.get("index"), payload.get("scene")
        if not isinstance(index, int) or not isinstance(scene, dict):
            raise _Finished("error: malformed scene event")
        if self.result.connect_seconds is None:
            self.result.connect_seconds = round(time.monotonic() - self._started, 3)
        if self._scene_index is not None and index < self._scene_index:
            return  # stale
        resent = index == self._scene_index
        if resent and self.result.reloads:
            self.result.resumed_scenes.append(index)
        self._scene_index = index
        kind = scene.get("kind")
        if not resent:
            self.result.scenes.append({"index": index, "kind": kind, "id": scene.get("id")})
        if kind != "match":
            self._close_episode("left the match scene")
            self._close_channel()
        if not resent:
            self._note_seats_taken_over(index)
        if index == self.reload_at_scene and not self._reloaded:
            self._reloaded = True
            self.result.reloads += 1
            self._disconnect()
            self._connect()   # the server sends this scene again
            return
        self.phase = str(kind)
        if kind == "consent":
            self._emit("advance", {"index": index, "data": {"accept": True}})
        elif kind == "survey":
            answers = generate_answers(scene.get("questions") or [], self.rng, self.survey_answers)
            self._emit("advance", {"index": index, "data": {"answers": answers}})
        elif kind == "match":
            self._enter_match_scene(index, scene)
        elif kind == "end":
            self.result.outcome = scene.get("outcome")
            self.result.completion_code = scene.get("completion_code")
            raise _Finished("completed", completed=True)
        else:  # page, or a scene kind this client does not know: just go on
            self._emit("advance", {"index": index, "data": {}})

    def _note_seats_taken_over(self, index: int) -> None:
        """Matches of an earlier scene that never sent us `match_end`: the server gave our seat to
        someone else (an AI) and moved us on, so they end as `seat_taken_over`."""
        for record in self.result.matches:
            if record["reason"] is None and record["scene"] != index:
                record["reason"] = SEAT_TAKEN_OVER

    def _enter_match_scene(self, index: int, scene: dict[str, Any]) -> None:
        self._load_bundle()   # as the browser LOADs it before `ready`
        if index not in self._readied:
            self._readied.add(index)
            self._ready_at[index] = time.monotonic()
            self._match_scene = index
            self._emit("ready", {"index": index})
        elif self._episode is None:
            self._emit("ready", {"index": index})   # resent after a reload: be ready again
        self.phase = "waiting"

    def _load_bundle(self) -> None:
        """Fetch /bundle.json once, as the page does; keep which games it can start."""
        if self._bundle_games is not None:
            return
        bundle = self._conn.get_json(BUNDLE_PATH, "the game bundle")
        try:
            games = bundle.get("games")
            models = (bundle.get("onnx") or {}).get("models") or {}
        except AttributeError as error:
            raise _Finished(f"error: cannot load the game bundle: {error}") from None
        if not isinstance(games, dict):
            raise _Finished("error: the game bundle has no games")
        self._bundle_games = games
        self._bundle_models = BundleModels(models)

    def _on_waiting(self, payload: dict[str, Any]) -> None:
        self.phase = "waiting"

    def _on_error(self, payload: dict[str, Any]) -> None:
        error = {"event": payload.get("event"), "reason": payload.get("reason")}
        self.result.errors.append(error)
        if error["event"] not in NONFATAL_ERROR_EVENTS:
            raise _Finished(f"error: {error['event']}: {error['reason']}")

    # ------------------------------------------------------------------ matches

    def _on_match_start(self, payload: dict[str, Any]) -> None:
        match, episode = payload.get("match"), payload.get("episode")
        if not isinstance(match, str) or not isinstance(episode, int):
            raise _Finished("error: malformed match_start")
        current = self._episode
        resume = payload.get("resume")
        if current is not None and (current.client.match, current.client.episode) == (match, episode) and not resume:
            return  # resent after a reconnect: our session carries on
        self._close_episode("taken back" if resume else "next episode")
        game = payload.get("game")
        if self._bundle_games is not None and game not in self._bundle_games:
            raise _Finished(f"error: match_start names game {game!r}, which the bundle cannot start")
        now = time.monotonic()
        record = match_record(self.result, self._matches, self._ready_at, self._match_scene, payload, now)
        if isinstance(resume, dict):
            self.result.rejoins.append(resume.get("frame"))
        else:
            record["episodes"] += 1
        try:
            self._episode = self._start_episode(payload, now)
        except (LoadError, NetcodeError, TypeError, ValueError, KeyError) as error:
            why = f"{type(error).__name__}: {error}"
            raise _Finished(f"error: cannot start match {match} episode {episode}: {why}") from None
        self._open_channel(payload, match)
        self.phase = "playing"

    # ------------------------------------------------------------------ the match channel

    def _open_channel(self, payload: dict[str, Any], match: str) -> None:
        """Open match_start's channel, unless the one open already carries this match (a next episode)."""
        current = self._channel
        if current is not None and not current.ended and current.match == match and not payload.get("resume"):
            return
        self._close_channel()
        spec = payload.get("channel")
        if not self.use_channel or not isinstance(spec, dict):
            return
        generation = self._conn.generation

        def closed(code: int | None, reason: str, was_ready: bool) -> None:
            self._conn.inbox.put((generation, "channel_closed",
                             {"code": code, "reason": reason, "match": match, "was_ready": was_ready}))

        incoming = self._router.route if self.link is None else self.link.incoming.push
        self._channel = MatchChannel(self.server_url, spec, match, [], incoming, closed)

    def _close_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    def _channel_closed(self, payload: dict[str, Any]) -> None:
        """The server closed our channel, or it broke: packets go over Socket.IO again; a channel that
        broke mid-episode (not closed by the server as over) is reopened by sending `ready`, whose
        rejoin brings a fresh ticket, as the browser does."""
        self.result.channel_closes.append(payload)
        channel = self._channel
        if channel is None or channel.match != payload.get("match"):
            return
        self._channel = None
        ep = self._episode
        broke = payload["was_ready"] and payload.get("code") in (None, 1006)
        if broke and ep is not None and ep.client.match == channel.match and not ep.reported:
            self._emit("ready", {"index": self._scene_index})

    def _send_wire(self, packet: dict[str, Any]) -> None:
        """A packet to the server: on the match channel once it is `ok`, else as a Socket.IO `packet` event."""
        channel = self._channel
        path = "channel" if channel is not None and channel.send(packet) else "socketio"
        if path == "socketio":
            self._emit("packet", packet)
        self.result.packets_by_path[path] = self.result.packets_by_path.get(path, 0) + 1

    def _start_episode(self, payload: dict[str, Any], now: float) -> _Episode:
        client = MatchClient(payload, load_class(payload["game"]), clock=lambda: time.monotonic() * 1000.0)
        client.catch_up({p: default_action_for(client.env, p) for p in client.players})   # a seat taken back
        self._router.attach(client)
        ai = local_ai(payload.get("local_ai") or {}, client.env, self._policy_class)
        policy = Policy(self.policy, client.env, [p for p in client.players if p not in ai], self.rng.randbelow(1 << 31))
        return _Episode(client, policy, started=now, schedule=FixedStep(client.config.frame_ms / 1000.0, now), ai=ai)

    def _policy_class(self, player: str, spec: str) -> Any:
        """The policy of a local AI player: a class, or an ONNX model of the bundle (as the worker gets it,
        netcode/worker_glue.py), run with CPython onnxruntime."""
        if not spec.startswith(ONNX_PREFIX):
            return load_class(spec)
        return self._bundle_models.policy(player, spec)

    def _service_episode(self, ep: _Episode, now: float) -> None:
        """Run the ticks that are due (a few at most when behind); after the end the client only
        answers peers (acks, keep-alives) until the next episode."""
        client = ep.client
        for _ in range(ep.schedule.due(now)):
            frame = client.session.current_frame
            actions = {} if client.done is not None else ep.policy.actions(client.observations, frame)
            if ep.ai and client.done is None:   # an AI seat this participant hosts (runs="browser")
                actions.update({p: ai.act(client.observations.get(p), frame) for p, ai in ep.ai.items()})
            try:
                client.tick(actions)
            except NetcodeError as error:
                raise _Finished(f"error: netcode at frame {frame}: {error}") from None
            for packet in client.outbox():
                self._send_packet(packet)
            if ep.first_frame_at is None and client.session.current_frame >= 1:
                ep.first_frame_at = time.monotonic()
                self.result.first_frame_seconds.append(round(ep.first_frame_at - ep.started, 3))
            self._take_client_events(ep)
            self._sample_rtt(ep)
            ep.schedule.ticked(client.take_skip_frames())
            frame = client.session.current_frame
            if not ep.reported and self.drop_at_frame is not None and frame >= self.drop_at_frame:
                self.result.dropped = True
                self._drop()
                raise _Finished(f"dropped at frame {frame}")
            if not ep.reported and self.rejoin_at_frame is not None and frame >= self.rejoin_at_frame:
                self.rejoin_at_frame = None
                self._drop()
                self._close_episode("vanished")
                time.sleep(self.rejoin_after_s)
                self._connect()   # the server resends the match scene; `ready` takes the seat back
                return
            if not ep.reported and client.done is not None:
                self._finish_episode(ep)

    def _send_packet(self, packet: dict[str, Any]) -> None:
        if self.link is None:
            self._send_wire(packet)
        else:
            self.link.outgoing.push(packet)

    def _pump_link(self) -> None:
        """Shaped packets whose time has come: out to the server, in to the episode's client."""
        if self.link is None:
            return
        for packet in self.link.outgoing.due():
            self._send_wire(packet)
        for payload in self.link.incoming.due():
            self._router.route(payload)

    def _sample_rtt(self, ep: _Episode) -> None:
        """Every RTT_SAMPLE_SECONDS while playing: the netcode ping, i.e. the input relay round trip."""
        now = time.monotonic()
        if now < ep.next_rtt_sample or ep.client.done is not None:
            return
        ep.next_rtt_sample = now + RTT_SAMPLE_SECONDS
        ping = ep.client.stats()["ping_ms"]
        if ping is not None and len(self.result.relay_rtt_ms) < MAX_RTT_SAMPLES:
            self.result.relay_rtt_ms.append(ping)

    def _take_client_events(self, ep: _Episode) -> None:
        """The desyncs and disconnects the client saw since the last call, into the result."""
        client = ep.client
        self.result.desyncs.extend(client.desyncs[ep.desyncs_taken:])
        ep.desyncs_taken = len(client.desyncs)
        self.result.disconnects.extend({"source": "session", **d} for d in client.disconnects[ep.disconnects_taken:])
        ep.disconnects_taken = len(client.disconnects)

    def _finish_episode(self, ep: _Episode) -> None:
        ep.reported = True
        report = dict(ep.client.done or {})
        self._emit("episode_done", report)
        self._record_episode(ep, "done", report["checksum"])

    def _record_episode(self, ep: _Episode, status: str, checksum: str | None = None) -> None:
        self.result.add_episode(ep.client, status, checksum, play_s=time.monotonic() - ep.started)

    def _close_episode(self, why: str) -> None:
        ep, self._episode = self._episode, None
        if ep is None:
            return
        self._router.attach(None)
        self._take_client_events(ep)
        if not ep.reported:
            self._record_episode(ep, f"unfinished ({why})")

    def _on_seat_changed(self, payload: dict[str, Any]) -> None:
        match, frame, by = payload.get("match"), payload.get("frame"), payload.get("by")
        players = [p for p in payload.get("players") or [] if isinstance(p, str)]
        self.result.disconnects.append({"source": "server", "match": match, "seat": payload.get("seat"),
                                        "players": players, "status": payload.get("status"), "by": by,
                                        "frame": frame})

    def _on_match_end(self, payload: dict[str, Any]) -> None:
        match = payload.get("match")
        ep = self._episode
        if ep is not None and ep.client.match == match:
            self._close_episode(f"match_end {payload.get('reason')}")
        if self._channel is not None and self._channel.match == match:
            self._close_channel()
        record = self._matches.get(match) if isinstance(match, str) else None
        if record is not None:
            record["reason"] = payload.get("reason")
            record["message"] = payload.get("message")
        self.phase = "match_end"
