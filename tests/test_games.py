"""Behaviour of the reference games: Pong (real-time physics) and Cooking (cooperative grid)."""
from __future__ import annotations

import json

import pytest

from game.games.cooking import Cooking
from game.games.pong import SCALE, Pong
from game.hashing import state_hash
from game.render import why_not_primitives
from game.rng import Rng

STAY, UP, DOWN, LEFT, RIGHT, INTERACT = range(6)


def random_actions(env, seed: int, frames: int) -> list[dict]:
    rng = Rng(seed)
    return [{p: env.action_space.sample(rng) for p in env.players} for _ in range(frames)]


def idle(env) -> dict:
    return {p: env.default_action for p in env.players}


# -- shared contract behaviour ------------------------------------------------------------

GAMES = [Pong, Cooking]


@pytest.mark.parametrize("cls", GAMES)
def test_same_seed_and_inputs_give_identical_states_every_frame(cls):
    a, b = cls(), cls()
    assert state_hash(a.get_state()) == state_hash(b.get_state())
    a.reset(7), b.reset(7)
    for actions in random_actions(a, 1, 600):
        ra, rb = a.step(actions), b.step(actions)
        assert state_hash(a.get_state()) == state_hash(b.get_state())
        assert ra == rb


@pytest.mark.parametrize("cls", GAMES)
def test_set_state_on_fresh_instance_continues_identically(cls):
    a = cls()
    a.reset(3)
    inputs = random_actions(a, 2, 400)
    for actions in inputs[:150]:
        a.step(actions)
    b = cls()
    b.set_state(json.loads(json.dumps(a.get_state())))  # survives a JSON round trip too
    for actions in inputs[150:]:
        assert a.step(actions) == b.step(actions)
        assert a.get_state() == b.get_state()


@pytest.mark.parametrize("cls", GAMES)
def test_rollback_restores_and_resimulates(cls):
    env = cls()
    env.reset(11)
    guessed, actual = random_actions(env, 5, 8), random_actions(env, 6, 8)
    for actions in random_actions(env, 4, 100):
        env.step(actions)
    snapshot = env.get_state()
    for actions in guessed:
        env.step(actions)
    env.set_state(snapshot)
    for actions in actual:
        env.step(actions)
    reference = cls()
    reference.reset(11)
    for actions in random_actions(env, 4, 100) + actual:
        reference.step(actions)
    assert env.get_state() == reference.get_state()


@pytest.mark.parametrize("cls", GAMES)
def test_states_never_alias_the_env(cls):
    env = cls()
    env.reset(0)
    for actions in random_actions(env, 8, 60):
        env.step(actions)
    # Mutating what get_state() returned does not touch the env ...
    state = env.get_state()
    before = state_hash(state)
    for value in state.values():
        if isinstance(value, list):
            value.clear()
    state["frame"] = 999
    assert state_hash(env.get_state()) == before
    # ... and stepping after set_state(given) does not touch `given`.
    given = env.get_state()
    env.set_state(given)
    for actions in random_actions(env, 9, 60):
        env.step(actions)
    assert state_hash(given) == before


@pytest.mark.parametrize("cls", GAMES)
def test_render_and_hash_are_valid_throughout(cls):
    env = cls()
    env.reset(5)
    assert why_not_primitives(env.render()) is None
    for actions in random_actions(env, 9, 300):
        env.step(actions)
    primitives = env.render()
    assert why_not_primitives(primitives) is None
    assert primitives[0]["type"] == "viewport"
    assert len(state_hash(env.get_state())) == 16


@pytest.mark.parametrize("cls", GAMES)
def test_observations_are_json_able_and_per_player(cls):
    env = cls()
    obs = env.reset(1)
    assert set(obs) == set(env.players)
    result = env.step(idle(env))
    assert json.loads(json.dumps(result)) == result
    assert set(result["rewards"]) == set(env.players)
    assert all(type(r) is float for r in result["rewards"].values())


@pytest.mark.parametrize("cls", GAMES)
def test_unknown_config_key_is_named(cls):
    with pytest.raises(ValueError, match="'widht'"):
        cls({"widht": 3})
    with pytest.raises(ValueError, match="must be a dict"):
        cls(["not", "a", "dict"])


@pytest.mark.parametrize("cls, config", [
    (Pong, None), (Pong, {"serve_delay": 0, "max_score": 1, "max_frames": 500}),
    (Cooking, None), (Cooking, {"cook_time": 2, "time_limit": 50}),
])
def test_env_checker_passes(cls, config):
    from game.checker import check_env

    report = check_env(cls, config=config, frames=400, seed=3)
    assert report.players == cls.players and not report.generic_snapshot


# -- Pong -----------------------------------------------------------------------------------

