"""Where a server process's CPU goes: py-spy samples of it, sorted into the relay path's components.

`sample(pid, seconds)` starts py-spy (non-blocking, so the server is not paused) on a running
process; `collect()` waits for it and returns a `Profile`: sample counts per component. A sample is
the component of its innermost frame that names one (COMPONENTS, first match from the leaf up), so
`codec.decode` called by `MatchRoom.relay` counts as the codec, the rest of `relay` as the relay.
Only samples of a thread holding the GIL count (py-spy --gil): they share out the process's user CPU;
the time in system calls (socket reads and writes, epoll, file writes: the GIL is released) is the
kernel's, from /proc, shown as a row of its own. Eventlet's epoll waits that still hold it are IDLE.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

RATE = 200   # samples per second

# (component, markers): a frame "function (file:line)" containing a marker belongs to the component.
# Checked from the innermost frame outwards; the first component any frame matches wins.
COMPONENTS: list[tuple[str, tuple[str, ...]]] = [
    ("logging", ("logging/__init__.py",)),
    ("metrics", ("app/live/metrics.py", "prometheus_client")),
    ("recording write", ("app/data/recording.py",)),
    ("input log", ("app/live/input_log.py",)),
    ("netcode decode", ("netcode/codec.py",)),
    ("rate limit", ("app/live/ratelimit.py",)),
    ("bots / referee", ("app/live/bots.py", "referee", "game/")),
    ("admission / tick", ("app/live/admission.py", "tick (app/live/hub.py", "probe_lag")),
    ("relay (MatchRoom.relay rest)", ("app/live/match_room.py", "app/live/seat_holders.py", "app/live/seat.py")),
    ("frame parse (channel.py)", ("parse_frame (app/live/channel.py",)),
    ("channel_frame rest, lock", ("channel_frame (app/", "app/live/channel.py")),
    ("hub deliver/send", ("app/live/hub.py",)),
    ("socket send", ("flush (app/web/channel_pump.py",)),
    ("ws frame parse/unmask", ("messages (app/web/channel_pump.py", "unmask (app/web/channel_pump.py",
                               "app/web/ws_frame.py")),
    ("pump loop (recv, epoll)", ("app/web/channel_pump.py",)),
    ("Socket.IO / Engine.IO", ("socketio/", "engineio/")),
    ("HTTP / WSGI", ("eventlet/wsgi.py", "flask/", "werkzeug/")),
    ("eventlet hub, green locks", ("eventlet/", "greenlet")),
]
OTHER = "other"
IDLE = "idle"
IDLE_LEAVES = ("Hub.do_poll (eventlet/hubs/epolls.py:", "wait (threading.py:", "sleep (")   # waiting, not working


@dataclass
class Profile:
    """Sample counts per component, of one or more measurements."""

    counts: Counter[str] = field(default_factory=Counter)
    leaves: Counter[tuple[str, str]] = field(default_factory=Counter)   # (component, innermost frame)

    @property
    def total(self) -> int:
        """Samples of work (idle ones left out)."""
        return sum(n for name, n in self.counts.items() if name != IDLE)

    @staticmethod
    def merged(profiles: list[Profile]) -> Profile:
        out = Profile()
        for profile in profiles:
            out.counts.update(profile.counts)
            out.leaves.update(profile.leaves)
        return out

    @staticmethod
    def parse(raw: str) -> Profile:
        """A profile of py-spy's raw (collapsed stacks) output: `frame;frame;...;leaf COUNT` per line."""
        profile = Profile()
        for line in raw.splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = stack.split(";")
            component = IDLE if frames[-1].startswith(IDLE_LEAVES) else classify(frames)
            profile.counts[component] += int(count)
            profile.leaves[(component, frames[-1])] += int(count)
        return profile

    @staticmethod
    def table(columns: dict[str, tuple[Profile, float, float]]) -> str:
        """Rows of components, a column per code ("new", "old"), from (profile, user µs, kernel µs) per packet:
        a component's µs = its share of the samples x the user µs; the kernel's is a row of its own."""
        names = [name for name, _ in COMPONENTS] + [OTHER]
        lines = [f"  {'component':<30}" + "".join(f" {code:>8}" for code in columns)]
        for name in names:
            cells = [profile.counts[name] / profile.total * user if profile.total else 0.0
                     for profile, user, _ in columns.values()]
            if any(cell >= 0.05 for cell in cells):
                lines.append(f"  {name:<30}" + "".join(f" {cell:8.1f}" for cell in cells))
        lines.append(f"  {'kernel (system calls)':<30}" + "".join(f" {kernel:8.1f}" for _, _, kernel in columns.values()))
        lines.append(f"  {'total (measured)':<30}" + "".join(f" {user + kernel:8.1f}"
                                                                for _, user, kernel in columns.values()))
        lines.append(f"  {'samples (idle left out)':<30}" + "".join(f" {profile.total:8d} ({profile.counts[IDLE]})"
                                                                    for profile, _, _ in columns.values()))
        for code, (profile, _, _) in columns.items():
            lines.append(f"  {code}: the innermost frames of the largest components (samples)")
            for name, n in [(name, n) for name, n in profile.counts.most_common() if name != IDLE][:5]:
                top = [(frame, k) for (component, frame), k in profile.leaves.most_common() if component == name][:4]
                lines.append(f"    {name} {n}: " + ", ".join(f"{frame} {k}" for frame, k in top))
        return "\n".join(lines)


def classify(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, markers in COMPONENTS:
            if any(marker in frame for marker in markers):
                return name
    return OTHER


class Sampling:
    """A py-spy run on a process; `collect` waits for its end."""

    def __init__(self, pid: int, seconds: float) -> None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.folder = tempfile.mkdtemp()
        self.output = os.path.join(self.folder, "raw.txt")
        self.process = subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(RATE),
             "--format", "raw", "--nonblocking", "--gil", "--output", self.output],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def collect(self) -> Profile:
        _, errors = self.process.communicate(timeout=120)
        try:
            if self.process.returncode != 0 or not os.path.exists(self.output):
                raise RuntimeError(f"py-spy failed ({self.process.returncode}): {errors.strip()[-500:]}")
            with open(self.output) as file:
                return Profile.parse(file.read())
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def sample(pid: int, seconds: float) -> Sampling:
    """Start sampling process `pid` for `seconds` (py-spy must be installed: pip install py-spy)."""
    return Sampling(pid, seconds)
