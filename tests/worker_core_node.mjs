// Drives static/worker_core.js under Node (no browser) for tests/test_worker_core.py.
//
// Usage: node tests/worker_core_node.mjs CONFIG.json
//
// CONFIG: {indexURL, bundle,
//          match: {game, start_for: {seat: match_start}, seats: {seat: {players, inputs, every_ms}},
//                  solo_start, latency_ms, timeout_ms},
//          batch: {game, config, seed, requests},
//          bench: {game, config, seed, warmup, rollback, actions, repeats}}
// Two cores (two seats) INIT, LOAD and play one episode, relaying each other's OUT packets
// as PACKET messages (after `latency_ms`); then BATCH, a second LOAD, STEP, EVAL, error
// cases and TERMINATE; last, the BATCH-vs-STEP benchmark again with the core in a worker thread.
// The last stdout line is one JSON object with what the cores answered and the timings;
// the Python test asserts on it. Anything else goes to stderr.

import { readFileSync } from "node:fs";
import { Worker, isMainThread, parentPort } from "node:worker_threads";
import { createCore } from "../static/worker_core.js";

if (!isMainThread) {
  // This file again, as a worker thread: the core behind a real thread boundary, wired
  // like static/worker.js, so the benchmark sees what a message round trip costs.
  const core = createCore(m => parentPort.postMessage(m), { close: () => parentPort.close() });
  parentPort.on("message", m => core.handle(m));
} else {
  await main();
}

