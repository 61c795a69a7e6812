"""`gymnasium:ENV_ID`: a registered single-agent Gymnasium env, e.g. `gymnasium:CartPole-v1`.

The match config is passed to `gymnasium.make(ENV_ID, **config)` (Gymnasium's env checker is off
unless the config sets `disable_env_checker=False`), except `default_action`, which the adapter keeps: the
action of "no key pressed" (default: Discrete's first value, Box's value nearest 0).

- One player, "player". Action spaces Discrete, Box (finite bounds; per-item bounds become the
  overall min and max), MultiDiscrete, MultiBinary, Dict and Tuple are converted to game.spaces;
  Box actions reach the env as numpy arrays of the space's dtype. No observation_space is declared
  (Gymnasium's bounds are often infinite).
- Observations and info are made plain JSON (numpy arrays to lists, numpy scalars to numbers).
- `reset(seed)` calls `env.reset(seed=seed)`. Once an episode has ended the env is not stepped
  again (Gymnasium forbids it): it stays at its last observation until the next reset.
- Snapshots: the generic deep snapshot (game/snapshot.py) of the env and its wrappers: their
  attributes, numpy arrays and `np_random`'s bit-generator state. Envs that hold simulator
  handles outside Python objects (MuJoCo, Box2D worlds, Atari ROMs) cannot be snapshotted this
  way; `coplay check-env` says so (`not_snapshottable` or `set_state_diverges`).
- render(): with `render_mode` unset the observation is drawn as text; an env whose render()
  returns coplay draw primitives (game/render.py) is drawn with them.
"""
from __future__ import annotations

from typing import Any

from game.adapters import AdapterError, convert_space, default_of, plain, render_or_text, to_native
from game.snapshot import capture, restore_attributes

PLAYER = "player"


def adapt(env_id: str) -> type:
    """The Environment-contract class for the Gymnasium env `env_id` (checked to be registered)."""
    try:
        import gymnasium   # noqa: PLC0415 (lazy: only games that use Gymnasium need it)
    except ImportError as exc:
        raise AdapterError(f"gymnasium:{env_id} needs the gymnasium package: pip install 'coplay[gymnasium]' "
                           f"({exc})") from exc
    try:
        gymnasium.spec(env_id)
    except gymnasium.error.Error as exc:
        raise AdapterError(f"gymnasium:{env_id}: no such registered env ({exc})") from exc
    name = "Gymnasium_" + "".join(c if c.isalnum() else "_" for c in env_id)
    return type(name, (GymnasiumEnv,), {"env_id": env_id, "__module__": __name__})


class GymnasiumEnv:
    """The Environment contract around `gymnasium.make(env_id, **config)` (`env_id` set by `adapt`)."""

    env_id: str
    players = (PLAYER,)

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        import gymnasium   # noqa: PLC0415
        settings = dict(config or {})
        default = settings.pop("default_action", None)
        settings.setdefault("disable_env_checker", True)
        self.env = gymnasium.make(self.env_id, **settings)
        self.action_space = convert_space(self.env.action_space, f"{self.env_id}'s action_space")
        self.default_action = default_of(self.action_space) if default is None else default
        self.observation: Any = None
        self.ended = False

    def reset(self, seed: int) -> dict[str, Any]:
        observation, _info = self.env.reset(seed=seed)
        self.observation = plain(observation)
        self.ended = False
        return {PLAYER: self.observation}

    def step(self, actions: dict[str, Any]) -> dict[str, Any]:
        if self.ended:
            return self._result(0.0, terminated=True, truncated=False, info={})
        observation, reward, terminated, truncated, info = self.env.step(
            to_native(self.env.action_space, actions[PLAYER]))
        self.observation = plain(observation)
        self.ended = bool(terminated or truncated)
        return self._result(float(reward), bool(terminated), bool(truncated), plain(info))

    def _result(self, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]) -> dict[str, Any]:
        return {"observations": {PLAYER: self.observation}, "rewards": {PLAYER: reward},
                "terminated": terminated, "truncated": truncated, "info": info}

    def get_state(self) -> Any:
        return {"env": capture(self.env), "observation": self.observation, "ended": self.ended}

    def set_state(self, state: Any) -> None:
        restore_attributes(self.env, state["env"])
        self.observation = plain(state["observation"])
        self.ended = state["ended"]

    def render(self) -> list[dict[str, Any]]:
        primitives = self.env.render() if self.env.render_mode is not None else None
        return render_or_text(primitives, self.env_id, {PLAYER: self.observation})
