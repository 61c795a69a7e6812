"""Pong for two players: a real-time reference game meant to run at 60 frames per second.

All physics is integer fixed-point: positions and velocities are kept in sub-pixels
(`SCALE` per pixel), and the only non-trivial operation is `math.isqrt`, so CPython and
Pyodide produce the same states bit for bit. Serves are drawn from `game.rng.Rng`, whose
one-int state is part of `get_state()`.

Actions: 0 stay, 1 up (towards y = 0), 2 down. Coordinates follow the canvas: x grows to
the right, y grows downwards, (0, 0) is the top-left corner.
"""
from __future__ import annotations

from math import isqrt
from typing import Any

from game.games.config import check_number, merged_config
from game.rng import Rng
from game.spaces import Discrete

SCALE = 1000  # sub-pixels per pixel

STAY, UP, DOWN = 0, 1, 2

DEFAULT_CONFIG: dict[str, Any] = {
    "width": 800,           # field size in pixels (int)
    "height": 600,
    "paddle_width": 12,     # pixels
    "paddle_height": 96,
    "paddle_margin": 24,    # gap between a paddle and its side wall
    "paddle_speed": 8,      # pixels per frame
    "ball_radius": 8,
    "ball_speed": 6,        # pixels per frame at each serve
    "ball_speedup": 0.05,   # fraction of speed added on every paddle hit
    "max_ball_speed": 14,
    "serve_delay": 45,      # frames the ball waits at the center before each serve (int)
    "max_score": 5,         # first to this many points wins: terminated (int)
    "max_frames": 3600,     # truncated after this many frames (int)
}
_INT_KEYS = ("width", "height", "serve_delay", "max_score", "max_frames")

STATE_KEYS = (
    "frame", "ball_x", "ball_y", "ball_vx", "ball_vy", "ball_speed",
    "left_y", "right_y", "left_score", "right_score", "serve_timer", "rng",
)


def parse_config(config: dict | None) -> dict[str, Any]:
    """Defaults merged with `config`, validated. Raises ValueError naming the bad key."""
    merged = merged_config("Pong", DEFAULT_CONFIG, config)
    for key in DEFAULT_CONFIG:
        low = 0 if key in ("serve_delay", "ball_speedup", "paddle_margin") else 1
        high = 1 if key == "ball_speedup" else None
        check_number("Pong", merged, key, integer=key in _INT_KEYS, low=low, high=high)
    width, height = merged["width"], merged["height"]
    if merged["paddle_height"] >= height:
        raise ValueError(f"Pong config 'paddle_height' ({merged['paddle_height']}) must be less than 'height' ({height})")
    if 4 * merged["ball_radius"] >= height:
        raise ValueError(f"Pong config 'ball_radius' ({merged['ball_radius']}) must be less than a quarter of 'height'")
    if 2 * (merged["paddle_margin"] + merged["paddle_width"] + merged["ball_radius"]) >= width:
        raise ValueError("Pong config 'width' is too small for 'paddle_margin' + 'paddle_width' + 'ball_radius'")
    if merged["max_ball_speed"] < merged["ball_speed"]:
        raise ValueError("Pong config 'max_ball_speed' must be >= 'ball_speed'")
    if 4 * merged["max_ball_speed"] > height:
        raise ValueError("Pong config 'max_ball_speed' must be at most a quarter of 'height' (pixels per frame)")
    return merged


