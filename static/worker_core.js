// The match worker's logic: Pyodide, the game bundle, the netcode session (MatchClient)
// and the fixed-timestep match loop. docs/worker.md is the message protocol.
//
// static/worker.js wires this to postMessage inside a module Worker; where no Worker can
// start, the page runs the same core in its own thread, and tests run it under Node. So
// nothing here touches `self`, `Worker` or the DOM: messages come in through
// `handle(message)` and go out through `post(message)`.
//
// Only JSON strings (and a bool) cross between JavaScript and Python. The Python side is
// one small glue module (GLUE below); we keep one PyProxy per glue function, created once
// after INIT and destroyed on TERMINATE, so no PyProxy is ever made per call or leaks.

const GLUE_DIR = "/home/pyodide/coplay_glue";  // the glue module lives apart from the bundle
const ROOT = "/home/pyodide/coplay";           // bundle files go under here (on sys.path)
const MAX_CATCH_UP = 4;     // ticks run back to back after a late timer, then the schedule resets
const DRAW_MS = 12;         // ask for primitives at most this often: ~one animation frame, kept
                            // below 16.7 ms so timer jitter at 60 fps does not halve the draw rate
const MAX_BUFFERED = 4096;  // relayed packets held between ticks (the oldest go first)
const GLUE_FUNCTIONS = ["prepare", "load", "start", "tick", "stop", "step", "batch", "evaluate", "terminate"];

const now = () => performance.now();

