"""Cooking: a cooperative two-cook kitchen in the spirit of Overcooked's "cramped room".

The cooks share one reward: fetch three onions into the pot, wait while it cooks, plate
the soup with a dish and deliver it at the serving window. One step is one grid move
(a match runs it at about 8 steps per second). No randomness: `reset(seed)` accepts a
seed for the contract but every episode starts the same way.

Layout characters (one string per row; rows of equal length):

    ' ' floor     'X' counter (holds one item)     '#' wall
    'O' onion dispenser     'D' dish dispenser     'P' pot     'S' serving window
    '1' / '2' floor where chef_1 / chef_2 start

Actions: 0 stay, 1 up, 2 down, 3 left, 4 right, 5 interact. A move always turns the cook
that way, and steps forward only onto free floor. Interact works on the tile faced.
Positions are [row, col] with row 0 at the top.
"""
from __future__ import annotations

from typing import Any

from game.games.config import check_number, merged_config
from game.spaces import Discrete

STAY, UP, DOWN, LEFT, RIGHT, INTERACT = range(6)
# action -> (facing name, row step, col step)
MOVES = {UP: ("up", -1, 0), DOWN: ("down", 1, 0), LEFT: ("left", 0, -1), RIGHT: ("right", 0, 1)}
FACING_STEP = {name: (dr, dc) for name, dr, dc in MOVES.values()}

DEFAULT_LAYOUT = [
    "#XPX#",
    "O  2O",
    "X1  X",
    "#DXS#",
]
DEFAULT_CONFIG: dict[str, Any] = {
    "layout": DEFAULT_LAYOUT,
    "cook_time": 20,      # steps from the third onion until the soup is ready
    "time_limit": 480,    # steps per episode (truncated then)
    "soup_reward": 20,    # given to both cooks for every delivered soup
}
TILES = " X#ODPS12"
WALKABLE = " 12"
ONIONS_PER_SOUP = 3

STATE_KEYS = ("frame", "rows", "cols", "facings", "held", "counters", "pot_onions", "pot_timers",
              "score", "deliveries")


def parse_config(config: dict | None) -> dict[str, Any]:
    """Defaults merged with `config`, validated. Raises ValueError naming the bad key."""
    merged = merged_config("Cooking", DEFAULT_CONFIG, config)
    for key in ("cook_time", "time_limit"):
        check_number("Cooking", merged, key, integer=True, low=1)
    check_number("Cooking", merged, "soup_reward")
    merged["layout"] = _check_layout(merged["layout"])
    return merged


def _check_layout(layout: Any) -> list[str]:
    if not isinstance(layout, (list, tuple)) or not layout or not all(isinstance(row, str) for row in layout):
        raise ValueError("Cooking config 'layout' must be a non-empty list of strings, one per row")
    if len({len(row) for row in layout}) != 1 or not layout[0]:
        raise ValueError("Cooking config 'layout' rows must all have the same (non-zero) length")
    text = "".join(layout)
    for r, row in enumerate(layout):
        for c, tile in enumerate(row):
            if tile not in TILES:
                raise ValueError(f"Cooking config 'layout' has unknown tile {tile!r} at row {r}, col {c}; "
                                 f"use one of {TILES!r}")
    for tile, what in (("1", "chef_1's start"), ("2", "chef_2's start")):
        if text.count(tile) != 1:
            raise ValueError(f"Cooking config 'layout' needs exactly one {tile!r} ({what}), found {text.count(tile)}")
    for tile, what in (("O", "onion dispenser"), ("D", "dish dispenser"), ("P", "pot"), ("S", "serving window")):
        if tile not in text:
            raise ValueError(f"Cooking config 'layout' needs at least one {tile!r} ({what})")
    return list(layout)


