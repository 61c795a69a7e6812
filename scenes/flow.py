"""Groups that shape each participant's scene list: RandomOrder, Repeat, Conditions.

Groups nest freely, and a plain list is a block shown in its own order (so
`RandomOrder([[intro_a, match_a], [intro_b, match_b]])` shuffles two blocks).
`flatten` turns a list of scenes and groups into one participant's ordered
scenes: RandomOrder shuffled with the participant's `Rng`,
Repeat expanded (the n-th visit of a scene gets the id "id#n"), and each
Conditions replaced by the arm `arm_for` picks (once per Conditions name).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Sequence

from game.rng import Rng

from scenes.base import Scene


class RandomOrder:
    """Its scenes (or groups) in an order shuffled per participant."""

    label = "random order"

    def __init__(self, scenes: Sequence[Any]) -> None:
        self.scenes = scenes

    def __repr__(self) -> str:
        return f"RandomOrder({list(self.scenes)!r})"


class Repeat:
    """A scene or group shown `times` times in a row; visits after the first get ids "id#2", "id#3"..."""

    label = "repeat"

    def __init__(self, scene_or_group: Any, *, times: int) -> None:
        self.item = scene_or_group
        self.times = times

    def __repr__(self) -> str:
        return f"Repeat({self.item!r}, times={self.times!r})"


class Conditions:
    """Between-participant conditions: each participant is assigned one arm, whose scenes are shown.

    `arms` maps arm names to a list of scenes/groups (or a single one). `name` identifies
    the assignment (the server balances arms per name with `choose_arm`).
    """

    def __init__(self, *, name: str, arms: Mapping[str, Any]) -> None:
        self.name = name
        self.arms = arms

    @property
    def label(self) -> str:
        return f"conditions {self.name!r}"

    def arm_items(self, arm: str) -> list[Any]:
        """The scenes/groups of one arm, as a list."""
        items = self.arms[arm]
        return list(items) if isinstance(items, (list, tuple)) else [items]

    def choose(self, counts: Mapping[str, int]) -> str:
        """`choose_arm` over this Conditions' arms."""
        return choose_arm(list(self.arms), counts)

    def __repr__(self) -> str:
        return f"Conditions(name={self.name!r}, arms={list(self.arms)!r})"


Group = (RandomOrder, Repeat, Conditions)


def choose_arm(arms: Sequence[str], counts: Mapping[str, int]) -> str:
    """The arm with the fewest participants so far (completed or active); ties go to the earlier arm."""
    if not arms:
        raise ValueError("choose_arm needs at least one arm")
    return min(arms, key=lambda arm: (counts.get(arm, 0), arms.index(arm)))


def walk_tree(items: Sequence[Any]) -> Iterator[Any]:
    """Every scene and group in definition order, all arms included (depth first)."""
    for item in items:
        yield item
        if isinstance(item, (list, tuple)):
            yield from walk_tree(item)
        elif isinstance(item, RandomOrder):
            yield from walk_tree(item.scenes)
        elif isinstance(item, Repeat):
            yield from walk_tree([item.item])
        elif isinstance(item, Conditions):
            for arm in item.arms:
                yield from walk_tree(item.arm_items(arm))


def flatten(items: Sequence[Any], seed: int, arm_for: Callable[[Conditions], str]) -> list[Scene]:
    """One participant's ordered scenes (see the module docstring)."""
    rng = Rng(seed)
    chosen: dict[str, str] = {}
    out: list[Scene] = []

    def walk(item: Any) -> None:
        if isinstance(item, Scene):
            out.append(item)
        elif isinstance(item, (list, tuple)):
            for child in item:
                walk(child)
        elif isinstance(item, RandomOrder):
            order = list(item.scenes)
            rng.shuffle(order)
            for child in order:
                walk(child)
        elif isinstance(item, Repeat):
            for _ in range(item.times):
                walk(item.item)
        elif isinstance(item, Conditions):
            if item.name not in chosen:
                arm = arm_for(item)
                if arm not in item.arms:
                    raise ValueError(f"arm_for returned {arm!r} for {item.label}; its arms are {list(item.arms)}")
                chosen[item.name] = arm
            for child in item.arm_items(chosen[item.name]):
                walk(child)
        else:
            raise TypeError(f"{item!r:.60} is neither a scene nor a group")

    for item in items:
        walk(item)
    visits: dict[str, int] = {}
    plan = []
    for scene in out:
        visits[scene.base_id] = visits.get(scene.base_id, 0) + 1
        plan.append(scene if visits[scene.base_id] == 1 else scene.revisit(visits[scene.base_id]))
    return plan