// Python side. Every function takes and returns str (JSON) or bool, nothing else.
const GLUE = String.raw`"""Glue between static/worker_core.js and the game / netcode packages (JSON in, JSON out)."""
from __future__ import annotations

import gc
import importlib
import json
import os
import shutil
import sys
import time
from typing import Any

ROOT = "${ROOT}"

_match: Any = None   # the running MatchClient
_last: Any = None    # (game spec, config, seed) of the last START, the default STEP / BATCH env
_bench: Any = None   # [env, Executor] that STEP and BATCH run against, outside any session


def _clock() -> float:
    return time.monotonic() * 1000.0


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=_jsonable)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):       # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def prepare() -> None:
    """Before a bundle is written: forget the previous bundle's files, modules and match."""
    global _match, _last, _bench
    _match = _last = _bench = None
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(ROOT + "/"):
            del sys.modules[name]
    shutil.rmtree(ROOT, ignore_errors=True)
    os.makedirs(ROOT, exist_ok=True)


def load(paths_json: str) -> str:
    """The bundle's files are written: put ROOT and its paths on sys.path, import the packages."""
    entries = [ROOT]
    for path in json.loads(paths_json):
        entry = os.path.normpath(os.path.join(ROOT, path))
        if entry != ROOT and not entry.startswith(ROOT + "/"):
            raise ValueError(f"bundle path {path!r} leaves the bundle folder")
        entries.append(entry)
    for entry in reversed(entries):
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)
    importlib.invalidate_caches()
    for name in ("game", "netcode", "netcode.client", "netcode.executor", "netcode.requests"):
        importlib.import_module(name)
    return _dumps({"python": sys.version.split()[0]})


def _game_class(spec: str) -> type:
    module_name, sep, class_name = spec.rpartition(":")
    if not sep or not module_name or not class_name or module_name.endswith(".py"):
        raise ValueError(f"game {spec!r} is not of the form package.module:Class (use the bundle's games entry)")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not isinstance(cls, type):
        raise ValueError(f"module {module_name!r} has no class named {class_name!r}")
    return cls


def start(start_json: str, game_spec: str) -> str:
    """A new match from the match_start payload; replaces any previous one."""
    global _match, _last
    from netcode.client import MatchClient

    _match = None
    start = json.loads(start_json)
    _match = MatchClient(start, _game_class(game_spec), _clock)
    _last = (game_spec, start.get("config") or {}, start["seed"])
    return _dumps({"frame": _match.session.current_frame, "players": list(_match.players)})


def tick(actions_json: str, packets_json: str, want_draw: bool) -> str:
    """One frame: feed the relayed packets, tick with the local actions, answer what to post."""
    from game.env import default_action_for

    match = _match
    if match is None:
        raise RuntimeError("no match: START one first")
    for packet in json.loads(packets_json):
        match.receive(packet["from"], packet["data"])
    actions = json.loads(actions_json)
    match.tick({p: actions[p] if p in actions else default_action_for(match.env, p) for p in match.players})
    out: dict[str, Any] = {"frame": match.session.current_frame, "packets": match.outbox(),
                           "stats": match.stats(), "done": match.done, "skip": match.take_skip_frames()}
    if want_draw:
        out["primitives"] = match.render()
        observations = match.observations
        out["observations"] = {p: observations.get(p) for p in match.players}
    return _dumps(out)


def stop() -> None:
    global _match
    _match = None


def _env(env_json: str) -> Any:
    """The STEP / BATCH env: new when the message names a game, else the current one, else
    a fresh copy of the last START's game (its config and seed)."""
    global _bench
    from game.snapshot import with_snapshots
    from netcode.executor import Executor

    spec = json.loads(env_json) if env_json else {}
    if spec.get("game"):
        game, config, seed = spec["game"], spec.get("config") or {}, spec.get("seed", 0)
    elif _bench is not None:
        return _bench
    elif _last is not None:
        game, config, seed = _last
    else:
        raise RuntimeError("no env for STEP / BATCH: pass game (config, seed) or START a match first")
    _bench = None
    env = _game_class(game)(config)
    env.reset(seed)
    _bench = [env, Executor(with_snapshots(env))]
    return _bench


def step(actions_json: str, env_json: str) -> str:
    """One env step outside any session (missing players get their default action)."""
    from game.env import default_action_for
    from netcode.requests import AdvanceFrame

    env, executor = _env(env_json)
    actions = json.loads(actions_json)
    inputs = {p: actions[p] if p in actions else default_action_for(env, p) for p in env.players}
    result = executor.run([AdvanceFrame(executor.frame, inputs, {})])
    step = result.steps[result.frame - 1]
    return _dumps({"frame": result.frame, "terminated": bool(step["terminated"]),
                   "truncated": bool(step["truncated"])})


def _request(item: dict) -> Any:
    from netcode.errors import NetcodeError
    from netcode.requests import AdvanceFrame, LoadState, SaveState

    op = item.get("op") if isinstance(item, dict) else None
    if op == "save":
        return SaveState(item["frame"], bool(item.get("checksum", False)))
    if op == "load":
        return LoadState(item["frame"])
    if op == "advance":
        return AdvanceFrame(item["frame"], item["inputs"], item.get("status") or {})
    raise NetcodeError("invalid_request", f"not a save/load/advance request: {item!r:.80}")


def batch(requests_json: str, env_json: str) -> str:
    """A netcode.requests list run against the env in one call, as a session's batch is."""
    _, executor = _env(env_json)
    result = executor.run([_request(item) for item in json.loads(requests_json)])
    return _dumps({"checksums": result.checksums, "frame": result.frame})


def evaluate(code: str) -> str:
    """(tests) Run code in a fresh namespace; answer the JSON of its result variable.
    The namespace's worker is this module, so tests can look at the match."""
    namespace = {"__name__": "__coplay_eval__", "worker": sys.modules[__name__]}
    exec(compile(code, "<EVAL>", "exec"), namespace)
    return _dumps(namespace.get("result"))


def terminate() -> None:
    global _match, _last, _bench
    _match = _last = _bench = None
    gc.collect()
`;

// The ERROR fields for a thrown error; a PythonError's message is the whole traceback.
function describe(err) {
  if (err && err.constructor && err.constructor.name === "PythonError" && typeof err.type === "string") {
    const traceback = String(err.message).trimEnd();
    const lines = traceback.split("\n");
    // The exception line names the type, maybe module-qualified: "netcode.errors.NetcodeError: ...".
    const head = new RegExp(`^([\\w.]+\\.)?${err.type.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(:|$)`);
    let at = lines.length - 1;
    for (let i = lines.length - 1; i >= 0; i--) {
      if (head.test(lines[i])) { at = i; break; }
    }
    return { message: lines.slice(at).join("\n"), traceback };
  }
  return { message: String(err && err.message ? err.message : err), traceback: null };
}

// Where Pyodide is served, absolute (a page URL, or a file path under Node) with a trailing "/".
function resolveIndexURL(indexURL) {
  if (typeof indexURL !== "string" || !indexURL) throw new Error("INIT needs indexURL");
  let url = indexURL.endsWith("/") ? indexURL : indexURL + "/";
  if (globalThis.location && globalThis.location.href) url = new URL(url, globalThis.location.href).href;
  return url;
}

