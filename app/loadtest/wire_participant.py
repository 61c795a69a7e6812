"""One participant of the wire generator (`coplay loadtest --mode wire`; app/loadtest/wire.py runs many on one loop).

A `WireParticipant` walks the experiment as a page does, over the real protocol: GET the entry
page (keeping the session cookie), Socket.IO (python-socketio's AsyncClient on aiohttp), answers
to consent, pages and surveys (app.participant.answers), GET /bundle.json, `ready`, then plays its
matches as `WireSeat`s (app.loadtest.wire_match): synthetic seeded inputs at the match's frame
rate, packets the server accepts, and `episode_done` with the frame and checksum of the
re-simulation the server also runs. It does not run the rollback netcode, so a generator core
offers far more matches than full participants do.

Match packets go over the match channel when `match_start` carries `channel` (a WebSocket: the
ticket first, then "<episode> <addr> <data>" frames; app.loadtest.wire_socket's `RawMatchChannel`, a
minimal client on a raw socket), else over the Socket.IO `packet` event (app.loadtest.wire_transport).
The process's `Ticker` (app.loadtest.wire_world) runs each episode's `Playing` ticks.
"""
from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Any, Callable, Mapping

import aiohttp
import socketio
import yarl

from app.loadtest.wire_match import MatchSim, WireSeat
from app.loadtest.wire_socket import RawMatchChannel
from app.loadtest.wire_transport import CONNECT_TIMEOUT, ChannelRefused, PacketClient, channel_url
from app.loadtest.wire_world import WireWorld
from app.participant.answers import Policy, generate_answers
from app.participant.headless import BUNDLE_PATH
from app.participant.result import _Finished, SEAT_TAKEN_OVER, ParticipantResult, crash_reason, match_record
from app.participant.socket_client import split_url
from game.loader import LoadError, load_class
from game.rng import Rng
from netcode.config import SessionConfig
from netcode.errors import NetcodeError
from netcode.scheduler import FixedStep

SERVER_EVENTS = ("scene", "waiting", "match_start", "seat_changed", "match_end", "error")
NONFATAL_ERROR_EVENTS = ("packet", "episode_done")
MAX_STASHED = 4096          # packets of an episode whose match_start is not handled yet
MAX_RTT_SAMPLES = 5000
RTT_SAMPLE_SECONDS = 0.5


class Playing:
    """A participant's current episode: its WireSeat, schedule and transport."""

    def __init__(self, person: WireParticipant, seat: WireSeat, schedule: FixedStep, fps: int,
                 channel: RawMatchChannel | None) -> None:
        self.person, self.seat, self.schedule, self.fps, self.channel = person, seat, schedule, fps, channel
        self.started = time.monotonic()
        self.first_frame_at: float | None = None
        self.reported = False
        self.stopped = False
        self.next_rtt = 0.0
        self.out: list[tuple[str, str]] = []   # packets of this round's ticks, sent by `flush`
        self.flushing: asyncio.Future[None] | None = None   # `flush` sending them as Socket.IO events

    def send_on_channel(self) -> None:
        """The packets of this round's ticks, written to the match channel at once."""
        out, self.out = self.out, []
        channel, episode = self.channel, self.seat.episode
        assert channel is not None
        for to, data in out:
            channel.send(episode, to, data)
        self.person.world.check.channel_packets += len(out)

    def tick(self, now: float) -> None:
        seat = self.seat
        self.out += seat.tick(now * 1000.0)
        if self.first_frame_at is None and seat.frame >= 1:
            self.first_frame_at = now
            self.person.result.first_frame_seconds.append(round(now - self.started, 3))
        if now >= self.next_rtt and seat.rtt_ms is not None and seat.done is None:
            self.next_rtt = now + RTT_SAMPLE_SECONDS
            if len(self.person.result.relay_rtt_ms) < MAX_RTT_SAMPLES:
                self.person.result.relay_rtt_ms.append(round(seat.rtt_ms, 1))
        if seat.done is not None and not self.reported:
            self.reported = True
            self.person.episode_over(self, now)



