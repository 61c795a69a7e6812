"""The PettingZoo Race of tests/adapter_games.py behind the AEC API only (`env()`, no `parallel_env()`),
as `pettingzoo:tests.adapter_games_aec`: the adapter converts it back with `aec_to_parallel`."""
from __future__ import annotations

from typing import Any

from pettingzoo.utils.conversions import parallel_to_aec

from tests.adapter_games import Race


def env(**config: Any) -> Any:
    return parallel_to_aec(Race(**config))