// The bundle's files as [path, text] pairs; accepts {path: text} or [{path, text}] / [[path, text]].
function bundleFiles(files) {
  const pairs = Array.isArray(files)
    ? files.map(f => (Array.isArray(f) ? f : [f.path, f.text ?? f.source ?? f.content]))
    : Object.entries(files || {});
  for (const [path, text] of pairs) {
    const parts = String(path).split("/");
    if (typeof path !== "string" || path.startsWith("/") || parts.some(p => p === ".." || p === "")) {
      throw new Error(`bundle file path ${JSON.stringify(path)} must be relative, without "..", "//" or a trailing "/"`);
    }
    if (typeof text !== "string") throw new Error(`bundle file ${path} has no text`);
  }
  return pairs;
}

export function createCore(post, { close } = {}) {
  let pyodide = null;
  let py = null;                 // {name: PyProxy} of the glue functions
  let loaded = false;            // a bundle is loaded: START may come
  let terminated = false;
  let queue = Promise.resolve(); // requests run one at a time, in arrival order
  let loop = null;               // the running match loop
  let actionsJson = "{}";        // latest INPUT, already as the JSON Python reads
  let packets = [];              // PACKETs since the last tick

  const progress = (stage, fraction, message) => post({ type: "PROGRESS", stage, fraction, message });

  function need(what) {
    if (terminated) throw new Error("the worker was terminated");
    if (!py) throw new Error("Pyodide is not loaded: send INIT first");
    if (what === "bundle" && !loaded) throw new Error("no bundle: send LOAD first");
  }

  // ---------------------------------------------------------------- the match loop

  // Fixed timestep with an accumulator: tick i is due at start + i * period. Each timer
  // callback runs every tick that is due (at most MAX_CATCH_UP; past that, the backlog
  // is dropped and the schedule restarts from now), then sleeps until the next one.
  // Only the last tick of a callback may draw.
  function startLoop(fps) {
    const sched = { period: 1000 / fps, next: now(), lastDraw: -Infinity, timer: null, doneSent: false };
    const run = () => {
      if (loop !== sched) return;
      const t = now();
      const due = Math.min(MAX_CATCH_UP, Math.floor((t - sched.next) / sched.period) + 1);
      for (let i = 0; i < due; i++) {
        const draw = i === due - 1 && t - sched.lastDraw >= DRAW_MS;
        if (!tick(sched, draw)) return;
        sched.next += sched.period;
      }
      if (t >= sched.next) sched.next = t + sched.period;  // still behind after catching up: reset
      sched.timer = setTimeout(run, Math.max(0, sched.next - now()));
    };
    loop = sched;
    sched.timer = setTimeout(run, 0);
  }

  function stopLoop() {
    if (loop) clearTimeout(loop.timer);
    loop = null;
  }

  // One Python call per tick. Returns false (and has stopped the loop) if Python raised.
  function tick(sched, draw) {
    const received = packets;
    packets = [];
    const start = now();
    let result;
    try {
      result = JSON.parse(py.tick(actionsJson, JSON.stringify(received), draw));
    } catch (err) {
      stopLoop();
      post({ type: "ERROR", id: null, ...describe(err) });
      return false;
    }
    const tickMs = now() - start;
    if (result.packets.length) post({ type: "OUT", packets: result.packets });
    const state = { type: "STATE", frame: result.frame, stats: result.stats, tick_ms: tickMs };
    if (draw) {
      sched.lastDraw = start;
      state.primitives = result.primitives;
      state.observations = result.observations;
    }
    post(state);
    // Time sync: this peer runs ahead of the others, so it leaves out a few ticks.
    if (result.skip > 0) sched.next += result.skip * sched.period;
    if (result.done && !sched.doneSent) {
      sched.doneSent = true;
      post({ type: "DONE", report: result.done });
    }
    return true;
  }

  // ---------------------------------------------------------------- requests

  const requests = {
    async INIT({ indexURL }) {
      if (terminated) throw new Error("the worker was terminated");
      if (pyodide) return { version: pyodide.version, seconds: 0 };
      const start = now();
      const base = resolveIndexURL(indexURL);
      progress("pyodide", 0.05, "loading the Python runtime");
      const { loadPyodide } = await import(base + "pyodide.mjs");
      progress("pyodide", 0.15, "starting Python");
      const instance = await loadPyodide({ indexURL: base });
      progress("pyodide", 0.9, "installing the worker glue");
      instance.FS.mkdirTree(GLUE_DIR);
      instance.FS.writeFile(`${GLUE_DIR}/coplay_worker.py`, GLUE);
      instance.runPython(`import sys\nsys.path.insert(0, ${JSON.stringify(GLUE_DIR)})`);
      const module = instance.pyimport("coplay_worker");
      try {
        // Attributes of a proxy are borrowed (they die with it): keep our own copies.
        py = Object.fromEntries(GLUE_FUNCTIONS.map(name => [name, module[name].copy()]));
      } finally {
        module.destroy();
      }
      pyodide = instance;
      progress("pyodide", 1, "Python is ready");
      post({ type: "READY", version: pyodide.version });
      return { version: pyodide.version, seconds: (now() - start) / 1000 };
    },

    async LOAD({ bundle }) {
      need();
      if (!bundle || typeof bundle !== "object") throw new Error("LOAD needs a bundle");
      const start = now();
      const files = bundleFiles(bundle.files);
      stopLoop();
      loaded = false;
      py.prepare();
      const packages = bundle.packages || [];
      if (packages.length) {
        // From Pyodide's own index (indexURL) only, and only here: never during a match.
        progress("bundle", 0, `loading packages: ${packages.join(", ")}`);
        await pyodide.loadPackage(packages, { messageCallback: () => {}, checkIntegrity: true });
      }
      let reported = 0;
      files.forEach(([path, text], i) => {
        const full = `${ROOT}/${path}`;
        pyodide.FS.mkdirTree(full.slice(0, full.lastIndexOf("/")));
        pyodide.FS.writeFile(full, text);
        const fifth = Math.floor((5 * (i + 1)) / files.length);  // report every 20 % of the files
        if (fifth > reported) {
          reported = fifth;
          progress("bundle", 0.9 * (i + 1) / files.length, `wrote ${i + 1} of ${files.length} files`);
        }
      });
      JSON.parse(py.load(JSON.stringify(bundle.paths || [])));
      loaded = true;
      progress("bundle", 1, "game and netcode imported");
      return { seconds: (now() - start) / 1000, files: files.length };
    },

    START({ start, game }) {
      need("bundle");
      if (!start || typeof start !== "object") throw new Error("START needs the match_start payload");
      const fps = start.fps ?? 60;
      if (!Number.isInteger(fps) || fps < 1 || fps > 240) throw new Error(`fps must be an int in [1, 240], got ${fps}`);
      // A START over a running match drops it with its unread packets; packets that came
      // while no match ran (a peer that started first) are kept for this one.
      if (loop) packets = [];
      stopLoop();
      py.start(JSON.stringify(start), String(game));
      startLoop(fps);
      return {};
    },

    STOP() {
      need();
      stopLoop();
      py.stop();
      packets = [];
      return {};
    },

    STEP({ actions, game, config, seed }) {
      need("bundle");
      return JSON.parse(py.step(JSON.stringify(actions || {}), game ? JSON.stringify({ game, config, seed }) : ""));
    },

    BATCH({ requests: list, game, config, seed }) {
      need("bundle");
      if (!Array.isArray(list)) throw new Error("BATCH needs requests (a list)");
      return JSON.parse(py.batch(JSON.stringify(list), game ? JSON.stringify({ game, config, seed }) : ""));
    },

    EVAL({ code }) {
      need();
      return { value: JSON.parse(py.evaluate(String(code))) };
    },

    TERMINATE() {
      stopLoop();
      packets = [];
      if (py) {
        try { py.terminate(); } catch { /* freeing anyway */ }
        for (const proxy of Object.values(py)) proxy.destroy();
      }
      py = null;
      pyodide = null;  // no API frees the wasm heap; dropping every reference lets GC do it
      loaded = false;
      terminated = true;
      return {};
    },
  };

  function handle(message) {
    const { type, id = null } = message || {};
    if (type === "INPUT") {
      actionsJson = JSON.stringify(message.actions || {});
      return;
    }
    if (type === "PACKET") {
      packets.push({ from: message.from, data: message.data });
      if (packets.length > MAX_BUFFERED) packets.shift();
      return;
    }
    const run = Object.hasOwn(requests, type) ? requests[type] : null;
    if (!run) {
      post({ type: "ERROR", id, message: `unknown message type ${JSON.stringify(type)}`, traceback: null });
      return;
    }
    queue = queue.then(async () => {
      try {
        post({ type: "RESULT", id, value: await run(message) });
      } catch (err) {
        post({ type: "ERROR", id, ...describe(err) });
        return;
      }
      if (type === "TERMINATE" && close) close();  // after the RESULT is out
    });
    return queue;
  }

  return { handle };
}