def pong_with_ball(config: dict | None = None, **state) -> Pong:
    """A Pong whose ball is already in play, with some state fields overridden (in sub-pixels)."""
    env = Pong(config)
    env.reset(0)
    env.set_state({**env.get_state(), "serve_timer": 0, **state})
    return env


def run_until(env, actions: dict, stop, limit: int = 1000) -> dict:
    for _ in range(limit):
        result = env.step(actions)
        if stop(result):
            return result
    raise AssertionError("condition never reached")


def test_pong_ball_waits_then_serves():
    env = Pong({"serve_delay": 10})
    env.reset(0)
    for _ in range(9):
        env.step(idle(env))
        assert env.get_state()["ball_vx"] == 0
    env.step(idle(env))
    state = env.get_state()
    assert state["ball_vx"] != 0
    assert state["ball_vx"] ** 2 + state["ball_vy"] ** 2 <= (6 * SCALE) ** 2


def test_pong_miss_scores_and_rewards():
    # Ball flies left along the bottom; the left paddle sits at the top and misses.
    env = pong_with_ball(ball_x=200 * SCALE, ball_y=560 * SCALE, ball_vx=-6 * SCALE, ball_vy=0,
                         left_y=48 * SCALE)
    result = run_until(env, idle(env), lambda r: r["info"]["scorer"] is not None)
    assert result["info"]["scorer"] == "right"
    assert result["rewards"] == {"left": -1.0, "right": 1.0}
    assert result["info"]["scores"] == {"left": 0, "right": 1}
    assert result["observations"]["right"]["score"] == 1
    assert result["observations"]["left"]["opponent_score"] == 1
    state = env.get_state()
    assert (state["ball_x"], state["ball_y"], state["ball_vx"]) == (400 * SCALE, 300 * SCALE, 0)
    assert state["serve_timer"] == 45
    assert not result["terminated"]
    assert env.step(idle(env))["rewards"] == {"left": 0.0, "right": 0.0}


def test_pong_center_hit_reflects_straight_and_speeds_up():
    env = pong_with_ball(ball_x=100 * SCALE, ball_y=300 * SCALE, ball_vx=-6 * SCALE, ball_vy=0,
                         left_y=300 * SCALE)
    result = run_until(env, idle(env), lambda r: env.get_state()["ball_vx"] > 0)
    state = env.get_state()
    assert result["info"]["scorer"] is None
    assert state["ball_vy"] == 0
    assert state["ball_vx"] == state["ball_speed"] == 6300  # 5% faster
    assert state["ball_x"] - 8 * SCALE >= 36 * SCALE  # never inside the paddle


@pytest.mark.parametrize("paddle_y, sign", [(330, -1), (270, 1)])
def test_pong_edge_hit_angles_the_ball(paddle_y, sign):
    # Ball hits the right paddle above (or below) its center: it leaves upwards (or downwards).
    env = pong_with_ball(ball_x=700 * SCALE, ball_y=300 * SCALE, ball_vx=6 * SCALE, ball_vy=0,
                         right_y=paddle_y * SCALE)
    run_until(env, idle(env), lambda r: env.get_state()["ball_vx"] < 0)
    state = env.get_state()
    assert state["ball_vy"] * sign > 0
    assert state["ball_vx"] ** 2 + state["ball_vy"] ** 2 <= state["ball_speed"] ** 2


def test_pong_fast_ball_does_not_tunnel_through_paddle():
    env = pong_with_ball({"paddle_width": 2, "max_ball_speed": 40, "ball_speed": 40},
                         ball_x=50 * SCALE, ball_y=300 * SCALE, ball_vx=-40 * SCALE, ball_vy=0,
                         ball_speed=40 * SCALE, left_y=300 * SCALE)
    env.step(idle(env))  # the ball's edge goes from x=42 to x=2, past the whole paddle (24..26)
    assert env.get_state()["ball_vx"] > 0


def test_pong_ball_bounces_off_top_wall():
    env = pong_with_ball(ball_x=400 * SCALE, ball_y=12 * SCALE, ball_vx=3 * SCALE, ball_vy=-6 * SCALE)
    env.step(idle(env))
    state = env.get_state()
    assert state["ball_vy"] == 6 * SCALE
    assert state["ball_y"] == 10 * SCALE  # 12 - 6 = 6 reflected about the radius (8)


def test_pong_paddles_move_and_clamp_at_edges():
    env = Pong()
    env.reset(0)
    obs = env.step({"left": UP, "right": DOWN})["observations"]
    assert obs["left"]["paddle"] == 292.0 and obs["right"]["paddle"] == 308.0
    for _ in range(100):
        obs = env.step({"left": UP, "right": DOWN})["observations"]
    assert obs["left"]["paddle"] == 48.0  # half the paddle height from the top
    assert obs["right"]["paddle"] == 552.0
    assert obs["left"]["opponent_paddle"] == 552.0


