"""`pettingzoo:MODULE`: a PettingZoo env module, e.g. `pettingzoo:pettingzoo.classic.rps_v2`.

The module must offer `parallel_env(**config)` (the Parallel API) or `env(**config)` (the AEC
API, converted with `pettingzoo.utils.conversions.aec_to_parallel`). The match config is passed
as keyword arguments, except `default_action`, which the adapter keeps (the action of "no key
pressed": one for all players or {player: action}; default: each space's first value).

- Players are `possible_agents`, as strings (`str(agent)`); their action spaces are converted
  like Gymnasium's (game/adapters/__init__.py).
- `reset(seed)` calls `reset(seed=seed)`. Each step passes the actions of the agents still in
  the env; an agent that has left gets its last observation and reward 0 (its input is ignored).
- The episode ends when no agent is left: truncated when every agent that left last was
  truncated and none terminated, else terminated. Per-agent flags are in
  `info["terminations"]` / `info["truncations"]`, per-agent infos in `info["agents"]`. Once
  ended, the env is not stepped again until the next reset.
- Snapshots: the generic deep snapshot (game/snapshot.py) of the parallel env and the envs
  it wraps. render(): the observations as text unless the env's render() returns coplay draw
  primitives.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from game.adapters import AdapterError, convert_space, default_of, plain, render_or_text, to_native
from game.snapshot import capture, restore_attributes


def adapt(module_name: str) -> type:
    """The Environment-contract class for the PettingZoo env module `module_name`."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AdapterError(f"pettingzoo:{module_name}: cannot import it ({exc}); is pettingzoo installed "
                           "(pip install 'coplay[pettingzoo]') with the env's own dependencies?") from exc
    if not callable(getattr(module, "parallel_env", None)) and not callable(getattr(module, "env", None)):
        raise AdapterError(f"pettingzoo:{module_name} has neither parallel_env() nor env()")
    name = "PettingZoo_" + "".join(c if c.isalnum() else "_" for c in module_name)
    return type(name, (PettingZooEnv,), {"module_name": module_name, "__module__": __name__})


def make_parallel(module_name: str, settings: dict[str, Any]) -> Any:
    """The module's parallel env, converting an AEC-only module."""
    module = importlib.import_module(module_name)
    if callable(getattr(module, "parallel_env", None)):
        return module.parallel_env(**settings)
    from pettingzoo.utils.conversions import aec_to_parallel   # noqa: PLC0415 (lazy)
    return aec_to_parallel(module.env(**settings))


class PettingZooEnv:
    """The Environment contract around a PettingZoo parallel env (`module_name` set by `adapt`)."""

    module_name: str

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        settings = dict(config or {})
        default = settings.pop("default_action", None)
        self.env = make_parallel(self.module_name, settings)
        self.agents = {str(agent): agent for agent in self.env.possible_agents}   # player id -> agent id
        if not self.agents:
            raise AdapterError(f"pettingzoo:{self.module_name} has no possible_agents")
        self.players = tuple(self.agents)
        self.action_space = {player: convert_space(self.env.action_space(agent), f"action_space({agent!r})")
                             for player, agent in self.agents.items()}
        if default is None:
            self.default_action = {player: default_of(space) for player, space in self.action_space.items()}
        elif isinstance(default, Mapping):
            self.default_action = {player: default[player] for player in self.players}
        else:
            self.default_action = {player: default for player in self.players}
        self.observations: dict[str, Any] = {player: None for player in self.players}
        self.ended = False

    def reset(self, seed: int) -> dict[str, Any]:
        observations, _infos = self.env.reset(seed=seed)
        self.observations = {player: plain(observations.get(agent)) for player, agent in self.agents.items()}
        self.ended = False
        return dict(self.observations)

    def step(self, actions: dict[str, Any]) -> dict[str, Any]:
        rewards = {player: 0.0 for player in self.players}
        if self.ended or not self.env.agents:
            self.ended = True
            return self._result(rewards, terminated=True, truncated=False, info={})
        live = list(self.env.agents)
        native = {agent: to_native(self.env.action_space(agent), actions[str(agent)]) for agent in live}
        observations, agent_rewards, terminations, truncations, infos = self.env.step(native)
        for agent, observation in observations.items():
            self.observations[str(agent)] = plain(observation)
        for agent, reward in agent_rewards.items():
            rewards[str(agent)] = float(reward)
        left = [agent for agent in live if terminations.get(agent) or truncations.get(agent)]
        self.ended = not self.env.agents
        truncated = self.ended and bool(left) and all(truncations.get(a) and not terminations.get(a) for a in left)
        info = {"terminations": {str(a): bool(v) for a, v in terminations.items()},
                "truncations": {str(a): bool(v) for a, v in truncations.items()},
                "agents": {str(a): plain(v) for a, v in infos.items()}}
        return self._result(rewards, terminated=self.ended and not truncated, truncated=truncated, info=info)

    def _result(self, rewards: dict[str, float], terminated: bool, truncated: bool,
                info: dict[str, Any]) -> dict[str, Any]:
        return {"observations": dict(self.observations), "rewards": rewards,
                "terminated": terminated, "truncated": truncated, "info": info}

    def get_state(self) -> Any:
        return {"env": capture(self.env), "observations": plain(self.observations), "ended": self.ended}

    def set_state(self, state: Any) -> None:
        restore_attributes(self.env, state["env"])
        self.observations = plain(state["observations"])
        self.ended = state["ended"]

    def render(self) -> list[dict[str, Any]]:
        primitives = self.env.render() if getattr(self.env, "render_mode", None) is not None else None
        return render_or_text(primitives, self.module_name, self.observations)