class Cooking:
    """Two cooks share a kitchen and a reward for every soup delivered."""

    players = ("chef_1", "chef_2")
    action_space = Discrete(6)
    default_action = STAY

    def __init__(self, config: dict | None = None) -> None:
        self.config = parse_config(config)
        self.layout: list[str] = self.config["layout"]
        self.n_rows, self.n_cols = len(self.layout), len(self.layout[0])
        cells = [(r, c) for r in range(self.n_rows) for c in range(self.n_cols)]  # row-major
        # Static lookups: which counter / pot index sits at a cell, and where the cooks start.
        self.counter_cells = [cell for cell in cells if self._tile(cell) == "X"]
        self.pot_cells = [cell for cell in cells if self._tile(cell) == "P"]
        self.counter_index = {cell: i for i, cell in enumerate(self.counter_cells)}
        self.pot_index = {cell: i for i, cell in enumerate(self.pot_cells)}
        self.starts = [next(cell for cell in cells if self._tile(cell) == str(i + 1)) for i in range(2)]
        self.reset(0)

    # -- the Environment contract ---------------------------------------------------

    def reset(self, seed: int) -> dict:
        """Cooks on their start tiles facing up, hands empty, counters and pots empty."""
        self.frame = 0
        self.rows = [r for r, _ in self.starts]
        self.cols = [c for _, c in self.starts]
        self.facings = ["up", "up"]
        self.held: list[str | None] = [None, None]
        self.counters: list[str | None] = [None] * len(self.counter_cells)
        self.pot_onions = [0] * len(self.pot_cells)
        self.pot_timers = [0] * len(self.pot_cells)  # steps cooked so far
        self.score = 0
        self.deliveries = 0
        return self._observations()

    def step(self, actions: dict) -> dict:
        """Cook the pots, move both cooks, then resolve interactions in player order."""
        self.frame += 1
        cook_time = self.config["cook_time"]
        for i, onions in enumerate(self.pot_onions):
            if onions == ONIONS_PER_SOUP and self.pot_timers[i] < cook_time:
                self.pot_timers[i] += 1
        chosen = [actions.get(player, STAY) for player in self.players]
        self._move(chosen)
        delivered = 0
        for i, action in enumerate(chosen):
            if action == INTERACT:
                delivered += self._interact(i)
        reward = float(delivered * self.config["soup_reward"])
        self.score += delivered * self.config["soup_reward"]
        self.deliveries += delivered
        return {
            "observations": self._observations(),
            "rewards": {player: reward for player in self.players},
            "terminated": False,
            "truncated": self.frame >= self.config["time_limit"],
            "info": {"score": self.score, "deliveries": self.deliveries, "frame": self.frame,
                     "time_left": self._time_left()},
        }

    def get_state(self) -> dict:
        """Positions, facings, held items, counter items, pots, score and frame (fresh lists)."""
        return {
            "frame": self.frame, "rows": self.rows[:], "cols": self.cols[:], "facings": self.facings[:],
            "held": self.held[:], "counters": self.counters[:], "pot_onions": self.pot_onions[:],
            "pot_timers": self.pot_timers[:], "score": self.score, "deliveries": self.deliveries,
        }

    def set_state(self, state: dict) -> None:
        """Restore a state from `get_state()` exactly (copies, so the caller's lists stay theirs)."""
        missing = [key for key in STATE_KEYS if key not in state]
        if missing:
            raise ValueError(f"Cooking state is missing {missing}")
        if len(state["counters"]) != len(self.counter_cells) or len(state["pot_onions"]) != len(self.pot_cells):
            raise ValueError("Cooking state does not fit this layout (counter or pot count differs)")
        self.frame = state["frame"]
        self.rows, self.cols = list(state["rows"]), list(state["cols"])
        self.facings, self.held = list(state["facings"]), list(state["held"])
        self.counters = list(state["counters"])
        self.pot_onions, self.pot_timers = list(state["pot_onions"]), list(state["pot_timers"])
        self.score, self.deliveries = state["score"], state["deliveries"]

    def render(self) -> list[dict]:
        """Grid tiles, items, pots with progress bars, cooks, then a time / score line."""
        size, hud = 64, 40
        out: list[dict] = [{"type": "viewport", "width": self.n_cols * size, "height": self.n_rows * size + hud,
                            "background": "#222"}]
        colors = {" ": "#ddd", "1": "#ddd", "2": "#ddd", "X": "#a57", "#": "#444",
                  "O": "#a57", "D": "#a57", "P": "#777", "S": "#6a6"}
        for r, row in enumerate(self.layout):
            for c, tile in enumerate(row):
                x, y = c * size, r * size
                out.append({"type": "rect", "x": x, "y": y, "w": size, "h": size, "color": colors[tile], "fill": True})
                label = {"O": "onions", "D": "dishes", "S": "serve"}.get(tile)
                if label:
                    out.append({"type": "text", "x": x + size / 2, "y": y + size - 6, "text": label,
                                "color": "#fff", "size": 12, "align": "center"})
                if tile in "OD":
                    out.extend(_item(x + size / 2, y + size / 2 - 6, "onion" if tile == "O" else "dish", 10))
        for (r, c), item in zip(self.counter_cells, self.counters):
            if item is not None:
                out.extend(_item(c * size + size / 2, r * size + size / 2, item, 12))
        cook_time = self.config["cook_time"]
        for (r, c), onions, timer in zip(self.pot_cells, self.pot_onions, self.pot_timers):
            x, y = c * size, r * size
            out.append({"type": "circle", "x": x + size / 2, "y": y + size / 2, "r": size * 0.38, "color": "#333"})
            for k in range(onions):
                out.extend(_item(x + 18 + 14 * k, y + size / 2, "onion", 6))
            if onions == ONIONS_PER_SOUP:
                ready = timer >= cook_time
                out.append({"type": "rect", "x": x + 6, "y": y + size - 10, "w": (size - 12) * timer / cook_time,
                            "h": 6, "color": "#4c4" if ready else "#fa0", "fill": True})
        for i, chef_color in enumerate(("#36f", "#e33")):
            cx, cy = self.cols[i] * size + size / 2, self.rows[i] * size + size / 2
            dr, dc = FACING_STEP[self.facings[i]]
            out.append({"type": "circle", "x": cx, "y": cy, "r": size * 0.3, "color": chef_color})
            out.append({"type": "line", "x1": cx, "y1": cy, "x2": cx + dc * size * 0.42, "y2": cy + dr * size * 0.42,
                        "color": "#000", "width": 4})
            held = self.held[i]
            if held is not None:
                out.extend(_item(cx + dc * size * 0.3, cy + dr * size * 0.3, held, 9))
        out.append({"type": "text", "x": 8, "y": self.n_rows * size + 27, "color": "#fff", "size": 18,
                    "text": f"Time {self._time_left()}   Score {self.score}"})
        return out

    # -- rules --------------------------------------------------------------------------

    def _tile(self, cell: tuple[int, int]) -> str:
        r, c = cell
        if 0 <= r < self.n_rows and 0 <= c < self.n_cols:
            return self.layout[r][c]
        return "#"  # outside the grid behaves like a wall

    def _time_left(self) -> int:
        return max(0, self.config["time_limit"] - self.frame)

    def _move(self, chosen: list[Any]) -> None:
        """Turn and move both cooks. Two cooks heading for one cell, or swapping, both stay."""
        old = [(self.rows[i], self.cols[i]) for i in range(2)]
        target = list(old)
        for i, action in enumerate(chosen):
            if action in MOVES:
                facing, dr, dc = MOVES[action]
                self.facings[i] = facing
                cell = (old[i][0] + dr, old[i][1] + dc)
                if self._tile(cell) in WALKABLE:
                    target[i] = cell
        if target[0] == target[1] or (target[0] == old[1] and target[1] == old[0]):
            target = old
        for i, (r, c) in enumerate(target):
            self.rows[i], self.cols[i] = r, c

    def _interact(self, i: int) -> int:
        """Cook `i` uses the tile it faces. Returns the number of soups delivered (0 or 1)."""
        dr, dc = FACING_STEP[self.facings[i]]
        cell = (self.rows[i] + dr, self.cols[i] + dc)
        tile, held = self._tile(cell), self.held[i]
        if tile == "X":
            k = self.counter_index[cell]
            if held is None and self.counters[k] is not None:
                self.held[i], self.counters[k] = self.counters[k], None
            elif held is not None and self.counters[k] is None:
                self.held[i], self.counters[k] = None, held
        elif tile == "O" and held is None:
            self.held[i] = "onion"
        elif tile == "D" and held is None:
            self.held[i] = "dish"
        elif tile == "P":
            k = self.pot_index[cell]
            if held == "onion" and self.pot_onions[k] < ONIONS_PER_SOUP:
                self.pot_onions[k] += 1  # the third onion starts the cooking (timer at 0)
                self.held[i] = None
            elif held == "dish" and self._pot_ready(k):
                self.pot_onions[k], self.pot_timers[k] = 0, 0
                self.held[i] = "soup"
        elif tile == "S" and held == "soup":
            self.held[i] = None
            return 1
        return 0

    def _pot_ready(self, k: int) -> bool:
        return self.pot_onions[k] == ONIONS_PER_SOUP and self.pot_timers[k] >= self.config["cook_time"]

    def _observations(self) -> dict:
        obs = {}
        for i, player in enumerate(self.players):
            j = 1 - i
            obs[player] = {
                "position": [self.rows[i], self.cols[i]], "facing": self.facings[i], "held": self.held[i],
                "other_position": [self.rows[j], self.cols[j]], "other_facing": self.facings[j],
                "other_held": self.held[j], "pots": self._pots_observation(),
                "counters": [{"position": [r, c], "item": item}
                             for (r, c), item in zip(self.counter_cells, self.counters) if item is not None],
                "frame": self.frame, "time_left": self._time_left(), "score": self.score,
            }
        return obs

    def _pots_observation(self) -> list[dict]:
        """Per pot: onions in it, whether it cooks or is ready, steps until ready (cook_time if not started)."""
        cook_time = self.config["cook_time"]
        pots = []
        for k, (r, c) in enumerate(self.pot_cells):
            full = self.pot_onions[k] == ONIONS_PER_SOUP
            timer = self.pot_timers[k] if full else 0
            pots.append({"position": [r, c], "onions": self.pot_onions[k], "cooking": full and timer < cook_time,
                         "ready": full and timer >= cook_time, "cook_time_left": cook_time - timer})
        return pots


def _item(x: float, y: float, item: str, r: float) -> list[dict]:
    """Draw primitives for an item centered at (x, y)."""
    if item == "onion":
        return [{"type": "circle", "x": x, "y": y, "r": r, "color": "#eb3"}]
    plate = {"type": "circle", "x": x, "y": y, "r": r, "color": "#fff"}
    if item == "soup":
        return [plate, {"type": "circle", "x": x, "y": y, "r": r * 0.6, "color": "#e63"}]
    return [plate]
