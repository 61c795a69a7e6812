"""CPU accounting for benchmarks/capacity.py: who used the machine's cores while the matches ran.

Once a second a `Sampler` reads, from /proc, the CPU time of every process of the server's tree
(the coordinator, its relay processes, its private redis-server) and of the load generator's tree,
the machine's busy time (/proc/stat), and each server endpoint's /metrics (packets relayed, the
relay-time histogram, matches running). `account()` turns the samples into one `Accounting`:

- the *play window*: the longest stretch of samples in which the most matches ran at once (all of
  a burst's matches, so arrival, pairing and shutdown are left out); CPU shares and µs per packet
  are taken over it;
- the server relay p99 over the whole run, from the relay histograms of every endpoint merged
  bucket by bucket (the same buckets everywhere: app/live/metrics.py RELAY_BUCKETS);
- a *capacity estimate by CPU accounting*: for every process that relays packets (each relay, or
  the coordinator when there are none), the matches one whole core of it would carry at the CPU per
  packet it used: 1 s of CPU / (its µs per packet × the packets a match relays per second, 2 seats ×
  60 fps = 120). Per packet, not per match, so a generator that fell behind (fewer packets per
  match) does not inflate it. Summed over the relay processes this is what the server would hold
  with one core per relay process. It is an estimate, never a measured hold, and is always printed
  as such.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

from app.live.metrics import histogram_buckets, histogram_quantile

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
RELAY = "coplay_relay_seconds"
FULL_SHARE = 0.95   # of all cores busy: the machine is full


# ---------------------------------------------------------------- /proc, parsed (pure)

@dataclass(frozen=True)
class ProcStat:
    """What /proc/PID/stat says of one process: its name, its parent and its user + system CPU seconds."""

    comm: str
    ppid: int
    cpu_seconds: float


def parse_proc_stat(text: str) -> ProcStat:
    """/proc/PID/stat's line. The name is in parentheses and may hold spaces, so fields count from the last ')'."""
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15 (proc(5)).
    return ProcStat(comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND)


def parse_machine_busy(text: str) -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores from /proc/stat's first `cpu` line (idle and iowait are not busy)."""
    line = next(line for line in text.splitlines() if line.startswith("cpu "))
    ticks = [int(x) for x in line.split()[1:9]]   # user nice system idle iowait irq softirq steal
    total = sum(ticks)
    return (total - ticks[3] - ticks[4]) / TICKS_PER_SECOND, total / TICKS_PER_SECOND


def descendants(root: int, parents: Mapping[int, int]) -> set[int]:
    """`root` and every process below it, given each process's parent."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def read_processes(proc: Path = Path("/proc")) -> dict[int, ProcStat]:
    """Every process now; those that end while being read are left out."""
    table = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                table[int(entry.name)] = parse_proc_stat((entry / "stat").read_text())
            except (OSError, ValueError, IndexError):
                pass
    return table


def http_base(channel_url: str) -> str:
    """A relay's match channel URL (ws://host:port/match-ws, as in its registry card) -> http://host:port."""
    scheme, rest = channel_url.split("://", 1)
    return {"ws": "http", "wss": "https"}.get(scheme, scheme) + "://" + rest.split("/", 1)[0]


# ---------------------------------------------------------------- samples

@dataclass(frozen=True)
class Endpoint:
    """A server process with a /metrics: the coordinator or a relay."""

    name: str    # "coordinator" or "relay <id>"
    url: str     # http://host:port
    pid: int
    relays: bool   # True for a relay process; the coordinator relays only when there are no relays


@dataclass
class Figures:
    """What one endpoint's /metrics said: packets relayed, matches running, cumulative relay buckets, rounds
    of its match channel pump (0 from a server without that metric)."""

    packets: float
    matches: float
    buckets: list[tuple[float, float]]
    batches: float = 0.0


@dataclass
class Sample:
    t: float
    cpu: dict[int, float]          # pid -> CPU seconds, every process of the server's and generator's trees
    roles: dict[int, str]          # pid -> "coordinator", "relay <id>", "redis", "server other", "generator"
    machine: tuple[float, float]   # (busy, total) CPU seconds of all cores
    figures: dict[str, Figures]    # endpoint name -> its /metrics figures (missing when unreadable)


def figures_of(samples: Mapping[tuple[str, tuple[tuple[str, str], ...]], float]) -> Figures:
    """The figures capacity.py needs from one parsed /metrics."""
    def value(name: str) -> float:
        return sum(v for (n, _), v in samples.items() if n == name)
    return Figures(value("coplay_relayed_packets_total"), value("coplay_matches_active"),
                   histogram_buckets(dict(samples), RELAY), value("coplay_channel_batches_total"))