def test_pong_terminates_at_max_score():
    env = Pong({"max_score": 2, "serve_delay": 0})
    env.reset(4)
    points = 0
    for _ in range(2000):  # nobody moves: every serve is a point for someone
        result = env.step(idle(env))
        if result["info"]["scorer"]:
            points += 1
        assert result["terminated"] == (max(result["info"]["scores"].values()) >= 2)
        if result["terminated"]:
            break
    assert result["terminated"] and 2 <= points <= 3
    frozen = env.get_state()
    env.step(idle(env))
    assert env.get_state()["ball_vx"] == 0 and env.get_state()["ball_x"] == frozen["ball_x"]


def test_pong_truncates_at_max_frames():
    env = Pong({"max_frames": 10})
    env.reset(0)
    flags = [env.step(idle(env))["truncated"] for _ in range(10)]
    assert flags == [False] * 9 + [True]
    assert env.get_state()["frame"] == 10


def test_pong_different_seeds_give_different_serves():
    serves = set()
    for seed in range(20):
        env = Pong({"serve_delay": 0})
        env.reset(seed)
        state = env.get_state()
        serves.add((state["ball_vx"], state["ball_vy"]))
    assert len(serves) == 20
    assert {vx > 0 for vx, _ in serves} == {True, False}  # both directions occur


@pytest.mark.parametrize("config, key", [
    ({"width": 800.5}, "'width'"), ({"max_score": True}, "'max_score'"), ({"max_frames": 0}, "'max_frames'"),
    ({"ball_speed": "fast"}, "'ball_speed'"), ({"ball_speedup": 2}, "'ball_speedup'"),
    ({"paddle_height": 600}, "'paddle_height'"), ({"ball_speed": 20}, "'max_ball_speed'"),
    ({"ball_radius": float("nan")}, "'ball_radius'"),
])
def test_pong_invalid_config_names_the_key(config, key):
    with pytest.raises(ValueError, match=key):
        Pong(config)


def test_pong_accepts_float_speeds():
    env = Pong({"ball_speed": 5.5, "serve_delay": 0})
    assert env.get_state()["ball_speed"] == 5500


# -- Cooking --------------------------------------------------------------------------------
# Default layout ("cramped room"); chef_1 starts at [2, 1], chef_2 at [1, 3]:
#   #XPX#
#   O  2O
#   X1  X
#   #DXS#

def place(env: Cooking, **state) -> None:
    env.set_state({**env.get_state(), **state})


def test_cooking_scripted_soup_is_delivered_at_the_expected_step():
    env = Cooking({"cook_time": 20})
    env.reset(0)
    first_onion = [UP, LEFT, INTERACT, RIGHT, UP, INTERACT]  # to the onions, grab, to the pot, drop
    more_onions = [LEFT, INTERACT, RIGHT, UP, INTERACT]
    fetch_dish = [LEFT, DOWN, DOWN, INTERACT, UP, RIGHT, UP]  # dish, then face the pot again
    script = first_onion + more_onions * 2 + fetch_dish
    for step, action in enumerate(script, 1):
        result = env.step({"chef_1": action, "chef_2": STAY})
        assert result["rewards"] == {"chef_1": 0.0, "chef_2": 0.0}
        if step == 16:  # third onion in: the pot starts cooking
            pot = result["observations"]["chef_2"]["pots"][0]
            assert (pot["onions"], pot["cooking"], pot["cook_time_left"]) == (3, True, 20)
    assert env.held == ["dish", None]
    while env.frame < 35:  # the soup is not ready one step early
        env.step({"chef_1": INTERACT if env.frame == 34 else STAY, "chef_2": STAY})
    assert env.held[0] == "dish"
    result = env.step({"chef_1": INTERACT, "chef_2": STAY})  # step 36 = 16 + cook_time
    assert env.held[0] == "soup"
    assert result["observations"]["chef_1"]["pots"][0]["onions"] == 0
    # chef_2 blocks [1, 3], so go around: down, right, face the window, serve.
    for action in (DOWN, RIGHT, DOWN):
        assert env.step({"chef_1": action, "chef_2": STAY})["rewards"]["chef_1"] == 0.0
    result = env.step({"chef_1": INTERACT, "chef_2": STAY})
    assert env.frame == 40
    assert result["rewards"] == {"chef_1": 20.0, "chef_2": 20.0}
    assert result["info"]["score"] == 20 and result["info"]["deliveries"] == 1
    assert result["observations"]["chef_2"]["score"] == 20
    assert env.held == [None, None]


