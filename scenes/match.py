"""The Match scene: a game played by participants (humans) and AI policies, and its WaitingRoom."""
from __future__ import annotations

import re
from dataclasses import fields
from typing import Any, Mapping, Sequence

from game.env import action_space_for
from game.hashing import StateEncodingError, check_encodable, is_finite_number
from game.spaces import Discrete
from netcode.config import SessionConfig
from netcode.errors import NetcodeError

from scenes.ai_seat import AISeat, as_ai_seat
from scenes.base import ClientContext, Resolver, Scene, body_html, check_body, check_text
from scenes.errors import AnswerError, ExperimentError

# SessionConfig settings a Match may set in netcode= (fps has its own argument)
NETCODE_KEYS = tuple(f.name for f in fields(SessionConfig)
                     if f.name not in ("players", "action_spaces", "default_actions", "fps", "predictor"))
# What participants do after a server crash interrupted their match (`on_interrupted=`)
INTERRUPTED_CHOICES = ("continue", "rerun")
COMBO = "+"           # joins the keys of a combination in the name sent to the page: "ArrowUp+ArrowLeft"
MAX_COMBO_KEYS = 4
PACKAGE_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")   # a distribution name (PEP 508)


def combo_name(key: Any) -> Any:
    """A `keys` entry's name as the page gets it: a tuple (or frozenset) of key names joined by COMBO;
    anything else as it is (checked by `Match.check`)."""
    if isinstance(key, frozenset) and all(isinstance(k, str) for k in key):
        key = tuple(sorted(key))
    if isinstance(key, tuple) and all(isinstance(k, str) for k in key):
        return COMBO.join(key)
    return key


def combo_keys(name: str) -> list[str]:
    """The keys of a `keys` name: ["ArrowUp", "ArrowLeft"] for "ArrowUp+ArrowLeft"; ["+"] for the plus key."""
    return name.split(COMBO) if len(name) > 1 and COMBO in name else [name]


def shown_key(name: str) -> str:
    """A `keys` name as the experiment wrote it: a combination as a tuple."""
    keys = combo_keys(name)
    return repr(tuple(keys)) if len(keys) > 1 else repr(name)


def _why_not_key(key: Any) -> str | None:
    if not isinstance(key, str):
        return f"{key!r:.40} is not a key name (KeyboardEvent.key, e.g. 'ArrowUp' or 'w') or a tuple of them"
    keys, shown = combo_keys(key), shown_key(key)
    if len(keys) > MAX_COMBO_KEYS:
        return f"{shown:.80} combines {len(keys)} keys; at most {MAX_COMBO_KEYS} can be held together"
    if any(not 1 <= len(k) <= 32 for k in keys):
        return (f"{shown:.80} is not a key name (KeyboardEvent.key, e.g. 'ArrowUp' or 'w'); a combination is a "
                f"tuple of key names, e.g. ('ArrowUp', 'ArrowLeft'), and a key in it cannot be '{COMBO}'")
    if len(set(keys)) != len(keys):
        return f"{shown:.80} names a key twice"
    return None


def _json_problem(value: Any, what: str) -> str | None:
    try:
        check_encodable(value, finite=True)
    except StateEncodingError as exc:
        return f"{what}{exc.path}: {exc.problem}; use only None, bool, int, float, str, lists and str-keyed dicts"
    return None


class WaitingRoom:
    """Where participants wait for partners. After `timeout_s` seconds, "ai" fills the empty seats
    with the match's fill_policy and starts; "leave" ends the study (outcome "waiting_timeout")."""

    def __init__(self, *, timeout_s: float = 60, on_timeout: str = "ai",
                 message: str = "Waiting for other participants to join...") -> None:
        self.timeout_s = timeout_s
        self.on_timeout = on_timeout
        self.message = message

    def check(self) -> None:
        if type(self.timeout_s) not in (int, float) or not 1 <= self.timeout_s <= 3600:
            raise ExperimentError(f"waiting_room timeout_s must be 1 to 3600 seconds, got {self.timeout_s!r}")
        if self.on_timeout not in ("ai", "leave"):
            raise ExperimentError(f"waiting_room on_timeout must be 'ai' or 'leave', got {self.on_timeout!r}")
        check_text(self.message, "waiting_room message", max_length=1000)


