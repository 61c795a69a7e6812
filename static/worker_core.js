// The match worker's logic: Pyodide, the game bundle, the netcode session (MatchClient)
// and the fixed-timestep match loop. docs/worker.md is the message protocol.
//
// static/worker.js wires this to postMessage inside a module Worker; where no Worker can
// start, the page runs the same core in its own thread, and tests run it under Node. So
// nothing here touches `self`, `Worker` or the DOM: messages come in through
// `handle(message)` and go out through `post(message)`.
//
// Only JSON strings (and a bool) cross between JavaScript and Python. The Python side is
// one module of the game bundle, netcode/worker_glue.py; we keep one PyProxy per glue
// function, made at LOAD (the bundle brings the module) and destroyed at the next LOAD or
// at TERMINATE, so no PyProxy is ever made per call or leaks.

const ROOT = "/home/pyodide/coplay";           // bundle files go under here (on sys.path)
const WHEELS = "/home/pyodide/coplay-packages"; // the bundle's wheels are unpacked here (on sys.path)
const GLUE_MODULE = "netcode.worker_glue";
const GLUE_FUNCTIONS = ["prepare", "load", "start", "ai_inputs", "tick", "stop", "step", "batch", "evaluate", "terminate", "play"];
// The loop's schedule mirrors netcode/scheduler.py (FixedStep) with the same constants
// (tests/test_scheduler.py checks that they agree).
const MAX_CATCH_UP = 4;     // ticks run back to back in one round when the loop fell behind
const MAX_DEBT = 8;         // ticks; further behind than this, the schedule restarts from now
const DRAW_MS = 12;         // ask for primitives at most this often: ~one animation frame, kept
                            // below 16.7 ms so timer jitter at 60 fps does not halve the draw rate
const MAX_BUFFERED = 4096;  // relayed packets held between ticks (the oldest go first)

const now = () => performance.now();

// netcode/scheduler.py's FixedStep, in milliseconds: tick i is due at start + i * period.
class FixedStep {
  constructor(period, start) {
    this.period = period;
    this.nextAt = start;
  }

  // How many ticks to run now: 0 when the next one is still ahead, else 1 to MAX_CATCH_UP.
  due(t) {
    if (t < this.nextAt) return 0;
    if (t - this.nextAt > MAX_DEBT * this.period) this.nextAt = t;
    return Math.min(MAX_CATCH_UP, Math.floor((t - this.nextAt) / this.period) + 1);
  }

  // One tick ran; the next is a period later, plus `skipFrames` periods left out for time sync.
  ticked(skipFrames = 0) {
    this.nextAt += (1 + skipFrames) * this.period;
  }

  // How long to wait until the next tick is due (0 when it already is).
  delay(t) {
    return Math.max(0, this.nextAt - t);
  }
}

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