def test_cooking_moves_turn_and_respect_counters():
    env = Cooking()
    env.reset(0)
    result = env.step({"chef_1": LEFT, "chef_2": UP})  # both face a counter / dispenser: only turn
    obs = result["observations"]["chef_1"]
    assert obs["position"] == [2, 1] and obs["facing"] == "left"
    assert obs["other_position"] == [1, 3] and obs["other_facing"] == "up"
    env.step({"chef_1": RIGHT, "chef_2": RIGHT})
    assert (env.rows, env.cols) == ([2, 1], [2, 3])


@pytest.mark.parametrize("start_cols, actions, end_cols", [
    ([1, 3], (RIGHT, LEFT), [1, 3]),    # both into the same cell: neither moves
    ([1, 2], (RIGHT, LEFT), [1, 2]),    # swapping places: neither moves
    ([1, 2], (RIGHT, STAY), [1, 2]),    # into a standing cook: blocked
    ([1, 2], (RIGHT, RIGHT), [2, 3]),   # following a cook who moves away: both move
])
def test_cooking_collisions(start_cols, actions, end_cols):
    env = Cooking()
    env.reset(0)
    place(env, rows=[1, 1], cols=start_cols)
    env.step({"chef_1": actions[0], "chef_2": actions[1]})
    assert env.rows == [1, 1] and env.cols == end_cols
    assert env.facings[0] == "right"


def test_cooking_counter_handoff_and_dispensers():
    env = Cooking()
    env.reset(0)
    place(env, rows=[1, 1], cols=[1, 2], facings=["left", "down"])
    env.step({"chef_1": INTERACT, "chef_2": STAY})  # onion from the dispenser
    assert env.held == ["onion", None]
    place(env, rows=[2, 1], cols=[1, 3], facings=["left", "right"])
    env.step({"chef_1": INTERACT, "chef_2": STAY})  # onto the counter at [2, 0]
    assert env.held == [None, None] and env.counters[2] == "onion"
    assert env.step(idle(env))["observations"]["chef_2"]["counters"] == [{"position": [2, 0], "item": "onion"}]
    place(env, rows=[1, 2], cols=[1, 1], facings=["up", "left"])
    env.step({"chef_1": STAY, "chef_2": INTERACT})  # chef_2 on [2, 1] takes it from the same counter
    assert env.held == [None, "onion"] and env.counters[2] is None


def test_cooking_pot_takes_three_onions_and_no_early_plating():
    env = Cooking()
    env.reset(0)
    place(env, rows=[1, 1], cols=[2, 1], facings=["up", "up"], held=["onion", "dish"], pot_onions=[3])
    env.step({"chef_1": INTERACT, "chef_2": STAY})
    assert env.held[0] == "onion"  # the pot is full
    place(env, cols=[2, 1], facings=["up", "left"])
    env.step({"chef_1": STAY, "chef_2": INTERACT})
    assert env.held[1] == "dish"  # both hands full: the dispenser gives nothing
    place(env, held=[None, "dish"], facings=["up", "up"], rows=[1, 1], cols=[1, 2])
    env.step({"chef_1": STAY, "chef_2": INTERACT})
    assert env.held[1] == "dish"  # cooking, not ready


def test_cooking_truncates_at_time_limit():
    env = Cooking({"time_limit": 5})
    env.reset(0)
    results = [env.step(idle(env)) for _ in range(5)]
    assert [r["truncated"] for r in results] == [False] * 4 + [True]
    assert [r["observations"]["chef_1"]["time_left"] for r in results] == [4, 3, 2, 1, 0]
    assert not any(r["terminated"] for r in results)


def test_cooking_custom_layout():
    env = Cooking({"layout": ["XXPXXX", "O1  2S", "XXDXXX"], "cook_time": 3})
    obs = env.reset(0)
    assert obs["chef_1"]["position"] == [1, 1] and obs["chef_2"]["position"] == [1, 4]
    assert len(env.get_state()["counters"]) == 10
    assert why_not_primitives(env.render()) is None


@pytest.mark.parametrize("config, message", [
    ({"layout": ["XPX", "O1 2S"]}, "same"),
    ({"layout": ["XPXD", "O12Q"]}, "unknown tile 'Q' at row 1, col 3"),
    ({"layout": ["XXXD", "O12S"]}, "'P' \\(pot\\)"),
    ({"layout": ["XPXD", "O11S"]}, "exactly one '1'"),
    ({"layout": "XPXD"}, "'layout'"),
    ({"cook_time": 0}, "'cook_time'"),
    ({"time_limit": 2.5}, "'time_limit'"),
    ({"soup_reward": "lots"}, "'soup_reward'"),
])
def test_cooking_invalid_config_names_the_problem(config, message):
    with pytest.raises(ValueError, match=message):
        Cooking(config)


def test_cooking_set_state_rejects_a_state_from_another_layout():
    small = Cooking({"layout": ["XPXD", "O12S", "XXXX"]})
    with pytest.raises(ValueError, match="layout"):
        Cooking().set_state(small.get_state())
