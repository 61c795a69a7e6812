"""Draw primitives returned by `env.render()` and drawn by the browser's canvas renderer.

`render()` returns a list of dicts. An optional first `viewport` primitive sets the
logical size the renderer scales to the window (default 800 x 600) and the background.

    {"type": "viewport", "width": 800, "height": 600, "background": "#000"}
    {"type": "rect", "x", "y", "w", "h", "color", "fill": True}
    {"type": "circle", "x", "y", "r", "color"}
    {"type": "line", "x1", "y1", "x2", "y2", "color", "width": 1}
    {"type": "polygon", "points": [[x, y], ...], "color"}
    {"type": "text", "x", "y", "text", "color", "size": 16, "align": "left"|"center"|"right"}
    {"type": "image", "x", "y", "w", "h", "src"}
"""
from __future__ import annotations

from typing import Any

from game.hashing import is_finite_number

REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "viewport": ("width", "height"),
    "rect": ("x", "y", "w", "h", "color"),
    "circle": ("x", "y", "r", "color"),
    "line": ("x1", "y1", "x2", "y2", "color"),
    "polygon": ("points", "color"),
    "text": ("x", "y", "text", "color"),
    "image": ("x", "y", "w", "h", "src"),
}
_TEXT_FIELDS = {"color", "text", "src", "background", "align", "font"}


def why_not_primitives(primitives: Any) -> str | None:
    """A reason `primitives` is not a valid render() result, or None."""
    if not isinstance(primitives, list):
        return f"render() must return a list of dicts, got {type(primitives).__name__}"
    for index, item in enumerate(primitives):
        if not isinstance(item, dict) or item.get("type") not in REQUIRED_FIELDS:
            return f"render()[{index}] must be a dict whose 'type' is one of {sorted(REQUIRED_FIELDS)}, got {item!r:.60}"
        for field in REQUIRED_FIELDS[item["type"]]:
            if field not in item:
                return f"render()[{index}] ({item['type']}) is missing the field {field!r}"
            value = item[field]
            if field in _TEXT_FIELDS:
                if not isinstance(value, str):
                    return f"render()[{index}].{field} must be a str, got {value!r:.40}"
            elif field == "points":
                if not isinstance(value, list) or not all(
                    isinstance(p, (list, tuple)) and len(p) == 2 and all(is_finite_number(c) for c in p) for p in value
                ):
                    return f"render()[{index}].points must be a list of [x, y] number pairs"
            elif not is_finite_number(value):
                return f"render()[{index}].{field} must be a finite number, got {value!r:.40}"
    return None