async function sha256Hex(buffer) {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", buffer));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

// A game that imports a package the browser lacks (not a module of the bundle): say which and how to add it.
function withPackageHint(fields, bundlePaths) {
  const missing = /No module named '([\w.]+)'/.exec(fields.message || "");
  if (!missing) return fields;
  const top = missing[1].split(".")[0];
  if (bundlePaths.some((path) => path.split("/").some((part) => part === top || part === `${top}.py`))) return fields;
  return { ...fields, message: `${fields.message}\nThe game imports ${top}, which is not installed in the ` +
    `browser: list it in the Match's packages=[...] and put its wheel in the server's package folder ` +
    "(coplay packages fetch EXPERIMENT.py), then restart the server." };
}

// Where Pyodide is served, absolute (a page URL, or a file path under Node) with a trailing "/".
function resolveIndexURL(indexURL) {
  if (typeof indexURL !== "string" || !indexURL) throw new Error("INIT needs indexURL");
  let url = indexURL.endsWith("/") ? indexURL : indexURL + "/";
  if (globalThis.location && globalThis.location.href) url = new URL(url, globalThis.location.href).href;
  return url;
}

// Remove `path` and everything under it from Pyodide's file system (nothing when it is not there).
function removeTree(FS, path) {
  if (!FS.analyzePath(path).exists) return;
  for (const name of FS.readdir(path)) {
    if (name === "." || name === "..") continue;
    const child = `${path}/${name}`;
    if (FS.isDir(FS.stat(child).mode)) removeTree(FS, child);
    else FS.unlink(child);
  }
  FS.rmdir(path);
}

// The bundle's ONNX models (`onnx`: {runtime: URL, models: {name: {base64, sha256}}}) as onnxruntime-web
// sessions: {name: session}, with the runtime module as `ort`. One thread, so no cross-origin isolation.
async function onnxSessions(onnx) {
  const models = Object.entries(onnx?.models || {});
  if (!models.length) return { ort: null, sessions: {} };
  const base = new URL(onnx.runtime, globalThis.location?.href).href;
  const ort = await import(base + "ort.wasm.min.mjs");
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = base;
  const sessions = {};
  for (const [name, { base64, sha256 }] of models) {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    if (globalThis.crypto?.subtle && await sha256Hex(bytes) !== sha256) {
      throw new Error(`ONNX model ${name}: the bundle's bytes do not match its sha256; reload the page`);
    }
    sessions[name] = await ort.InferenceSession.create(bytes);
  }
  return { ort, sessions };
}

// The outputs of the local ONNX players' models on `inputs` (worker_glue.ai_inputs: {player: {model, data}}),
// as worker_glue.tick reads them: {player: [{data, dims, type}]} (int64 data as Numbers).
async function runModels(onnx, inputs) {
  const outputs = {};
  for (const [player, { model, data }] of Object.entries(inputs)) {
    const session = onnx.sessions[model];
    if (!session) throw new Error(`ONNX model ${model} of ${player} is not in the bundle`);
    const feed = new onnx.ort.Tensor("float32", Float32Array.from(data), [1, data.length]);
    const result = await session.run({ [session.inputNames[0]]: feed });
    outputs[player] = session.outputNames.map((name) => {
      const tensor = result[name];
      return { data: Array.from(tensor.data, Number), dims: Array.from(tensor.dims), type: tensor.type };
    });
  }
  return outputs;
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
  let py = null;                 // {name: PyProxy} of the glue functions of the loaded bundle
  let loaded = false;            // a bundle is loaded: START may come
  let terminated = false;
  let queue = Promise.resolve(); // requests run one at a time, in arrival order
  let loop = null;               // the running match loop
  let actionsJson = "{}";        // latest INPUT, already as the JSON Python reads
  let packets = [];              // PACKETs of the running match since the last tick
  let onnx = { ort: null, sessions: {} };   // the bundle's ONNX models (onnxSessions)

  const progress = (stage, fraction, message) => post({ type: "PROGRESS", stage, fraction, message });

  function need(what) {
    if (terminated) throw new Error("the worker was terminated");
    if (!pyodide) throw new Error("Pyodide is not loaded: send INIT first");
    if (what === "bundle" && !loaded) throw new Error("no bundle: send LOAD first");
  }

  // The glue module of the bundle just written: one PyProxy per function.
  function importGlue() {
    const importlib = pyodide.pyimport("importlib");
    try {
      importlib.invalidate_caches();   // the files are new: do not trust the import system's cached listings
    } finally {
      importlib.destroy();
    }
    const module = pyodide.pyimport(GLUE_MODULE);
    try {
      // Attributes of a proxy are borrowed (they die with it): keep our own copies.
      return Object.fromEntries(GLUE_FUNCTIONS.map(name => [name, module[name].copy()]));
    } finally {
      module.destroy();
    }
  }

  async function releaseSessions() {
    const sessions = Object.values(onnx.sessions);
    onnx = { ort: null, sessions: {} };
    for (const session of sessions) await session.release().catch(() => {});
  }

  function releaseGlue() {
    if (py) for (const proxy of Object.values(py)) proxy.destroy();
    py = null;
  }

  // ---------------------------------------------------------------- the match loop

  // Each timer callback runs the ticks the FixedStep schedule says are due, then sleeps
  // until the next one. Only the last tick of a callback may draw. A tick whose local ONNX
  // players decide awaits their models first (onnxruntime-web's run is async).
  function startLoop(fps) {
    const sched = { schedule: new FixedStep(1000 / fps, now()), lastDraw: -Infinity, timer: null, doneSent: false };
    const run = async () => {
      if (loop !== sched) return;
      const t = now();
      const due = sched.schedule.due(t);
      for (let i = 0; i < due; i++) {
        const draw = i === due - 1 && t - sched.lastDraw >= DRAW_MS;
        let outputs = null;
        if (onnx.ort) {
          try {
            const inputs = JSON.parse(py.ai_inputs());
            if (Object.keys(inputs).length) outputs = await runModels(onnx, inputs);
          } catch (err) {
            if (loop === sched) fail(err);
            return;
          }
        }
        if (loop !== sched) return;   // stopped (or restarted) while a model ran
        if (!tick(sched, draw, outputs)) return;
      }
      sched.timer = setTimeout(run, sched.schedule.delay(now()));
    };
    loop = sched;
    sched.timer = setTimeout(run, 0);
  }

  function stopLoop() {
    if (loop) clearTimeout(loop.timer);
    loop = null;
  }

  function fail(err) {
    stopLoop();
    post({ type: "ERROR", id: null, ...describe(err) });
  }

  // One Python call per tick (`outputs`: the local ONNX players' model outputs, or null).
  // Returns false (and has stopped the loop) if Python raised.
  function tick(sched, draw, outputs) {
    const received = packets;
    packets = [];
    const start = now();
    let result;
    try {
      result = JSON.parse(py.tick(actionsJson, JSON.stringify(received), draw, outputs ? JSON.stringify(outputs) : "{}"));
    } catch (err) {
      fail(err);
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
    sched.schedule.ticked(result.skip);   // time sync: a peer ahead of the others leaves out a few ticks
    if (result.done && !sched.doneSent) {
      sched.doneSent = true;
      post({ type: "DONE", report: result.done });
    }
    return true;
  }

  // The bundle's wheels, fetched from the coplay server (app/pyodide/packages.py) and unpacked
  // once per worker; Pyodide's unpackArchive also loads a Pyodide build's shared libraries.
  const installed = new Set();
  let bundlePaths = [];   // the files of the last LOADed bundle
  let unavailable = {};   // its games that cannot run in a browser: spec -> why
  async function installWheels(wheels) {
    for (const [i, { name, url, sha256 }] of wheels.entries()) {
      if (installed.has(sha256)) continue;
      progress("bundle", i / wheels.length, `installing package ${name}`);
      const fix = `the server's package folder must hold its wheel (coplay packages fetch EXPERIMENT.py), ` +
        "then the server is restarted";
      let response;
      try {
        response = await fetch(new URL(url, globalThis.location?.href).href);
      } catch (err) {
        throw new Error(`package ${name} could not be downloaded from ${url} (${err}); ${fix}`);
      }
      if (!response.ok) throw new Error(`package ${name}: the server answered HTTP ${response.status} for ${url}; ${fix}`);
      const buffer = await response.arrayBuffer();
      if (globalThis.crypto?.subtle && await sha256Hex(buffer) !== sha256) {
        throw new Error(`package ${name}: ${url} does not have the content the bundle names (a proxy or cache ` +
          "changed it); reload the page");
      }
      pyodide.FS.mkdirTree(WHEELS);
      pyodide.unpackArchive(buffer, "wheel", { extractDir: WHEELS });
      installed.add(sha256);
    }
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
      // The bundle folder is on sys.path from the start; LOAD fills it.
      pyodide = await loadPyodide({ indexURL: base, env: { PYTHONPATH: `${ROOT}:${WHEELS}` } });
      progress("pyodide", 1, "Python is ready");
      post({ type: "READY", version: pyodide.version });
      return { version: pyodide.version, seconds: (now() - start) / 1000 };
    },

    async LOAD({ bundle }) {
      need();
      if (!bundle || typeof bundle !== "object") throw new Error("LOAD needs a bundle");
      const start = now();
      const files = bundleFiles(bundle.files);
      bundlePaths = files.map(([path]) => path);
      unavailable = bundle.unavailable || {};
      stopLoop();
      loaded = false;
      if (py) py.prepare();   // the previous bundle's modules and match are forgotten
      releaseGlue();
      // Extra packages load here only, never during a match.
      const packages = bundle.packages || [];
      if (packages.length) {
        progress("bundle", 0, `loading packages: ${packages.join(", ")}`);
        await pyodide.loadPackage(packages, { messageCallback: () => {}, checkIntegrity: true });
      }
      await installWheels(bundle.wheels || []);
      removeTree(pyodide.FS, ROOT);
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
      if (Object.keys(bundle.onnx?.models || {}).length) progress("bundle", 0.95, "loading the ONNX models");
      await releaseSessions();
      onnx = await onnxSessions(bundle.onnx);
      py = importGlue();
      const models = Object.fromEntries(Object.entries(bundle.onnx?.models || {})
        .map(([name, { observation_keys }]) => [name, { observation_keys }]));
      JSON.parse(py.load(ROOT, JSON.stringify(bundle.paths || []), JSON.stringify(models)));
      loaded = true;
      progress("bundle", 1, "game and netcode imported");
      return { seconds: (now() - start) / 1000, files: files.length };
    },

    START({ start, game }) {
      need("bundle");
      if (!start || typeof start !== "object") throw new Error("START needs the match_start payload");
      if (Object.hasOwn(unavailable, start.game)) throw new Error(unavailable[start.game]);
      const fps = start.fps ?? 60;
      if (!Number.isInteger(fps) || fps < 1 || fps > 240) throw new Error(`fps must be an int in [1, 240], got ${fps}`);
      // Packets of an episode that has not STARTed yet are held by the page (static/match.js).
      packets = [];
      stopLoop();
      py.start(JSON.stringify(start), String(game));
      startLoop(fps);
      return {};
    },

    STOP() {
      need();
      stopLoop();
      if (py) py.stop();
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

    // `coplay play`'s bench (static/play.js): {op: start | run | reset, ...}, see worker_glue.play.
    PLAY({ call }) {
      need("bundle");
      return JSON.parse(py.play(JSON.stringify(call || {})));
    },

    EVAL({ code }) {
      need("bundle");
      return { value: JSON.parse(py.evaluate(String(code))) };
    },

    TERMINATE() {
      stopLoop();
      packets = [];
      if (py) {
        try { py.terminate(); } catch { /* freeing anyway */ }
      }
      releaseGlue();
      releaseSessions();
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
      if (!loop) return;   // no match runs: nothing can read it
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
        post({ type: "ERROR", id, ...withPackageHint(describe(err), bundlePaths) });
        return;
      }
      if (type === "TERMINATE" && close) close();  // after the RESULT is out
    });
    return queue;
  }

  return { handle };
}