def roles_of(table: Mapping[int, ProcStat], server_pid: int, generator_pid: int | None,
             endpoints: Iterable[Endpoint]) -> dict[int, str]:
    """Which part each process of the two trees plays."""
    parents = {pid: stat.ppid for pid, stat in table.items()}
    named = {e.pid: e.name for e in endpoints}
    roles = {}
    for pid in descendants(server_pid, parents) & table.keys():
        roles[pid] = named.get(pid) or ("redis" if table[pid].comm.startswith("redis") else "server other")
    roles[server_pid] = "coordinator"
    if generator_pid is not None:
        for pid in descendants(generator_pid, parents) & table.keys():
            roles[pid] = "generator"
    return roles


class Sampler:
    """Samples once a second on a thread between `start()` and `stop()`; `samples` holds them."""

    def __init__(self, server_pid: int, endpoints: list[Endpoint], fetch: Callable[[str], Figures],
                 period: float = 1.0) -> None:
        self.server_pid, self.endpoints, self.fetch, self.period = server_pid, endpoints, fetch, period
        self.generator_pid: int | None = None
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, generator_pid: int) -> None:
        self.generator_pid = generator_pid
        self._thread.start()

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join()
        self.sample()   # the last one, after the generator ended
        return self.samples

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.period)

    def sample(self) -> None:
        figures = {}
        for endpoint in self.endpoints:
            try:
                figures[endpoint.name] = self.fetch(endpoint.url)
            except Exception:   # a scrape that failed is a gap in the figures, not the end of the run
                continue
        table = read_processes()
        roles = roles_of(table, self.server_pid, self.generator_pid, self.endpoints)
        machine = parse_machine_busy(Path("/proc/stat").read_text())
        self.samples.append(Sample(time.monotonic(), {pid: table[pid].cpu_seconds for pid in roles}, roles,
                                   machine, figures))


# ---------------------------------------------------------------- accounting (pure)

@dataclass
class Accounting:
    """The CPU accounting of one run (see the module doc); percentages are of one core."""

    window_s: float
    matches: float                 # matches running during the play window
    packets: float                 # packets relayed in the window, every endpoint
    cpu_percent: dict[str, float]  # role -> % of one core in the window ("relay <id>" one per relay)
    machine_percent: float         # all cores busy, % of one core (of cores × 100)
    cores: int
    relay_p99_ms: float | None     # server relay p99 over the whole run, every endpoint's histogram merged
    estimate: dict[str, float] = field(default_factory=dict)   # relaying process -> matches at one whole core
    batches: float = 0.0           # match channel pump rounds in the window, every endpoint (0: not reported)

    SERVER_ROLES = ("coordinator", "redis", "server other")

    def server_percent(self) -> float:
        return sum(v for k, v in self.cpu_percent.items() if k in self.SERVER_ROLES or k.startswith("relay "))

    def us_per_packet(self) -> float | None:
        return self.server_percent() / 100 * self.window_s * 1e6 / self.packets if self.packets else None

    def others_percent(self) -> float:
        """What the rest of the machine used: neither the server nor the generator (other users, the kernel)."""
        return max(0.0, self.machine_percent - self.server_percent() - self.cpu_percent.get("generator", 0.0))

    def machine_full(self) -> bool:
        """All cores (nearly) busy: other processes, the generator included, competed with the server."""
        return self.machine_percent >= FULL_SHARE * 100 * self.cores

    def estimated_matches(self) -> float | None:
        return sum(self.estimate.values()) if self.estimate else None


def active_matches(samples: list[Sample], relaying: list[str]) -> list[float]:
    """Matches running on the relaying endpoints at each sample."""
    return [sum(s.figures[n].matches for n in relaying if n in s.figures) for s in samples]


def play_window(samples: list[Sample], relaying: list[str]) -> tuple[int, int]:
    """(first, last) sample indexes of the longest stretch in which the most matches ran at once on the
    relaying endpoints; the stretch where packets were relayed when that gives fewer than 3 samples."""
    active = active_matches(samples, relaying)
    peak = max(active, default=0)
    best, start = (0, -1), None
    for i, value in enumerate(active + [-1]):
        if value == peak and peak > 0 and start is None:
            start = i
        elif value != peak and start is not None:
            if i - 1 - start > best[1] - best[0]:
                best = (start, i - 1)
            start = None
    if best[1] - best[0] >= 2:
        return best
    packets = [sum(f.packets for f in s.figures.values()) for s in samples]
    moving = [i for i in range(1, len(packets)) if packets[i] > packets[i - 1]]
    return (moving[0] - 1, moving[-1]) if moving else (0, len(samples) - 1)