class Pong:
    """Two paddles, one ball; a point when the ball leaves the field on a side."""

    players = ("left", "right")
    action_space = Discrete(3)
    default_action = STAY

    def __init__(self, config: dict | None = None) -> None:
        self.config = parse_config(config)
        c = self.config
        # Fixed geometry in sub-pixels (static: not part of the state).
        self.width, self.height = c["width"] * SCALE, c["height"] * SCALE
        self.radius = round(c["ball_radius"] * SCALE)
        self.half_paddle = round(c["paddle_height"] * SCALE) // 2
        self.paddle_width = round(c["paddle_width"] * SCALE)
        self.paddle_speed = round(c["paddle_speed"] * SCALE)
        self.serve_speed = round(c["ball_speed"] * SCALE)
        self.max_speed = round(c["max_ball_speed"] * SCALE)
        self.speedup_permille = round(c["ball_speedup"] * 1000)
        margin = round(c["paddle_margin"] * SCALE)
        self.left_face = margin + self.paddle_width  # x the ball bounces off, left paddle
        self.right_face = self.width - margin - self.paddle_width
        self.reset(0)

    # -- the Environment contract ---------------------------------------------------

    def reset(self, seed: int) -> dict:
        """Start a match: paddles centered, ball waiting `serve_delay` frames at the center."""
        self.rng = Rng(seed)
        self.frame = 0
        self.left_y = self.right_y = self.height // 2
        self.left_score = self.right_score = 0
        self._center_ball()
        return self._observations()

    def step(self, actions: dict) -> dict:
        """Advance one frame: move the paddles, then the ball; +1/-1 reward on a point."""
        self.frame += 1
        self.left_y = self._move_paddle(self.left_y, actions.get("left", STAY))
        self.right_y = self._move_paddle(self.right_y, actions.get("right", STAY))
        scorer = None
        if self.serve_timer > 0:
            self.serve_timer -= 1
            if self.serve_timer == 0 and not self._finished():
                self._serve()
        else:
            scorer = self._move_ball()
        rewards = {"left": 0.0, "right": 0.0}
        if scorer is not None:
            if scorer == "left":
                self.left_score += 1
                rewards = {"left": 1.0, "right": -1.0}
            else:
                self.right_score += 1
                rewards = {"left": -1.0, "right": 1.0}
            self._center_ball()
        return {
            "observations": self._observations(),
            "rewards": rewards,
            "terminated": self._finished(),
            "truncated": self.frame >= self.config["max_frames"],
            "info": {"scores": {"left": self.left_score, "right": self.right_score},
                     "frame": self.frame, "scorer": scorer},
        }

    def get_state(self) -> dict:
        """A flat dict of ints (sub-pixels); cheap enough to call every frame."""
        return {
            "frame": self.frame, "ball_x": self.ball_x, "ball_y": self.ball_y,
            "ball_vx": self.ball_vx, "ball_vy": self.ball_vy, "ball_speed": self.ball_speed,
            "left_y": self.left_y, "right_y": self.right_y,
            "left_score": self.left_score, "right_score": self.right_score,
            "serve_timer": self.serve_timer, "rng": self.rng.getstate(),
        }

    def set_state(self, state: dict) -> None:
        """Restore a state from `get_state()` exactly."""
        missing = [key for key in STATE_KEYS if key not in state]
        if missing:
            raise ValueError(f"Pong state is missing {missing}")
        self.frame = state["frame"]
        self.ball_x, self.ball_y = state["ball_x"], state["ball_y"]
        self.ball_vx, self.ball_vy = state["ball_vx"], state["ball_vy"]
        self.ball_speed = state["ball_speed"]
        self.left_y, self.right_y = state["left_y"], state["right_y"]
        self.left_score, self.right_score = state["left_score"], state["right_score"]
        self.serve_timer = state["serve_timer"]
        self.rng.setstate(state["rng"])

    def render(self) -> list[dict]:
        """Viewport, center line, scores, paddles and ball, in pixels."""
        c = self.config
        w, h = c["width"], c["height"]
        pw, ph = c["paddle_width"], c["paddle_height"]
        margin = c["paddle_margin"]
        return [
            {"type": "viewport", "width": w, "height": h, "background": "#000"},
            {"type": "line", "x1": w / 2, "y1": 0, "x2": w / 2, "y2": h, "color": "#444", "width": 2},
            {"type": "text", "x": w / 4, "y": 48, "text": str(self.left_score), "color": "#fff",
             "size": 40, "align": "center"},
            {"type": "text", "x": 3 * w / 4, "y": 48, "text": str(self.right_score), "color": "#fff",
             "size": 40, "align": "center"},
            {"type": "rect", "x": margin, "y": self.left_y / SCALE - ph / 2, "w": pw, "h": ph,
             "color": "#4af", "fill": True},
            {"type": "rect", "x": w - margin - pw, "y": self.right_y / SCALE - ph / 2, "w": pw, "h": ph,
             "color": "#fa4", "fill": True},
            {"type": "circle", "x": self.ball_x / SCALE, "y": self.ball_y / SCALE,
             "r": c["ball_radius"], "color": "#fff"},
        ]

    # -- physics ----------------------------------------------------------------------

    def _finished(self) -> bool:
        target = self.config["max_score"]
        return self.left_score >= target or self.right_score >= target

    def _center_ball(self) -> None:
        self.ball_x, self.ball_y = self.width // 2, self.height // 2
        self.ball_vx = self.ball_vy = 0
        self.ball_speed = self.serve_speed
        self.serve_timer = self.config["serve_delay"]
        if self.serve_timer == 0 and not self._finished():
            self._serve()

    def _serve(self) -> None:
        """Launch the ball left or right at random, at a random angle (up to ~27 degrees)."""
        speed = self.serve_speed
        self.ball_speed = speed
        self.ball_vy = self.rng.randint(-speed // 2, speed // 2)
        direction = 1 if self.rng.randbelow(2) else -1
        self.ball_vx = direction * isqrt(speed * speed - self.ball_vy * self.ball_vy)

    def _move_paddle(self, y: int, action: Any) -> int:
        if action == UP:
            y -= self.paddle_speed
        elif action == DOWN:
            y += self.paddle_speed
        return min(max(y, self.half_paddle), self.height - self.half_paddle)

    def _move_ball(self) -> str | None:
        """Move the ball one frame; return the player who scored, if any."""
        prev_x, prev_y, vx, vy = self.ball_x, self.ball_y, self.ball_vx, self.ball_vy
        x, y = prev_x + vx, prev_y + vy
        r = self.radius
        # Top and bottom walls: reflect the position and the vertical velocity.
        if y < r:
            y, self.ball_vy = 2 * r - y, -vy
        elif y > self.height - r:
            y, self.ball_vy = 2 * (self.height - r) - y, -vy
        # Paddles: a hit when the ball's edge crosses a paddle face this frame (a swept
        # test, so a fast ball cannot tunnel through a thin paddle). `offset` is where the
        # ball meets the paddle, relative to the paddle's center.
        if vx < 0 and prev_x - r >= self.left_face > x - r:
            offset = self._offset_at_face(prev_x - r, x - r, self.left_face, prev_y, vy, self.left_y)
            if offset is not None:
                x = 2 * (self.left_face + r) - x
                self._bounce(offset, 1)
        elif vx > 0 and prev_x + r <= self.right_face < x + r:
            offset = self._offset_at_face(prev_x + r, x + r, self.right_face, prev_y, vy, self.right_y)
            if offset is not None:
                x = 2 * (self.right_face - r) - x
                self._bounce(offset, -1)
        self.ball_x, self.ball_y = x, y
        if x + r < 0:
            return "right"
        if x - r > self.width:
            return "left"
        return None

    def _offset_at_face(self, edge_before: int, edge_after: int, face: int,
                        prev_y: int, vy: int, paddle_y: int) -> int | None:
        """The ball's y relative to the paddle when its edge crosses `face`, or None on a miss."""
        offset = prev_y + vy * (edge_before - face) // (edge_before - edge_after) - paddle_y
        return offset if abs(offset) <= self.half_paddle + self.radius else None

    def _bounce(self, offset: int, direction: int) -> None:
        """Send the ball back: faster, and steeper the farther from the paddle's center it hit."""
        reach = self.half_paddle + self.radius
        speed = min(self.max_speed, self.ball_speed + self.ball_speed * self.speedup_permille // 1000)
        # |vy| up to 3/4 of the speed (about 49 degrees); rounded symmetrically about 0.
        vy = speed * abs(offset) * 3 // (4 * reach)
        self.ball_vy = vy if offset >= 0 else -vy
        self.ball_vx = direction * isqrt(speed * speed - vy * vy)
        self.ball_speed = speed

    def _observations(self) -> dict:
        ball = [self.ball_x / SCALE, self.ball_y / SCALE]
        velocity = [self.ball_vx / SCALE, self.ball_vy / SCALE]
        left, right = self.left_y / SCALE, self.right_y / SCALE
        common = {"frame": self.frame, "serve_in": self.serve_timer}
        return {
            "left": {"side": "left", "ball": ball, "ball_velocity": velocity,
                     "paddle": left, "opponent_paddle": right,
                     "score": self.left_score, "opponent_score": self.right_score, **common},
            "right": {"side": "right", "ball": list(ball), "ball_velocity": list(velocity),
                      "paddle": right, "opponent_paddle": left,
                      "score": self.right_score, "opponent_score": self.left_score, **common},
        }
