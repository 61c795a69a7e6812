"""The adapters (game/adapters/): seeds-style, Gymnasium and PettingZoo games with zero glue,
through the one loader, the env checker, `coplay simulate` and the netcode."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

from game.adapters import AdapterError, convert_space, render_or_text
from game.checker import check_env
from game.loader import LoadError, absolute_spec, load_class
from game.render import why_not_primitives
from game.spaces import Box, Dict, Discrete, Tuple
from netcode.simmatch import run_sim_match

SEEDS = "seeds:tests.adapter_games:SeedsCartPole"
GYM = "gymnasium:CartPole-v1"
PETTINGZOO = "pettingzoo:tests.adapter_games"


@pytest.fixture
def coplay(monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    monkeypatch.setattr(sys, "path", list(sys.path))
    from app import cli

    return cli.main


@pytest.mark.parametrize(("spec", "players", "episodes"), [
    (SEEDS, ("player",), 17), (GYM, ("player",), 14), (PETTINGZOO, ("red", "blue"), 8)])
def test_check_env_passes_through_each_adapter(spec: str, players: tuple[str, ...], episodes: int) -> None:
    report = check_env(load_class(spec), None, frames=300, seed=0)
    assert report.players == players and report.episodes == episodes and not report.generic_snapshot


@pytest.mark.parametrize(("spec", "peers"), [(SEEDS, 1), (GYM, 1), (PETTINGZOO, 2)])
@pytest.mark.parametrize("profile", ["wifi", "bad"])
def test_simulate_converges_episode_by_episode(spec: str, peers: int, profile: str) -> None:
    cls = load_class(spec)
    report = run_sim_match(lambda _peer: cls(None), peers=peers, profile=profile, frames=600, seed=3)
    assert report.converged, report.reason
    assert report.frames == 600 and report.episodes > 3 and report.checked_frames > 0


def test_simulate_cli_runs_one_player_games(coplay: Callable[..., int], capsys: pytest.CaptureFixture[str]) -> None:
    assert coplay(["simulate", GYM, "--frames", "300"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("converged: yes (ok)\nframes: 300 in ") and "x 1 peer(s), profile wifi" in out


def test_check_env_cli_with_an_adapter(coplay: Callable[..., int], capsys: pytest.CaptureFixture[str]) -> None:
    assert coplay(["check-env", PETTINGZOO, "--frames", "120"]) == 0
    out = capsys.readouterr().out
    assert "check-env: PettingZoo_tests_adapter_games passed (120 frames" in out
    assert "  players:    red, blue\n" in out and "  hash seed:  same trajectory" in out


def test_seeds_file_spec_relative_to_the_experiment(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(textwrap.dedent('''
        class Walker:
            action_space = 3
            noop_action = 1
            def __init__(self, config):
                self.x, self.seed = 0, config["seed"]
            def reset(self):
                self.x = self.seed % 5
                return [self.x]
            def step(self, action):
                self.x += action - 1
                return {"state": [self.x], "reward": float(self.x), "done": abs(self.x) > 6}
    '''))
    spec = absolute_spec("seeds:mine.py:Walker", str(tmp_path))
    assert spec == f"seeds:{tmp_path}/mine.py:Walker"
    cls = load_class("seeds:mine.py:Walker", str(tmp_path))
    assert cls is load_class(spec)
    env = cls(None)
    assert env.action_space == Discrete(3) and env.default_action == 1
    assert env.reset(7) == {"player": [2]}
    step = env.step({"player": 2})
    assert step == {"observations": {"player": [3]}, "rewards": {"player": 3.0}, "terminated": False,
                    "truncated": False, "info": {}}
    check_env(cls, None, frames=100)


def test_seeds_class_without_an_action_space_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bare.py").write_text("class Bare:\n    def __init__(self, config): pass\n")
    with pytest.raises(AdapterError, match="declares no action space: add `n_actions = 3`"):
        load_class(f"seeds:{tmp_path}/bare.py:Bare")(None)


def test_unknown_ids_and_modules_are_load_errors() -> None:
    with pytest.raises(AdapterError, match="gymnasium:NoSuchEnv-v0: no such registered env"):
        load_class("gymnasium:NoSuchEnv-v0")
    with pytest.raises(AdapterError, match="pettingzoo:no_such.module_v1: cannot import it"):
        load_class("pettingzoo:no_such.module_v1")
    with pytest.raises(LoadError, match="cannot import module 'no_such_module'"):
        load_class("seeds:no_such_module:Env")


def test_pettingzoo_agents_that_leave_get_their_default_and_flags_merge() -> None:
    env = load_class(PETTINGZOO)({"max_cycles": 40})
    assert env.players == ("red", "blue") and env.default_action == {"red": 0, "blue": 0}
    assert env.reset(1) == {"red": [0, 0], "blue": [0, 0]}
    steps = 0
    while True:
        result = env.step({"red": 2, "blue": 1})   # red sprints, blue walks: red leaves first
        steps += 1
        if result["info"]["terminations"].get("red"):
            break
    assert env.env.agents == ["blue"] and not result["terminated"]
    while not (result["terminated"] or result["truncated"]):
        result = env.step({"red": 2, "blue": 1})
        assert set(result["rewards"]) == {"red", "blue"} and result["rewards"]["red"] == 0.0
    assert result["terminated"] and not result["truncated"]
    again = env.step({"red": 1, "blue": 1})   # past the end: the env is left alone
    assert again["terminated"] and again["observations"] == result["observations"]


def test_pettingzoo_truncation_ends_the_episode_as_truncated() -> None:
    env = load_class(PETTINGZOO)({"max_cycles": 5})
    env.reset(0)
    results = [env.step({"red": 0, "blue": 0}) for _ in range(5)]
    assert [r["truncated"] for r in results] == [False] * 4 + [True]
    assert not results[-1]["terminated"] and results[-1]["info"]["truncations"] == {"red": True, "blue": True}


def test_gymnasium_observations_are_plain_and_config_goes_to_make() -> None:
    env = load_class(GYM)({"max_episode_steps": 5, "default_action": 1})
    assert env.action_space == Discrete(2) and env.default_action == 1
    observation = env.reset(4)["player"]
    assert type(observation) is list and all(type(x) is float for x in observation)
    results = [env.step({"player": 1}) for _ in range(5)]
    assert results[-1]["truncated"] and not any(r["truncated"] for r in results[:-1])


def test_render_bridge_draws_primitives_or_text() -> None:
    env = load_class(GYM)(None)
    env.reset(0)
    frame = env.render()
    assert why_not_primitives(frame) is None and frame[0]["type"] == "viewport"
    assert frame[1]["text"] == "CartPole-v1" and frame[2]["text"].startswith("player: [")
    own = [{"type": "circle", "x": 1, "y": 2, "r": 3, "color": "#fff"}]
    assert render_or_text(own, "t", {}) is own
    assert render_or_text([{"type": "blob"}], "t", {"a": 1.23456})[2]["text"] == "a: 1.235"


def test_gymnasium_spaces_convert() -> None:
    from gymnasium import spaces

    assert convert_space(spaces.Discrete(4, start=1), "x") == Discrete(4, 1)
    assert convert_space(spaces.Box(-1.0, 2.0, (2, 3)), "x") == Box(-1.0, 2.0, (2, 3))
    assert convert_space(spaces.Box(0, 9, (2,), dtype=int), "x") == Box(0, 9, (2,), integer=True)
    assert convert_space(spaces.MultiDiscrete([2, 3]), "x") == Tuple([Discrete(2), Discrete(3)])
    assert convert_space(spaces.Dict({"a": spaces.Discrete(2), "b": spaces.MultiBinary(3)}), "x") == Dict(
        {"a": Discrete(2), "b": Box(0, 1, (3,), integer=True)})
    with pytest.raises(AdapterError, match="infinite bounds"):
        convert_space(spaces.Box(-float("inf"), 0.0, (1,)), "the action space")


def test_adapters_stay_lazy() -> None:
    """game/ and the adapters' modules import no third-party library until an adapter spec is loaded."""
    import subprocess

    code = ("import sys, game.loader, game.adapters, game.adapters.seeds, game.adapters.gymnasium_env, "
            "game.adapters.pettingzoo_env; print(sorted(m for m in ('numpy', 'gymnasium', 'pettingzoo') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == "[]"


def test_an_aec_only_pettingzoo_module_is_converted() -> None:
    cls = load_class("pettingzoo:tests.adapter_games_aec")
    assert cls(None).players == ("red", "blue")
    report = check_env(cls, {"max_cycles": 30}, frames=150, seed=2)
    assert report.episodes >= 5
    simulated = run_sim_match(lambda _peer: cls({"max_cycles": 30}), peers=2, profile="wifi", frames=300, seed=2)
    assert simulated.converged, simulated.reason


def test_check_env_pyodide_says_what_a_gymnasium_game_lacks_in_the_browser(
    coplay: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    """Pyodide runs adapter games from the browser bundle; gymnasium's needs numpy, which only the Pyodide
    distribution has (tests/test_byog_bundles.py runs a seeds: game in Pyodide)."""
    assert coplay(["check-env", GYM, "--runtime", "pyodide", "--no-hash-seed-check"]) == 2
    err = capsys.readouterr().err
    assert "game gymnasium:CartPole-v1 cannot run in browsers: package 'numpy' cannot be served" in err
