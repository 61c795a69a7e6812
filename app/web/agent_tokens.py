"""The tokens of an experiment's remote agents (`AISeat(runs="remote", agent=NAME)`, scenes/ai_seat.py).

Each agent named by a remote seat has one token, scoped to this experiment: the environment variable
`COPLAY_AGENT_TOKEN_<NAME>` (NAME upper-cased, - as _; at least 16 characters) when it is set, otherwise
one generated on first use and kept, readable by its owner only, in `DATA/<experiment>/agent_token_<name>`.
Like the admin token (app/web/admin.py) it is never printed, logged or hard-coded: `coplay serve` says
where it is, and the agent operator passes it to `coplay agent --token`.
"""
from __future__ import annotations

import os
from typing import Any

from app.web.admin import AdminTokenError, generated_secret
from app.live.agents import MIN_TOKEN_LENGTH

ENV_PREFIX = "COPLAY_AGENT_TOKEN_"


def agent_names(experiment: Any) -> list[str]:
    """The agents the experiment's remote seats name, sorted."""
    names = set()
    for scene in experiment.match_scenes():
        for seat in scene.seat_settings()[0].values():
            if seat.runs == "remote" and seat.agent:
                names.add(seat.agent)
    return sorted(names)


def env_var(name: str) -> str:
    return ENV_PREFIX + name.upper().replace("-", "_")


def token_path(experiment_dir: str, name: str) -> str:
    return os.path.join(experiment_dir, f"agent_token_{name}")


def agent_tokens(experiment: Any, experiment_dir: str) -> dict[str, str]:
    """{agent name: token} for every agent of the experiment (AdminTokenError for a too-short variable)."""
    tokens = {}
    for name in agent_names(experiment):
        token = os.environ.get(env_var(name), "").strip()
        if token and len(token) < MIN_TOKEN_LENGTH:
            raise AdminTokenError(f"{env_var(name)} must be at least {MIN_TOKEN_LENGTH} characters long (it has "
                                  f"{len(token)}); unset it to use a generated token kept in "
                                  f"{token_path(experiment_dir, name)}")
        tokens[name] = token or generated_secret(token_path(experiment_dir, name))
    return tokens


def token_locations(experiment: Any, experiment_dir: str) -> list[str]:
    """Where each agent's operator finds its token, for `coplay serve` to print (never the token itself)."""
    where = []
    for name in agent_names(experiment):
        if os.environ.get(env_var(name), "").strip():
            where.append(f"agent {name!r}: the token is the {env_var(name)} environment variable")
        else:
            where.append(f"agent {name!r}: the token is in {token_path(experiment_dir, name)} "
                         f"(or set {env_var(name)})")
    return where
