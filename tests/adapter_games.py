"""Third-party-style games for the adapter tests, written as their authors would, with no coplay glue.

- `SeedsCartPole`: the seed documents' single-agent contract (`seeds:tests.adapter_games:SeedsCartPole`),
  pure Python, randomness from a `random.Random` seeded by config["seed"].
- `parallel_env(**config)`: a small PettingZoo Parallel env (`pettingzoo:tests.adapter_games`): two
  agents race to a target with numpy state and `np_random`; an agent that arrives leaves the env.
"""
from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class SeedsCartPole:
    """CartPole in plain Python: Environment(config), reset() -> state, step(action) -> dict."""

    n_actions = 2

    def __init__(self, config: dict[str, Any]) -> None:
        self.rng = random.Random(config.get("seed", 0))
        self.max_steps = config.get("max_steps", 200)
        self.state = [0.0, 0.0, 0.0, 0.0]
        self.steps = 0

    def reset(self) -> list[float]:
        self.state = [self.rng.uniform(-0.05, 0.05) for _ in range(4)]
        self.steps = 0
        return list(self.state)

    def step(self, action: int) -> dict[str, Any]:
        x, x_dot, theta, theta_dot = self.state
        force = 10.0 if action == 1 else -10.0
        # Only + - * / and sqrt-free arithmetic, with a polynomial sine/cosine: the same bits in every runtime.
        sin, cos = theta - theta ** 3 / 6, 1 - theta ** 2 / 2
        temp = (force + 0.05 * theta_dot ** 2 * sin) / 1.1
        theta_acc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos ** 2 / 1.1))
        x_acc = temp - 0.05 * theta_acc * cos / 1.1
        self.state = [x + 0.02 * x_dot, x_dot + 0.02 * x_acc, theta + 0.02 * theta_dot, theta_dot + 0.02 * theta_acc]
        self.steps += 1
        fallen = abs(self.state[0]) > 2.4 or abs(self.state[2]) > 0.2095
        return {"state": list(self.state), "reward": 1.0, "done": fallen or self.steps >= self.max_steps,
                "truncated": not fallen and self.steps >= self.max_steps, "info": {"steps": self.steps}}


class Race(ParallelEnv):
    """Two agents on a line: action 0 waits, 1 steps right, 2 sprints (sometimes stumbles); first to 20 wins."""

    metadata = {"name": "race_v0"}

    def __init__(self, max_cycles: int = 60) -> None:
        self.possible_agents = ["red", "blue"]
        self.render_mode = None
        self.max_cycles = max_cycles
        self.agents: list[str] = []
        self.position = np.zeros(2, dtype=np.int64)
        self.cycles = 0

    def observation_space(self, agent: str) -> spaces.Space:
        return spaces.Box(0, 40, shape=(2,), dtype=np.int64)

    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(3)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.np_random = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.position = np.zeros(2, dtype=np.int64)
        self.cycles = 0
        return {a: self.position.copy() for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        rewards, terminations, truncations = {}, {}, {}
        self.cycles += 1
        for agent, action in actions.items():
            index = self.possible_agents.index(agent)
            stride = [0, 1, 2 if self.np_random.random() < 0.7 else 0][action]
            self.position[index] += stride
            rewards[agent] = float(stride) / 10
            terminations[agent] = bool(self.position[index] >= 20)
            truncations[agent] = self.cycles >= self.max_cycles
        observations = {a: self.position.copy() for a in actions}
        infos = {a: {"cycles": self.cycles, "distance": math.floor(float(self.position.sum()))} for a in actions}
        self.agents = [a for a in self.agents if not (terminations[a] or truncations[a])]
        return observations, rewards, terminations, truncations, infos


def parallel_env(**config: Any) -> Race:
    return Race(**config)