class Match(Scene):
    """A game with `humans` (one participant each) and `ai` players ({player: policy or AISeat(...)}).

    game             "FILE.py:Class", "package.module:Class", or the class itself
    config           the game's JSON-able config dict
    episodes, fps    episodes played in a row (>= 1), frames per second (1 to 240)
    netcode          SessionConfig settings: input_delay, max_prediction, desync_interval,
                     disconnect_notify_ms, disconnect_timeout_ms, keepalive_ms
    waiting_room     a WaitingRoom (default: WaitingRoom())
    grace_s          seconds a dropped participant's seat is held for them (0 to 600, default 15): meanwhile
                     the `stand_in` policy plays it and the participant may come back (reconnect, reload)
    stand_in         the policy playing a held seat (default "idle": the game's default action)
    reveal_ai        tell participants which seats an AI plays, and when an AI takes a seat (default False:
                     partners only ever see a neutral "connection dropped" notice); an AISeat's `reveal`
                     overrides it for its seat
    on_partner_drop  after the grace period: "ai": a fill_policy bot takes the seat; "end": the match ends
    on_interrupted   what participants do after the server stopped (crashed) mid-match: "continue"
                     past this scene (the match stays recorded as interrupted) or "rerun" it (a new match)
    fill_policy      the policy for empty or dropped human seats
                     (ai values, fill_policy and stand_in each take a policy spec or an AISeat: scenes/ai_seat.py)
    keys             {browser key name (KeyboardEvent.key): action} for the human players; a tuple of key
                     names, e.g. ("ArrowUp", "ArrowLeft"): 5, is a combination held together. Of the held
                     combinations the one with the most keys wins; among equals, the one with the key pressed
                     last, then the one declared first
    packages         extra Pyodide packages (e.g. "numpy") the browser loads before play
    """

    kind = "match"

    def __init__(self, id: str, game: str | type, *, config: dict | None = None, humans: Sequence[str] = (),
                 ai: Mapping[str, Any] | None = None, episodes: int = 1, fps: int = 60,
                 netcode: Mapping[str, Any] | None = None, waiting_room: WaitingRoom | None = None,
                 on_partner_drop: str = "ai", fill_policy: Any = "random", keys: Mapping[str, Any] | None = None,
                 title: str = "", html: str = "", markdown: str | None = None,
                 packages: Sequence[str] = (), on_interrupted: str = "continue", grace_s: float = 15,
                 stand_in: Any = "idle", reveal_ai: bool = False) -> None:
        super().__init__(id, title)
        self.game = game
        self.config = config
        self.humans = (humans,) if isinstance(humans, str) else humans
        self.ai = {} if ai is None else ai
        self.episodes = episodes
        self.fps = fps
        self.netcode = {} if netcode is None else netcode
        self.waiting_room = WaitingRoom() if waiting_room is None else waiting_room
        self.on_partner_drop = on_partner_drop
        self.on_interrupted = on_interrupted
        self.fill_policy = fill_policy
        self.grace_s = grace_s
        self.stand_in = stand_in
        self.reveal_ai = reveal_ai
        self.keys = {} if keys is None else (
            {combo_name(key): action for key, action in keys.items()} if isinstance(keys, Mapping) else keys)
        self.html = html
        self.markdown = markdown
        self.packages = packages
        self.game_class: type | None = game if isinstance(game, type) else None
        self._game_players: tuple[str, ...] | None = None
        self._seat_settings: tuple[dict[str, AISeat], AISeat, AISeat] | None = None

    @property
    def game_spec(self) -> str:
        """The game as a spec string (a class gives "its.module:Class")."""
        if isinstance(self.game, type):
            return f"{self.game.__module__}:{self.game.__qualname__}"
        return self.game

    def seat_settings(self) -> tuple[dict[str, AISeat], AISeat, AISeat]:
        """The AI settings of the `ai` players, of `fill_policy` and of `stand_in`, each as an AISeat
        (made once, so the policies `check` resolved stay resolved)."""
        if self._seat_settings is None:
            self._seat_settings = ({p: as_ai_seat(v) for p, v in self.ai.items()}, as_ai_seat(self.fill_policy),
                                   as_ai_seat(self.stand_in))
        return self._seat_settings

    def revealed_ai(self) -> list[str]:
        """The `ai` players participants are told about (their seat's reveal, else the scene's reveal_ai)."""
        return [p for p, seat in self.seat_settings()[0].items() if seat.reveals(self.reveal_ai)]

    @property
    def players(self) -> tuple[str, ...]:
        """Every player: in the game's order once the class is known, else humans then AI."""
        if self._game_players is not None:
            return self._game_players
        return (*self.humans, *self.ai)

    def check(self, resolve: Resolver | None = None) -> None:
        """Check everything; with the game class (given, or loaded with `resolve`) also the players,
        config, keys and netcode settings against the game. Sets `game_class` when it is known."""
        super().check(resolve)
        check_body(self.html or None, self.markdown, required=False)
        self._check_game_spec()
        self._check_seats()
        for name, value, low, high in (("episodes", self.episodes, 1, 1000), ("fps", self.fps, 1, 240)):
            if type(value) is not int or not low <= value <= high:
                raise ExperimentError(f"{name} must be an int from {low} to {high}, got {value!r}")
        if not isinstance(self.waiting_room, WaitingRoom):
            raise ExperimentError(f"waiting_room must be a WaitingRoom(...), got {type(self.waiting_room).__name__}")
        self.waiting_room.check()
        if self.on_partner_drop not in ("ai", "end"):
            raise ExperimentError(f"on_partner_drop must be 'ai' or 'end', got {self.on_partner_drop!r}")
        if type(self.grace_s) not in (int, float) or not 0 <= self.grace_s <= 600:
            raise ExperimentError(f"grace_s must be a number of seconds from 0 to 600, got {self.grace_s!r}")
        if type(self.reveal_ai) is not bool:
            raise ExperimentError(f"reveal_ai must be True or False, got {self.reveal_ai!r}")
        if self.on_interrupted not in INTERRUPTED_CHOICES:
            raise ExperimentError(f"on_interrupted must be 'continue' or 'rerun', got {self.on_interrupted!r}")
        self._check_json()
        if self.game_class is None and resolve is not None:
            try:
                game_class = resolve(self.game)  # type: ignore[arg-type]
            except Exception as exc:
                raise ExperimentError(f"game {self.game!r} could not be loaded: {exc}") from None
            if not isinstance(game_class, type):
                raise ExperimentError(f"game {self.game!r} is a {type(game_class).__name__}, not a class")
            self.game_class = game_class
        env = self._check_against_game() if self.game_class is not None else None
        self._check_netcode(env)
        if resolve is not None:
            ai, fill, stand_in = self.seat_settings()
            for where, seat in [*((f"ai[{p!r}]", v) for p, v in ai.items()), ("fill_policy", fill),
                                ("stand_in", stand_in)]:
                try:
                    seat.resolve(resolve)
                except Exception as exc:
                    raise ExperimentError(f"{where}: policy {seat.policy!r} could not be loaded: {exc}") from None

    def _check_game_spec(self) -> None:
        if isinstance(self.game, type):
            return
        target, sep, name = self.game.rpartition(":") if isinstance(self.game, str) else ("", "", "")
        if not (sep and target and name):
            raise ExperimentError(f"game {self.game!r:.80} must be 'FILE.py:Class', 'package.module:Class' or a class")

    def _check_seats(self) -> None:
        humans = self.humans
        if not isinstance(humans, (list, tuple)) or not humans or not all(isinstance(h, str) for h in humans):
            raise ExperimentError(f"humans must be a non-empty list of player ids, got {humans!r:.80}")
        if len(set(humans)) != len(humans):
            raise ExperimentError(f"humans lists a player twice: {list(humans)!r}")
        if not isinstance(self.ai, Mapping) or not all(isinstance(p, str) for p in self.ai):
            raise ExperimentError(f"ai must be a dict {{player id: policy or AISeat(...)}}, got {self.ai!r:.80}")
        for player in self.ai:
            if player in humans:
                raise ExperimentError(f"player {player!r} is in both humans and ai")
        for where, value in [*((f"ai[{p!r}]", v) for p, v in self.ai.items()), ("fill_policy", self.fill_policy),
                             ("stand_in", self.stand_in)]:
            seat = as_ai_seat(value)
            reason = seat.why_not()
            if not reason and where in ("fill_policy", "stand_in") and seat.runs != "server":
                reason = (f"runs={seat.runs!r} is not supported for a seat whose participant dropped (the server "
                          "plays it with this policy); use runs='server' (a remote seat's own fallback= covers its "
                          "agent leaving)")
            if reason:
                raise ExperimentError(f"{where}: {reason}")

    def _check_json(self) -> None:
        if self.config is not None and not isinstance(self.config, dict):
            raise ExperimentError(f"config must be a dict or None, got {type(self.config).__name__}")
        if not isinstance(self.keys, Mapping):
            raise ExperimentError(f"keys must be a dict {{key name: action}}, got {type(self.keys).__name__}")
        combos: dict[frozenset[str], str] = {}
        for key in self.keys:
            reason = _why_not_key(key)
            if reason:
                raise ExperimentError(f"keys: {reason}")
            same = combos.setdefault(frozenset(combo_keys(key)), key)
            if same != key:
                raise ExperimentError(f"keys: {shown_key(key)} and {shown_key(same)} are the same combination; "
                                      "keep one")
        if not isinstance(self.packages, (list, tuple)) or not all(isinstance(p, str) and p for p in self.packages):
            raise ExperimentError(f"packages must be a list of Pyodide package names, got {self.packages!r:.80}")
        for package in self.packages:
            if not PACKAGE_NAME.fullmatch(package):
                raise ExperimentError(f"packages: {package!r:.60} is not a package name (e.g. 'more-itertools'); the "
                                      "version is the one of the wheel in the server's package folder")
        for what, value in (("config", self.config), ("keys", dict(self.keys))):
            problem = _json_problem(value, what)
            if problem:
                raise ExperimentError(problem)

    def _check_against_game(self) -> Any:
        cls = self.game_class
        assert cls is not None
        name = getattr(cls, "__name__", repr(cls))
        try:
            env = cls(self.config)
        except Exception as exc:
            raise ExperimentError(f"game {name} refused its config: {type(exc).__name__}: {exc}") from None
        players = list(getattr(env, "players", ()))
        self._game_players = tuple(players)
        seated = [*self.humans, *self.ai]
        if sorted(players) != sorted(seated):
            missing = [p for p in players if p not in seated]
            unknown = [p for p in seated if p not in players]
            parts = [f"no seat for {missing} (add to humans or ai)"] if missing else []
            parts += [f"unknown players {unknown}"] if unknown else []
            raise ExperimentError(f"humans + ai must be exactly the players of {name} {players}: {', '.join(parts)}")
        for key, action in self.keys.items():
            for player in self.humans:
                reason = action_space_for(env, player).why_not(action)
                if reason:
                    raise ExperimentError(
                        f"keys[{shown_key(key)}] = {action!r:.40} is not an action of {player!r}: {reason}")
        return env

    def _check_netcode(self, env: Any) -> None:
        if not isinstance(self.netcode, Mapping):
            raise ExperimentError(f"netcode must be a dict of settings, got {type(self.netcode).__name__}")
        for key in self.netcode:
            if key not in NETCODE_KEYS:
                raise ExperimentError(f"netcode: unknown setting {key!r:.40}; known: {', '.join(NETCODE_KEYS)}")
        settings = dict(self.netcode)
        problem = _json_problem(settings, "netcode")
        if problem:
            raise ExperimentError(problem)
        for key, value in settings.items():
            if key != "input_delay" and not is_finite_number(value):
                raise ExperimentError(f"netcode: {key} must be a number, got {value!r:.40}")
        delays = settings.get("input_delay")
        if isinstance(delays, dict):
            unknown = [p for p in delays if p not in self.players]
            if unknown:
                raise ExperimentError(f"netcode: input_delay names unknown players {unknown}")
        try:
            if env is not None:
                SessionConfig.for_env(env, fps=self.fps, **settings)
            else:
                SessionConfig(players=("p",), action_spaces={"p": Discrete(1)}, default_actions={"p": 0},
                              fps=self.fps, **settings)
        except NetcodeError as exc:
            raise ExperimentError(f"netcode: {str(exc).partition('] ')[2]}") from None
        except Exception as exc:  # an env whose members break the contract
            raise ExperimentError(f"game {self.game_spec} breaks the Environment contract ({type(exc).__name__}: "
                                  f"{exc}); run `coplay check-env {self.game_spec}`") from None

    def parse_advance(self, data: Any) -> dict[str, Any]:
        raise AnswerError({"*": "a match scene ends when its match ends; it cannot be advanced"})

    def to_client(self, context: ClientContext | None = None) -> dict[str, Any]:
        return {
            **super().to_client(context),
            "html": body_html(self.html or None, self.markdown),
            "game": self.game_spec,
            "players": list(self.players),
            "ai": self.revealed_ai(),
            "keys": dict(self.keys),
            "fps": self.fps,
            "episodes": self.episodes,
            "waiting_message": self.waiting_room.message,
        }