def merged_quantile(q: float, first: Sample, last: Sample) -> float | None:
    """Quantile q (seconds) of every relay time observed between two samples, all endpoints merged."""
    totals: dict[float, float] = {}
    for name, figures in last.figures.items():
        earlier = dict(first.figures[name].buckets) if name in first.figures else {}
        for bound, count in figures.buckets:
            totals[bound] = totals.get(bound, 0.0) + count - earlier.get(bound, 0.0)
    value = histogram_quantile(q, totals.items())
    return None if value != value else value   # NaN: nothing relayed


def account(samples: list[Sample], endpoints: list[Endpoint], cores: int, match_packets_s: float) -> Accounting | None:
    """The accounting of a run's samples (`match_packets_s`: packets one match relays per second at full speed);
    None with fewer than two samples."""
    if len(samples) < 2:
        return None
    relaying = [e.name for e in endpoints if e.relays] or [e.name for e in endpoints if not e.relays]
    i, j = play_window(samples, relaying)
    a, b = samples[i], samples[j]
    window = b.t - a.t
    if window <= 0:
        return None
    cpu: dict[str, float] = {}
    for pid, role in b.roles.items():
        if pid in a.cpu:   # a process that started or ended within the window is left out
            cpu[role] = cpu.get(role, 0.0) + 100 * (b.cpu[pid] - a.cpu[pid]) / window
    for endpoint in endpoints:
        cpu.setdefault(endpoint.name, 0.0)
    busy = 100 * cores * (b.machine[0] - a.machine[0]) / max(b.machine[1] - a.machine[1], 1e-9)

    def delta(name: str, key: str) -> float:
        after, before = b.figures.get(name), a.figures.get(name)
        return getattr(after, key) - getattr(before, key) if after and before else 0.0

    packets = sum(delta(e.name, "packets") for e in endpoints)
    matches = max(active_matches(samples[i:j + 1], relaying))
    estimate = {}
    for name in relaying:
        mine = delta(name, "packets")
        if cpu.get(name) and mine:
            cpu_s_per_packet = cpu[name] / 100 * window / mine
            estimate[name] = 1 / cpu_s_per_packet / match_packets_s
    p99 = merged_quantile(0.99, samples[0], samples[-1])
    return Accounting(round(window, 2), matches, packets, {k: round(v, 1) for k, v in cpu.items()},
                      round(busy, 1), cores, None if p99 is None else p99 * 1000, estimate,
                      sum(delta(e.name, "batches") for e in endpoints))


def format_accounting(acc: Accounting) -> list[str]:
    """Two lines under a capacity row: the CPU shares in the play window, and the estimate (labelled)."""
    order = ["coordinator"] + sorted(k for k in acc.cpu_percent if k.startswith("relay ")) + ["redis", "server other"]
    parts = [f"{k} {acc.cpu_percent[k]:.0f} %" for k in order if k in acc.cpu_percent]
    us = acc.us_per_packet()
    rate = acc.packets / acc.window_s if acc.window_s else 0
    lines = [f"cpu over {acc.window_s:.0f} s of play ({acc.matches:.0f} matches, {rate:.0f} pkt/s): "
             + ", ".join(parts) + f" = server {acc.server_percent():.0f} %"
             + (f" ({us:.0f} us/pkt)" if us is not None else "")
             + (f", {acc.packets / acc.batches:.1f} pkt per pump batch" if acc.batches else "")
             + f"; generator {acc.cpu_percent.get('generator', 0.0):.0f} %"
             + f"; other processes {acc.others_percent():.0f} %"
             + f"; machine {acc.machine_percent:.0f} % of {100 * acc.cores} %"
             + (" (full: the machine, not necessarily the server, was the limit)" if acc.machine_full() else "")]
    if acc.estimate:
        each = ", ".join(f"{k} {v:.0f}" for k, v in sorted(acc.estimate.items()))
        lines.append(f"capacity by CPU accounting (an estimate, not a measured hold): {each}"
                     + (f" = {acc.estimated_matches():.0f}" if len(acc.estimate) > 1 else "")
                     + " matches at one whole core per relaying process, at the CPU per packet measured here")
    return lines
