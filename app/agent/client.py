"""A remote agent: an external process that plays an experiment's remote AI seats (issue 14).

    async with connect("http://127.0.0.1:5000", token=TOKEN) as agent:   # one connection, one match at a time
        async for step in agent.steps():        # the latest frame's observations, while a match runs
            agent.act({"right": choose(step.observations["right"])}, meta={"latency_ms": 12})

    async with connect(URL, token=TOKEN, policy=MyPolicy) as agent:      # or a policy class, as bots take
        await agent.play(matches=3)

The agent is a peer like any other: it plays its seat with `netcode.client.MatchClient` (the client the
browser worker, headless participants and server bots run) at the match's frame rate, its packets on the
match channel `match_start` offers (Socket.IO `packet` events until it opens), its scene flow on Socket.IO,
where it is let in by its token (`auth={"agent_token": T}`) instead of a participant's session. `act`
sets the actions held from the next frame on: an agent slower than the frame rate keeps playing its last
actions, and its partners predict it as they predict anyone. A policy runs inside the tick, as a server
bot's does; a policy with a `metadata()` method has what it returns attached to its step.

The seat's `reaction_delay_frames` and `action_repeat` (match_start's `pacing`) apply here, with the
`PacedPolicy` a server bot of the seat would use, on the same frames: the policy (or, without one, the
actions `act` holds) is asked on frames 0, k, 2k, ... and what it gives is played d frames later. The
delay comes on top of the agent's own latency, as the researcher asked.

Metadata (a JSON object of at most `MAX_META_BYTES` per step) goes to the server in batched `agent_meta`
events, is recorded in the match's recording and exported (`coplay export`: the agent_meta table).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Mapping

import aiohttp
import socketio

from app.live.agents import MAX_META_BYTES, MAX_META_ENTRIES, meta_size
from app.loadtest.wire_transport import ChannelRefused, MatchChannel, PacketClient, channel_url
from app.participant.socket_client import PacketRouter, split_url
from game.env import action_space_for, default_action_for
from game.errors import CoplayError
from game.loader import GameLoader, load_class
from game.paced_policy import PacedPolicy, policy_seed
from netcode.client import MatchClient
from netcode.errors import NetcodeError
from netcode.scheduler import FixedStep
from scenes.policies import Bot, resolve_policy

if TYPE_CHECKING:
    from app.agent.sync import SyncAgent

META_FLUSH_S = 0.1   # metadata is sent in batches at most this often


class AgentError(CoplayError):
    """The agent cannot go on: refused by the server, disconnected, or given bad metadata."""

    code = "agent_error"


@dataclass(frozen=True)
class Step:
    """One frame of a match as the agent sees it: the observations of the players its seat plays."""

    match: str
    episode: int
    frame: int
    observations: dict[str, Any]


@dataclass
class MatchRecord:
    match: str
    seat: str
    players: list[str]
    episodes: int = 0
    reason: str | None = None   # match_end's reason; None while it runs


@dataclass
class _Episode:
    client: MatchClient
    schedule: FixedStep
    held: dict[str, Any]
    paced: dict[str, PacedPolicy] = field(default_factory=dict)   # {player: its policy or its held actions, paced}
    reported: bool = False


class _Held:
    """The action `Agent.act` holds for one player, as a policy PacedPolicy can ask (agents without a policy)."""

    def __init__(self, held: dict[str, Any], player: str) -> None:
        self.held, self.player = held, player

    def act(self, observation: Any) -> Any:
        return self.held[self.player]


class Agent:
    """One agent connection (see the module docstring). `policy` (a class, or a spec such as "random"
    or "FILE.py:Class" resolved from the current folder) makes `play` choose the actions; without it,
    the caller does, through `steps` and `act`."""

    def __init__(self, url: str, token: str, policy: Any = None, *, seed: int = 0, channel: bool = True,
                 connect_timeout: float = 10.0) -> None:
        _, self.server_url, _ = split_url(url)
        self.token = token
        self.policy = _resolve(policy) if policy is not None else None
        self.seed = seed
        self.use_channel = channel
        self.connect_timeout = connect_timeout
        self.matches: list[MatchRecord] = []
        self.errors: list[dict[str, Any]] = []       # `error` events: refused packets or metadata
        self.closed_reason: str | None = None        # why the connection ended, once it has
        self._sio: PacketClient | None = None
        self._http: aiohttp.ClientSession | None = None
        self._channel: MatchChannel | None = None
        self._router = PacketRouter()
        self._episode: _Episode | None = None
        self._refusal: Any = None
        self._wake = asyncio.Event()      # the tick loop: an episode started, or the connection ended
        self._changed = asyncio.Event()   # play(): a match ended, or the connection did
        self._step: Step | None = None
        self._step_ready = asyncio.Event()
        self._meta: list[dict[str, Any]] = []
        self._meta_sent_at = 0.0
        self._loop_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ connecting

    async def __aenter__(self) -> Agent:
        await self.open()
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect with the token; AgentError (code agent_token_refused) when the server refuses it."""
        sio = PacketClient(reconnection=False, handle_sigint=False)
        sio.on_packet = self._router.route
        for name in ("match_start", "match_end", "seat_changed", "error"):
            sio.on(name, self._handler(name))
        sio.on("connect_error", self._connect_error)
        sio.on("disconnect", self._disconnected)
        try:
            await sio.connect(self.server_url, auth={"agent_token": self.token}, transports=["websocket"],
                              wait_timeout=self.connect_timeout)
        except socketio.exceptions.ConnectionError as error:
            refusal = self._refusal if isinstance(self._refusal, dict) else {}   # {"message", "data": {"code"}}
            data = refusal.get("data")
            data = data if isinstance(data, dict) else {}
            raise AgentError(str(refusal.get("message") or f"cannot connect to {self.server_url}: {error}"),
                             code=str(data.get("code") or "agent_connect_failed")) from None
        self._sio = sio
        self._http = aiohttp.ClientSession()
        self._loop_task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Say goodbye; a match still running goes to its seat's fallback."""
        self._end("closed")
        if self._loop_task is not None:
            self._loop_task.cancel()
        await self._close_channel()
        if self._sio is not None:
            await self._sio.disconnect()
            self._sio = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _connect_error(self, data: Any = None) -> None:
        self._refusal = data

    def _disconnected(self, *_: Any) -> None:
        self._end("disconnected by the server")

    def _end(self, reason: str) -> None:
        self.closed_reason = self.closed_reason or reason
        for event in (self._wake, self._changed, self._step_ready):
            event.set()

    def _handler(self, name: str) -> Any:
        async def handle(payload: Any = None) -> None:
            if isinstance(payload, dict):
                await getattr(self, f"_on_{name}")(payload)
        return handle

    # ------------------------------------------------------------------ the caller's side

    @property
    def in_match(self) -> bool:
        return any(m.reason is None for m in self.matches)

    @property
    def matches_done(self) -> int:
        return sum(1 for m in self.matches if m.reason is not None)

    async def steps(self, matches: int | None = None) -> AsyncIterator[Step]:
        """The latest frame's observations each time a new frame was played and the caller is ready for it
        (frames it was too slow for are skipped); ends when `matches` matches ended, or the connection did."""
        while self.closed_reason is None and (matches is None or self.matches_done < matches):
            await self._step_ready.wait()
            self._step_ready.clear()
            step, self._step, ep = self._step, None, self._episode
            if step is not None and self.closed_reason is None and ep is not None and ep.client.done is None:
                yield step   # (not one left from before the episode's end: there is nothing to act on)

    def act(self, actions: Mapping[str, Any] | Any, meta: Mapping[str, Any] | None = None) -> None:
        """Play `actions` ({player: action}, or one action when the seat plays one player) from the next
        frame on, with `meta` (a JSON object, at most MAX_META_BYTES) attached to that frame. After the
        episode's end (a step the caller was slow to answer) it does nothing."""
        ep = self._episode
        if ep is None or ep.client.done is not None:
            return
        checked = _checked_meta(meta) if meta is not None else None   # raises before anything changes
        if not isinstance(actions, Mapping) or set(actions) - set(ep.client.players):
            actions = {player: actions for player in ep.client.players}
        ep.held.update(actions)
        if checked is not None:
            self._attach(ep, checked)

    async def play(self, matches: int | None = None) -> list[MatchRecord]:
        """Play (with the policy) until `matches` matches ended (None: until the connection ends)."""
        if self.policy is None:
            raise AgentError("play() needs a policy: connect(..., policy=MyPolicy), or use steps() and act()")
        while self.closed_reason is None and (matches is None or self.matches_done < matches):
            self._changed.clear()
            await self._changed.wait()
        return self.matches

    def sync(self) -> SyncAgent:
        """This agent for blocking code: `with connect(...).sync() as agent: agent.play(3)` (app.agent.sync)."""
        from app.agent.sync import SyncAgent

        return SyncAgent(self)

    # ------------------------------------------------------------------ server events

    async def _on_match_start(self, payload: dict[str, Any]) -> None:
        match, episode = payload.get("match"), payload.get("episode")
        current = self._episode
        if current is not None and (current.client.match, current.client.episode) == (match, episode):
            return
        try:
            client = MatchClient(payload, load_class(payload["game"]), clock=lambda: time.monotonic() * 1000.0)
            ep = self._new_episode(client, payload.get("pacing") or {})
        except (NetcodeError, TypeError, ValueError, KeyError, ImportError) as error:
            self.errors.append({"event": "match_start", "reason": f"{type(error).__name__}: {error}"})
            self._end(f"cannot start match {match}: {type(error).__name__}: {error}")
            return
        client.catch_up(ep.held)
        self._router.attach(client)
        self._episode = ep
        record = next((m for m in self.matches if m.match == match), None)
        if record is None:
            record = MatchRecord(str(match), str(payload.get("seat")), list(client.players))
            self.matches.append(record)
        record.episodes += 1
        await self._open_channel(payload)
        self._wake.set()

    def _new_episode(self, client: MatchClient, pacing: Mapping[str, Any]) -> _Episode:
        """The episode's state: each player's actions come from the policy (a Bot, seeded as a server bot
        would seed it) or from what `act` holds, paced as the seat says."""
        env = client.env
        held = {p: default_action_for(env, p) for p in client.players}
        ep = _Episode(client, FixedStep(client.config.frame_ms / 1000.0, time.monotonic()), held)
        for i, player in enumerate(client.players):
            source: Any = _Held(held, player)
            if self.policy is not None:
                source = Bot(self.policy, player=player, action_space=action_space_for(env, player),
                             default_action=held[player], seed=policy_seed(self.seed, client.episode, i))
            ep.paced[player] = PacedPolicy(source, reaction_delay_frames=pacing.get("reaction_delay_frames", 0),
                                           action_repeat=pacing.get("action_repeat", 1), default_action=held[player])
        return ep

    async def _on_match_end(self, payload: dict[str, Any]) -> None:
        self._episode = None
        self._router.attach(None)
        self._meta.clear()   # sent with episode_done; what came after the episode's end has no step to go with
        await self._close_channel()
        for record in self.matches:
            if record.match == payload.get("match"):
                record.reason = str(payload.get("reason"))
        self._changed.set()
        self._step_ready.set()

    async def _on_seat_changed(self, payload: dict[str, Any]) -> None:
        pass   # a partner dropped or came back: the netcode goes on regardless

    async def _on_error(self, payload: dict[str, Any]) -> None:
        if len(self.errors) < 100:
            self.errors.append({"event": payload.get("event"), "reason": payload.get("reason")})

    # ------------------------------------------------------------------ the match channel

    async def _open_channel(self, payload: dict[str, Any]) -> None:
        spec = payload.get("channel")
        if not self.use_channel or not isinstance(spec, dict) or self._http is None:
            return
        current = self._channel
        if current is not None and current.is_open:
            return   # the next episode of the same match
        match = str(payload.get("match"))

        def frame(episode: int, sender: str, data: str) -> None:
            self._router.route({"match": match, "episode": episode, "from": sender, "data": data})

        channel = MatchChannel(self._http, channel_url(self.server_url, str(spec.get("url", ""))),
                               str(spec.get("ticket", "")), frame, lambda reason: None)
        try:
            await channel.open(timeout=self.connect_timeout)
        except (TimeoutError, ChannelRefused, aiohttp.ClientError):
            return   # packets go over Socket.IO
        self._channel = channel

    async def _close_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    # ------------------------------------------------------------------ the tick loop

    async def _run(self) -> None:
        """The fixed-step loop of the current episode; a failure (the policy chose an invalid action, the
        game raised) ends the connection, so the seat goes to its fallback at once."""
        try:
            while self.closed_reason is None:
                ep = self._episode
                if ep is None:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._service(ep, time.monotonic())
                await self._flush_meta()
                await asyncio.sleep(ep.schedule.delay(time.monotonic()))
        except Exception as error:  # noqa: BLE001 - reported as the reason the connection ended
            self._end(f"failed: {type(error).__name__}: {error}")
            if self._sio is not None:
                await self._sio.disconnect()

    async def _service(self, ep: _Episode, now: float) -> None:
        client = ep.client
        for _ in range(ep.schedule.due(now)):
            if self._episode is not ep:
                return
            client.tick({} if client.done is not None else self._actions(ep))
            for packet in client.outbox():
                await self._send(packet)
            ep.schedule.ticked(client.take_skip_frames())
            if client.done is None:
                observations = client.observations
                self._step = Step(client.match, client.episode, client.session.current_frame,
                                  {p: observations.get(p) for p in client.players})
                self._step_ready.set()
            elif not ep.reported and self._sio is not None:
                ep.reported = True
                await self._flush_meta(force=True, match=client.match)
                await self._sio.emit("episode_done", dict(client.done))

    def _actions(self, ep: _Episode) -> dict[str, Any]:
        """This frame's actions (see the module docstring), with the metadata of a policy that decided."""
        observations, frame = ep.client.observations, ep.client.session.current_frame
        actions = {}
        for player, paced in ep.paced.items():
            decides = paced.decides(frame)
            actions[player] = paced.act(observations.get(player), frame)
            metadata = getattr(getattr(paced.policy, "policy", None), "metadata", None)
            meta = metadata() if decides and callable(metadata) else None
            if meta is not None:
                self._attach(ep, _checked_meta(meta))
        return actions

    async def _send(self, packet: dict[str, Any]) -> None:
        channel = self._channel
        if channel is not None and channel.is_open:
            channel.send(packet["episode"], packet["to"], packet["data"])
        elif self._sio is not None:
            await self._sio.emit_packet(packet)

    # ------------------------------------------------------------------ metadata

    def _attach(self, ep: _Episode, meta: dict[str, Any]) -> None:
        self._meta.append({"episode": ep.client.episode, "frame": ep.client.session.current_frame, "meta": meta})

    async def _flush_meta(self, force: bool = False, match: str | None = None) -> None:
        now = time.monotonic()
        if not self._meta or self._sio is None or (not force and now - self._meta_sent_at < META_FLUSH_S):
            return
        ep = self._episode
        match = match or (ep.client.match if ep is not None else None)
        if match is None:
            self._meta.clear()
            return
        self._meta_sent_at = now
        while self._meta:
            batch, self._meta = self._meta[:MAX_META_ENTRIES], self._meta[MAX_META_ENTRIES:]
            await self._sio.emit("agent_meta", {"match": match, "steps": batch})


def _checked_meta(meta: Any) -> dict[str, Any]:
    """`meta` as a dict, if it is a JSON object within MAX_META_BYTES; AgentError saying what is wrong if not."""
    if not isinstance(meta, Mapping):
        raise AgentError(f"metadata is a JSON object (a dict), got {type(meta).__name__}", code="agent_meta_invalid")
    try:
        size = meta_size(dict(meta))
    except (TypeError, ValueError) as error:
        raise AgentError(f"metadata must be JSON-able: {error}", code="agent_meta_invalid") from None
    if size > MAX_META_BYTES:
        raise AgentError(f"metadata of {size} bytes as JSON is over the limit of {MAX_META_BYTES}: keep it "
                         "short (e.g. a latency and a brief message)", code="agent_meta_too_large")
    return dict(meta)


def connect(url: str, token: str, policy: Any = None, **options: Any) -> Agent:
    """An agent connection for `async with` (see Agent); `.sync()` on it gives the blocking wrapper."""
    return Agent(url, token, policy, **options)


def _resolve(policy: Any) -> Any:
    """A policy class from a class or a spec ("random", "idle", "FILE.py:Class", "module:Class", "onnx:FILE")."""
    return resolve_policy(policy, GameLoader("."))