async function main() {
  console.log = console.info = console.warn = console.error;  // keep stdout for the report

  const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
  const report = { timings: {} };
  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

  // A core with a request() helper and every posted message kept (STATEs only counted).
  function makeCore(name) {
    const pending = new Map();
    const seat = { name, messages: [], states: [], closed: false, nextId: 1, listeners: [] };
    seat.core = createCore(message => {
      if (message.type === "STATE") seat.states.push(message);
      else seat.messages.push(message);
      for (const listener of seat.listeners) listener(message);
      if ((message.type === "RESULT" || message.type === "ERROR") && pending.has(message.id)) {
        pending.get(message.id)(message);
        pending.delete(message.id);
      }
    }, { close: () => { seat.closed = true; } });
    // Resolves with the RESULT or ERROR message answering this request.
    seat.request = (message, timeoutMs = 120000) => new Promise((resolve, reject) => {
      const id = `${name}-${seat.nextId++}`;
      const timer = setTimeout(() => reject(new Error(`${name}: ${message.type} timed out`)), timeoutMs);
      pending.set(id, answer => { clearTimeout(timer); resolve(answer); });
      seat.core.handle({ ...message, id });
    });
    return seat;
  }

  const value = answer => {
    if (answer.type !== "RESULT") throw new Error(`${answer.message}\n${answer.traceback || ""}`);
    return answer.value;
  };

  const summarize = xs => {
    const sorted = [...xs].sort((a, b) => a - b);
    const at = q => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
    return { n: xs.length, mean: xs.reduce((a, b) => a + b, 0) / xs.length, p50: at(0.5), p95: at(0.95), max: sorted.at(-1) };
  };

  const seatNames = Object.keys(config.match.seats);
  const seats = Object.fromEntries(seatNames.map(n => [n, makeCore(n)]));
  const [a, b] = seatNames.map(n => seats[n]);

  // ---- INIT and LOAD, one core after the other so the timings do not share the CPU
  for (const seat of [a, b]) {
    let t = performance.now();
    const init = value(await seat.request({ type: "INIT", indexURL: config.indexURL }));
    report.timings[`init_${seat.name}`] = { ms: performance.now() - t, reported_s: init.seconds };
    report.version = init.version;
    t = performance.now();
    const load = value(await seat.request({ type: "LOAD", bundle: config.bundle }));
    report.timings[`load_${seat.name}`] = { ms: performance.now() - t, reported_s: load.seconds, files: load.files };
  }
  report.init_messages = a.messages.filter(m => ["PROGRESS", "READY"].includes(m.type)).map(m => ({ ...m }));

  // ---- errors and EVAL before the match
  report.bad_game = await a.request({ type: "START", start: config.match.start_for[seatNames[0]], game: "game.games.pong:NoSuchGame" });
  report.bad_module = await a.request({ type: "START", start: config.match.start_for[seatNames[0]], game: "no_such_module:Game" });
  report.eval = await a.request({ type: "EVAL", code: "import sys, game, netcode\nresult = {'platform': sys.platform, 'sum': 1 + 1}" });
  report.eval_error = await a.request({ type: "EVAL", code: "def f():\n    return {}['missing']\nf()" });
  report.unknown = await new Promise(resolve => {
    a.listeners.push(function once(m) { if (m.type === "ERROR" && m.id === "odd") { a.listeners.splice(a.listeners.indexOf(once), 1); resolve(m); } });
    a.core.handle({ type: "NOPE", id: "odd" });
  });

  // ---- the match: relay OUT packets to the other core after latency_ms; like the page
  // (static/match.js), hold a seat's packets until its START is answered
  const latency = config.match.latency_ms ?? 0;
  const t0 = performance.now();
  const finished = {};
  const deliver = (target, message) => (target.held ? target.held.push(message) : target.core.handle(message));
  for (const seat of [a, b]) {
    seat.held = [];
    seat.listeners.push(message => {
      if (message.type === "OUT") {
        for (const packet of message.packets) {
          const target = seats[packet.to];
          setTimeout(() => deliver(target, { type: "PACKET", from: seat.name, data: packet.data }), latency);
        }
      } else if (message.type === "DONE") {
        finished[seat.name] = { ...message.report, ms: performance.now() - t0 };
      } else if (message.type === "ERROR" && message.id === null) {
        finished[seat.name] = { error: message };
      }
    });
  }
  // Inputs change every `every_ms`, like held keys would.
  const inputTimers = [a, b].map(seat => {
    const { players, inputs, every_ms } = config.match.seats[seat.name];
    let i = 0;
    const send = () => seat.core.handle({ type: "INPUT", actions: Object.fromEntries(players.map(p => [p, inputs[i % inputs.length]])) });
    send();
    return setInterval(() => { i++; send(); }, every_ms);
  });
  for (const seat of [a, b]) {
    value(await seat.request({ type: "START", start: config.match.start_for[seat.name], game: config.match.game }, 10000));
    const held = seat.held;
    seat.held = null;
    for (const message of held) seat.core.handle(message);
  }
  const deadline = performance.now() + config.match.timeout_ms;
  while (Object.keys(finished).length < 2 && performance.now() < deadline) await sleep(20);
  await sleep(200);  // a few ticks after DONE: answers peers, must not post DONE again
  inputTimers.forEach(clearInterval);
  report.match = {
    finished: { ...finished }, elapsed_ms: performance.now() - t0,
    done_count: Object.fromEntries([a, b].map(s => [s.name, s.messages.filter(m => m.type === "DONE").length])),
    loop_errors: [a, b].flatMap(s => s.messages.filter(m => m.type === "ERROR" && m.id === null)),
  };
  for (const seat of [a, b]) {
    const states = seat.states;
    const drawn = states.filter(s => s.primitives);
    const gaps = drawn.slice(1).map((s, i) => s.frame - drawn[i].frame);
    report.match[seat.name] = {
      states: states.length, drawn: drawn.length, last_frame: states.at(-1)?.frame, stats: states.at(-1)?.stats,
      tick_ms: summarize(states.map(s => s.tick_ms)),
      draw_tick_ms: summarize(drawn.map(s => s.tick_ms)),
      first_primitive: drawn[0]?.primitives?.[0], observations: drawn.at(-1)?.observations,
      max_frames_between_draws: Math.max(...gaps),
      out_messages: seat.messages.filter(m => m.type === "OUT").length,
    };
    report.match[seat.name].stop = value(await seat.request({ type: "STOP" }, 10000));
    const before = seat.states.length;
    await sleep(100);
    report.match[seat.name].states_after_stop = seat.states.length - before;
  }

  // ---- BATCH against a fresh env, as CPython will check
  const batch = config.batch;
  report.batch = await a.request({ type: "BATCH", requests: batch.requests, game: batch.game, config: batch.config, seed: batch.seed });
  report.batch_missing = await a.request({ type: "BATCH", requests: [{ op: "load", frame: 999 }] });

  // ---- LOAD again: the previous bundle's modules (the glue too) are forgotten and imported afresh
  value(await a.request({ type: "EVAL", code: "worker.before_reload = True" }));
  report.reload = await a.request({ type: "LOAD", bundle: config.bundle });
  report.after_reload = await a.request({ type: "EVAL", code: "import sys\nimport netcode\n" +
    "result = {'glue': sys.modules['netcode.worker_glue'] is worker, 'fresh': not hasattr(worker, 'before_reload'),\n" +
    "          'match': worker._match, 'netcode': netcode.__file__}" });

  // ---- benchmark: one 8-frame rollback BATCH vs 9 STEP messages
  const bench = config.bench;
  value(await a.request({ type: "BATCH", requests: bench.warmup, game: bench.game, config: bench.config, seed: bench.seed }));
  const batchMs = [];
  for (let i = 0; i < bench.repeats; i++) {
    const t = performance.now();
    value(await a.request({ type: "BATCH", requests: bench.rollback }));
    batchMs.push(performance.now() - t);
  }
  const stepsMs = [];
  for (let i = 0; i < bench.repeats; i++) {
    const t = performance.now();
    for (let k = 0; k < 9; k++) value(await a.request({ type: "STEP", actions: bench.actions }));
    stepsMs.push(performance.now() - t);
  }
  report.bench = { batch_ms: summarize(batchMs), nine_steps_ms: summarize(stepsMs),
                   step: value(await a.request({ type: "STEP", actions: bench.actions })) };

  // ---- a Python exception inside the loop: ERROR with id null, the loop stops
  const loopError = new Promise(resolve => b.listeners.push(m => { if (m.type === "ERROR" && m.id === null) resolve(m); }));
  const solo = config.match.solo_start;  // every player local, no peers
  value(await b.request({ type: "START", start: solo, game: config.match.game }));
  b.core.handle({ type: "INPUT", actions: Object.fromEntries(solo.players.map(p => [p, 99])) });
  report.loop_error = await Promise.race([loopError, sleep(5000).then(() => null)]);
  const statesBefore = b.states.length;
  await sleep(100);
  report.states_after_loop_error = b.states.length - statesBefore;

  // ---- TERMINATE
  for (const seat of [a, b]) {
    report[`terminate_${seat.name}`] = { answer: await seat.request({ type: "TERMINATE" }), closed: seat.closed };
  }
  report.after_terminate = await a.request({ type: "EVAL", code: "result = 1" });

  // ---- the same benchmark with the core in a worker thread (structured-clone round trips)
  const thread = new Worker(new URL(import.meta.url));
  const waiting = new Map();
  let threadId = 0;
  thread.on("message", m => { if (waiting.has(m.id)) { waiting.get(m.id)(m); waiting.delete(m.id); } });
  const ask = message => new Promise(resolve => {
    const id = ++threadId;
    waiting.set(id, resolve);
    thread.postMessage({ ...message, id });
  });
  value(await ask({ type: "INIT", indexURL: config.indexURL }));
  value(await ask({ type: "LOAD", bundle: config.bundle }));
  value(await ask({ type: "BATCH", requests: bench.warmup, game: bench.game, config: bench.config, seed: bench.seed }));
  const threadBatch = [];
  const threadSteps = [];
  for (let i = 0; i < bench.repeats; i++) {
    let t = performance.now();
    value(await ask({ type: "BATCH", requests: bench.rollback }));
    threadBatch.push(performance.now() - t);
    t = performance.now();
    for (let k = 0; k < 9; k++) value(await ask({ type: "STEP", actions: bench.actions }));
    threadSteps.push(performance.now() - t);
  }
  report.bench_thread = { batch_ms: summarize(threadBatch), nine_steps_ms: summarize(threadSteps),
                          terminate: await ask({ type: "TERMINATE" }) };
  await thread.terminate();

  process.stdout.write(JSON.stringify(report) + "\n");
  process.exit(0);
}