class WireParticipant:
    """One participant at the protocol level. `run(timeout)` -> ParticipantResult (app.participant.headless)."""

    def __init__(self, base_url: str, params: Mapping[str, str], seed: int, world: WireWorld,
                 policy: str = "random") -> None:
        self.entry_url, self.server_url, url_params = split_url(base_url)
        self.params = {**url_params, **params}
        self.seed, self.world, self.policy = seed, world, policy
        self.rng = Rng(seed)
        self.phase = "new"
        self.result = ParticipantResult(completed=False, reason="not run")
        self.http: aiohttp.ClientSession | None = None
        self.sio: PacketClient | None = None
        self.inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.playing: Playing | None = None
        self.channel: RawMatchChannel | None = None
        self._channel_key: tuple[str, int] | None = None
        self._stash: dict[tuple[str, int], list[tuple[str, str]]] = {}
        self._stashed = 0
        self._scene: int | None = None
        self._ready_at: dict[int, float] = {}
        self._matches: dict[str, dict[str, Any]] = {}
        self._bundle_games: dict[str, Any] | None = None
        self._started = 0.0

    def stop(self, reason: str) -> None:
        self.inbox.put_nowait(("stop", reason))

    async def run(self, timeout: float) -> ParticipantResult:
        self._started = time.monotonic()
        deadline = self._started + timeout
        try:
            self.http = aiohttp.ClientSession(connector=self.world.connector, connector_owner=False,
                                              cookie_jar=aiohttp.CookieJar(unsafe=True))
            await self._enter()
            await self._connect()
            await self._loop(deadline)
        except _Finished as finished:
            self.result.completed, self.result.reason = finished.completed, finished.reason
        except Exception as error:   # a bug or an unexpected failure: report it, never hang
            self.result.reason = crash_reason(error)
        finally:
            self._close_episode("run ended")
            await self._close_channel()
            if self.sio is not None:
                sio, self.sio = self.sio, None
                try:
                    await asyncio.wait_for(sio.disconnect(), timeout=2.0)
                except Exception:  # noqa: BLE001 - closing a dead socket may raise anything
                    pass
            if self.http is not None:
                await self.http.close()
            self.result.total_seconds = round(time.monotonic() - self._started, 3)
            self.phase = "done" if self.result.completed else "failed"
        return self.result

    # ------------------------------------------------------------------ entering

    async def _enter(self) -> None:
        self.phase = "entering"
        assert self.http is not None
        url = self.entry_url + ("?" + urllib.parse.urlencode(self.params) if self.params else "")
        try:
            async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=CONNECT_TIMEOUT)) as response:
                await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as error:
            raise _Finished(f"entry page failed: {error!r}") from None
        if status == 403:
            raise _Finished("refused: HTTP 403 (already taken part?)")
        if status != 200:
            raise _Finished(f"entry page answered HTTP {status}")

    def _cookie(self) -> str:
        assert self.http is not None
        cookies = self.http.cookie_jar.filter_cookies(yarl.URL(self.server_url))
        return "; ".join(f"{name}={morsel.value}" for name, morsel in cookies.items())

    async def _connect(self) -> None:
        self.phase = "connecting"
        cookie = self._cookie()
        if not cookie:
            raise _Finished("the entry page set no session cookie")
        sio = PacketClient(reconnection=False, handle_sigint=False, http_session=self.http)
        for name in SERVER_EVENTS:
            sio.on(name, self._queue(name))
        sio.on("packet", self._on_packet)
        sio.on_packet = self._on_packet
        sio.on("disconnect", lambda *why: self.inbox.put_nowait(("disconnect", why[0] if why else None)))
        try:
            await sio.connect(self.server_url, headers={"Cookie": cookie}, transports=["websocket"],
                              wait_timeout=CONNECT_TIMEOUT)
        except socketio.exceptions.ConnectionError as error:
            raise _Finished(f"connect failed: {error}") from None
        self.sio = sio

    def _queue(self, name: str) -> Callable[[Any], None]:
        def handler(payload: Any = None) -> None:
            self.inbox.put_nowait((name, payload))
        return handler

    async def _emit(self, event: str, payload: dict[str, Any]) -> None:
        if self.sio is not None:
            try:
                await self.sio.emit(event, payload)
            except socketio.exceptions.SocketIOError:
                pass   # disconnected meanwhile; the loop hears of it

    # ------------------------------------------------------------------ the loop

    async def _loop(self, deadline: float) -> None:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Finished("timeout")
            try:
                name, payload = await asyncio.wait_for(self.inbox.get(), timeout=left)
            except TimeoutError:
                raise _Finished("timeout") from None
            if name == "stop":
                raise _Finished(str(payload))
            if name == "disconnect":
                raise _Finished(f"disconnected ({payload or 'by the server'})")
            if name == "emit":
                await self._emit(*payload)
                continue
            if not isinstance(payload, dict):
                self.result.errors.append({"event": name, "reason": f"malformed {name} payload from the server"})
                raise _Finished(f"error: malformed {name} payload")
            await getattr(self, f"_on_{name}")(payload)

    # ------------------------------------------------------------------ scenes

    async def _on_scene(self, payload: dict[str, Any]) -> None:
        index, scene = payload.get("index"), payload.get("scene")
        if not isinstance(index, int) or not isinstance(scene, dict):
            raise _Finished("error: malformed scene event")
        if self.result.connect_seconds is None:
            self.result.connect_seconds = round(time.monotonic() - self._started, 3)
        if self._scene is not None and index <= self._scene:
            return
        self._scene = index
        kind = scene.get("kind")
        self.result.scenes.append({"index": index, "kind": kind, "id": scene.get("id")})
        if kind != "match":
            self._close_episode("left the match scene")
            await self._close_channel()
        for record in self.result.matches:
            if record["reason"] is None and record["scene"] != index:
                record["reason"] = SEAT_TAKEN_OVER
        self.phase = str(kind)
        if kind == "consent":
            await self._emit("advance", {"index": index, "data": {"accept": True}})
        elif kind == "survey":
            answers = generate_answers(scene.get("questions") or [], self.rng)
            await self._emit("advance", {"index": index, "data": {"answers": answers}})
        elif kind == "match":
            await self._load_bundle()
            self._ready_at[index] = time.monotonic()
            await self._emit("ready", {"index": index})
            self.phase = "waiting"
        elif kind == "end":
            self.result.outcome = scene.get("outcome")
            self.result.completion_code = scene.get("completion_code")
            raise _Finished("completed", completed=True)
        else:
            await self._emit("advance", {"index": index, "data": {}})

    async def _load_bundle(self) -> None:
        if self._bundle_games is not None:
            return
        assert self.http is not None
        try:
            async with self.http.get(self.server_url + BUNDLE_PATH,
                                     timeout=aiohttp.ClientTimeout(total=CONNECT_TIMEOUT)) as response:
                response.raise_for_status()
                body = await response.read()
            games = self.world.bundle_games(body)
        except (TimeoutError, aiohttp.ClientError, ValueError, AttributeError) as error:
            raise _Finished(f"error: cannot load the game bundle: {error!r}") from None
        if not isinstance(games, dict):
            raise _Finished("error: the game bundle has no games")
        self._bundle_games = games

    async def _on_waiting(self, payload: dict[str, Any]) -> None:
        self.phase = "waiting"

    async def _on_error(self, payload: dict[str, Any]) -> None:
        error = {"event": payload.get("event"), "reason": payload.get("reason")}
        self.result.errors.append(error)
        if error["event"] not in NONFATAL_ERROR_EVENTS:
            raise _Finished(f"error: {error['event']}: {error['reason']}")

    async def _on_seat_changed(self, payload: dict[str, Any]) -> None:
        self.result.disconnects.append({"source": "server", "match": payload.get("match"),
                                        "seat": payload.get("seat"), "players": payload.get("players") or [],
                                        "status": payload.get("status"), "by": payload.get("by"),
                                        "frame": payload.get("frame")})

    async def _on_match_end(self, payload: dict[str, Any]) -> None:
        match = payload.get("match")
        playing = self.playing
        if playing is not None and playing.seat.match == match:
            self._close_episode(f"match_end {payload.get('reason')}")
        await self._close_channel()
        record = self._matches.get(match) if isinstance(match, str) else None
        if record is not None:
            record["reason"], record["message"] = payload.get("reason"), payload.get("message")
        self.phase = "match_end"

    # ------------------------------------------------------------------ matches

    async def _on_match_start(self, payload: dict[str, Any]) -> None:
        match, episode = payload.get("match"), payload.get("episode")
        if not isinstance(match, str) or not isinstance(episode, int):
            raise _Finished("error: malformed match_start")
        resume = payload.get("resume")
        self._close_episode("taken back" if resume else "next episode")
        game = payload.get("game")
        if self._bundle_games is not None and game not in self._bundle_games:
            raise _Finished(f"error: match_start names game {game!r}, which the bundle cannot start")
        now = time.monotonic()
        record = match_record(self.result, self._matches, self._ready_at, self._scene, payload, now)
        if isinstance(resume, dict):   # the server held the seat while this participant was silent
            self.result.rejoins.append(resume.get("frame"))
        else:
            record["episodes"] += 1
        try:
            seat, fps = self._seat(payload)
        except (LoadError, NetcodeError, TypeError, ValueError, KeyError) as error:
            raise _Finished(f"error: cannot start match {match} episode {episode}: "
                            f"{type(error).__name__}: {error}") from None
        channel = payload.get("channel")
        await self._open_channel(match, int(payload.get("gen", 0)), channel)
        self.playing = Playing(self, seat, FixedStep(1.0 / fps, now), fps, self.channel)
        for sender, data in self._stash.pop((match, episode), []):
            self._deliver(self.playing, sender, data)
        self._stash.clear()
        self._stashed = 0
        self.world.ticker.add(self.playing)
        self.phase = "playing"

    def _seat(self, start: dict[str, Any]) -> tuple[WireSeat, int]:
        game_class = load_class(start["game"])
        fps = int(start.get("fps", 60))
        config = start.get("config") or {}
        env = game_class(config)
        session_config = SessionConfig.for_env(env, **{"fps": fps, **(start.get("netcode") or {})})
        key = (start["match"], start["episode"])
        sim = self.world.sims.take(key, lambda: MatchSim(env, start["seed"], tuple(env.players),
                                                         session_config.desync_interval))
        policy = Policy(self.policy, env, start["players"], self.rng.randbelow(1 << 31))
        return WireSeat(start, session_config, policy, sim), fps

    def episode_over(self, playing: Playing, now: float) -> None:
        """The seat's end is confirmed here: report it (from the ticker, so via the inbox)."""
        seat = playing.seat
        done = dict(seat.done or {})
        self.inbox.put_nowait(("emit", ("episode_done", done)))
        self.world.check.match_took(done["frame"], playing.fps, now - playing.started)
        self._record_episode(playing, "done", done["checksum"])

    def _record_episode(self, playing: Playing, status: str, checksum: str | None = None) -> None:
        seat = playing.seat
        self.result.episodes.append({
            "match": seat.match, "episode": seat.episode, "seat": seat.seat, "players": list(seat.players),
            "status": status, "end_frame": seat.done["frame"] if seat.done else None, "frames": seat.frame,
            "checksum": checksum, "seconds": round(time.monotonic() - playing.started, 3),
            "rollbacks": 0, "max_rollback_depth": 0, "stalls": seat.stalls,
        })
        self.result.desyncs.extend(seat.desyncs)
        seat.desyncs = []
        totals = self.result.stats
        for key, value in (("frames", seat.frame), ("stalls", seat.stalls), ("packets_sent", seat.packets_sent),
                           ("packets_received", seat.packets_received),
                           ("play_ms", int((time.monotonic() - playing.started) * 1000))):
            totals[key] = totals.get(key, 0) + value
        totals.setdefault("rollbacks", 0)
        totals.setdefault("max_rollback_depth", 0)
        self.world.check.sent(seat.packets_sent)
        self.world.check.received(seat.packets_received)
        seat.packets_sent = seat.packets_received = 0

    def _close_episode(self, why: str) -> None:
        playing, self.playing = self.playing, None
        if playing is None:
            return
        playing.stopped = True
        if not playing.reported:
            self._record_episode(playing, f"unfinished ({why})")
        else:   # the packets sent after the end (acks, keep-alives)
            self.world.check.sent(playing.seat.packets_sent)
            self.world.check.received(playing.seat.packets_received)
            self.result.desyncs.extend(playing.seat.desyncs)
        self.world.sims.give_back((playing.seat.match, playing.seat.episode))

    # ------------------------------------------------------------------ packets

    async def flush(self, playing: Playing) -> None:
        """Send the packets of the seat's ticks as Socket.IO `packet` events, in order, until none are
        left (the fallback when the seat has no open match channel; `Playing.send_on_channel` is the
        usual way). One runs per seat at a time (the Ticker starts it); ticks meanwhile add to `out`."""
        seat = playing.seat
        while playing.out and not playing.stopped:
            out, playing.out = playing.out, []
            for to, data in out:
                if self.sio is None:
                    return
                try:
                    await self.sio.emit_packet({"match": seat.match, "episode": seat.episode, "to": to, "data": data})
                except socketio.exceptions.SocketIOError:
                    return   # disconnected meanwhile; the loop hears of it

    def _on_packet(self, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        match, episode, sender, data = (payload.get("match"), payload.get("episode"), payload.get("from"),
                                        payload.get("data"))
        if isinstance(match, str) and isinstance(episode, int) and isinstance(sender, str) and isinstance(data, str):
            self._route(match, episode, sender, data)

    def _route(self, match: str, episode: int, sender: str, data: str) -> None:
        playing = self.playing
        if playing is not None and (playing.seat.match, playing.seat.episode) == (match, episode):
            self._deliver(playing, sender, data)
        elif self._stashed < MAX_STASHED:
            self._stash.setdefault((match, episode), []).append((sender, data))
            self._stashed += 1

    def _deliver(self, playing: Playing, sender: str, data: str) -> None:
        try:
            playing.seat.receive(sender, data, time.monotonic() * 1000.0)
        except (ValueError, KeyError, TypeError, IndexError) as error:   # not what the server relays
            self.result.errors.append({"event": "packet", "reason": f"bad packet from {sender}: {error}"})

    async def _open_channel(self, match: str, gen: int, channel: Any) -> None:
        """Open the match channel `match_start` names (kept across episodes of one match and holder)."""
        if not isinstance(channel, dict):
            await self._close_channel()
            return
        if self.channel is not None and self.channel.is_open and self._channel_key == (match, gen):
            return
        await self._close_channel()
        assert self.http is not None
        url = channel_url(self.server_url, str(channel.get("url")))
        opened = RawMatchChannel(url, str(channel.get("ticket")),
                                 on_frame=lambda e, s, d: self._route(match, e, s, d),
                                 on_refusal=lambda why: self.result.errors.append({"event": "channel", "reason": why}),
                                 cookie=self._cookie())
        try:
            await opened.open()
        except (TimeoutError, ChannelRefused, OSError) as error:
            # The Socket.IO `packet` event stays the fallback; the summary counts the failure.
            self.result.errors.append({"event": "channel", "reason": f"could not open: {error!r}"})
            return
        self.channel, self._channel_key = opened, (match, gen)

    async def _close_channel(self) -> None:
        channel, self.channel, self._channel_key = self.channel, None, None
        if channel is not None:
            await channel.close()

