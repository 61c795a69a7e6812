// `coplay play`'s page: the game runs in the browser worker (the participants' worker_core.js) on the
// bench of netcode/playground.py; every seat is on this keyboard or an AI policy in the worker.
// The page asks the worker for frames on a fixed schedule (PLAY run), draws the primitives, fills the
// inspector, and with --record posts the worker's recording records to the server.

import {$, h} from "./dom.js";
import {draw, viewportOf} from "./renderer.js";
import {WorkerClient} from "./worker_client.js";

const SPEEDS = [0.25, 0.5, 1, 2, 4];
const MAX_CATCH_UP = 8;          // frames asked for in one PLAY run when the schedule fell behind
const MAX_DEBT = 16;             // frames; further behind than this, the schedule restarts from now
const INSPECT_EVERY_MS = 100;    // inspector text while running (always at once when paused)
const SHOWN_CHARS = 4000;        // of one observation in the inspector

const ui = {
  canvas: $("#canvas"), status: $("#status"), notice: $("#notice"), loading: $("#loading"),
  progress: $("#progress"), progressText: $("#progress-text"), pause: $("#pause"), step: $("#step"),
  speed: $("#speed"), seed: $("#seed"), reset: $("#reset"), resetForm: $("#reset-form"), seats: $("#seats"),
  frame: $("#i-frame"), episode: $("#i-episode"), seedShown: $("#i-seed"), done: $("#i-done"),
  checksum: $("#i-checksum"), recorded: $("#i-recorded"), players: $("#i-players"), info: $("#i-info"),
};

// window.coplay: plain data for tests (as on the study page).
const coplay = {
  worker: {loaded: false, error: null, mode: null},
  play: {started: false, paused: false, speed: 1, frame: 0, episode: 0, seed: null, checksum: null,
         terminated: false, truncated: false, players: {}, runs: 0},
  record: {on: false, queued: 0, sent: 0, error: null, recording: null},
};
window.coplay = coplay;

let settings = null;
let view = null;            // the latest PLAY answer
let timer = null;
let nextAt = 0;             // when the next frame is due (ms, performance.now())
let lastInspect = 0;
const held = {};            // human player -> bound keys held, most recent last
let chain = Promise.resolve();
let posting = Promise.resolve();
const session = crypto.randomUUID();

const worker = new WorkerClient(onWorkerMessage);
coplay.worker.mode = worker.start();
main().catch((error) => fatal(error.message || String(error), error.traceback || ""));

async function main() {
  settings = await fetchJson("/play.json");
  coplay.record.on = settings.record;
  showSeats();
  const bundle = fetchJson("/bundle.json");
  bundle.catch(() => {});
  await worker.request("INIT", {indexURL: settings.pyodide_url});
  showProgress(0.9, "Loading the game…");
  await worker.request("LOAD", {bundle: await bundle});
  coplay.worker.loaded = true;
  ui.loading.hidden = true;
  for (const speed of SPEEDS) {
    ui.speed.append(h("option", {value: String(speed), selected: speed === 1},
      `${speed}x (${+(settings.fps * speed).toFixed(2)} fps)`));
  }
  ui.seed.value = String(settings.seed);
  await play({op: "start", game: settings.game, config: settings.config, seed: settings.seed,
              ai: settings.worker_ai, record: settings.record});
  coplay.play.started = true;
  for (const control of [ui.pause, ui.reset]) control.disabled = false;
  ui.pause.addEventListener("click", () => setPaused(!coplay.play.paused));
  ui.step.addEventListener("click", stepOne);
  // After a click the game keys belong to the game again (a focused button would take the space bar).
  for (const button of [ui.pause, ui.step, ui.reset]) button.addEventListener("click", focusGame);
  ui.speed.addEventListener("change", () => {
    coplay.play.speed = Number(ui.speed.value);
    nextAt = performance.now();
  });
  ui.resetForm.addEventListener("submit", (event) => {
    event.preventDefault();
    resetWith(ui.seed.value);
  });
  window.addEventListener("keydown", onKeyDown);
  window.addEventListener("keyup", onKeyUp);
  window.addEventListener("blur", () => { for (const p in held) held[p] = []; });
  new ResizeObserver(resize).observe(ui.canvas.parentElement);
  ui.canvas.focus({preventScroll: true});
  setPaused(false);
}

function focusGame() {
  ui.canvas.focus({preventScroll: true});
}

async function fetchJson(url) {
  const response = await fetch(url, {credentials: "same-origin", cache: "no-cache"});
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
  return response.json();
}

function onWorkerMessage(message) {
  if (message.type === "PROGRESS") {
    const share = message.stage === "bundle" ? [0.9, 0.1] : [0, 0.9];
    showProgress(share[0] + share[1] * (Number(message.fraction) || 0), message.message);
  } else if (message.type === "ERROR") {
    fatal(message.message || "the game worker stopped", message.traceback || "");
  }
}

function showProgress(fraction, text) {
  ui.progress.value = Math.max(0, Math.min(1, fraction));
  ui.progressText.textContent = text || "Loading…";
}

// ------------------------------------------------------------------ the bench

/** One PLAY call, after the ones before it; its answer becomes the view. */
function play(call) {
  const done = chain.then(async () => {
    if (coplay.worker.error) return view;
    const answer = await worker.request("PLAY", {call});
    view = answer;
    coplay.play.runs += 1;
    if (answer.records.length) postRecords(answer.records);
    show(answer);
    return answer;
  });
  chain = done.catch((error) => fatal(error.message, error.traceback || ""));
  return done;
}

function postRecords(records) {
  coplay.record.queued += records.length;
  posting = posting.then(async () => {
    if (coplay.record.error) return;
    const response = await fetch("/record", {
      method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({session, records}),
    });
    const answer = await response.json().catch(() => ({error: `HTTP ${response.status}`}));
    if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
    coplay.record.sent += records.length;
    coplay.record.recording = answer.recording;
    ui.recorded.textContent = `${coplay.record.sent} records → ${answer.recording}`;
  }).catch((error) => {
    coplay.record.error = error.message;
    ui.recorded.textContent = `failed: ${error.message}`;
    showNotice(`Recording stopped: ${error.message}`);
  });
}

function humanActions() {
  const actions = {};
  for (const [player, keys] of Object.entries(settings.keys)) {
    const last = (held[player] || []).at(-1);
    if (last !== undefined) actions[player] = keys[last];
  }
  return actions;
}

function period() {
  return 1000 / (settings.fps * coplay.play.speed);
}

/** The running loop: ask for the frames that are due, then sleep until the next one. */
async function tick() {
  timer = null;
  if (coplay.play.paused || coplay.worker.error || ended()) return;
  const t = performance.now();
  if (t - nextAt > MAX_DEBT * period()) nextAt = t;
  const due = t < nextAt ? 0 : Math.min(MAX_CATCH_UP, Math.floor((t - nextAt) / period()) + 1);
  if (due > 0) {
    nextAt += due * period();
    await play({op: "run", frames: due, actions: humanActions(), draw: true});
  }
  if (!coplay.play.paused && !timer && !coplay.worker.error && !ended()) {
    timer = setTimeout(tick, Math.max(0, nextAt - performance.now()));
  }
}

function ended() {
  return Boolean(view && (view.terminated || view.truncated));
}

function setPaused(paused) {
  coplay.play.paused = paused;
  ui.pause.textContent = paused ? "Resume" : "Pause";
  ui.step.disabled = !paused;
  clearTimeout(timer);
  timer = null;
  if (!paused) {
    nextAt = performance.now();
    timer = setTimeout(tick, 0);
  } else if (view) {
    inspect(view);   // the last running answer may have been left out (INSPECT_EVERY_MS)
  }
  showStatus();
}

async function stepOne() {
  if (!coplay.play.paused) return;
  await play({op: "run", frames: 1, actions: humanActions(), draw: true});
}

async function resetWith(text) {
  const seed = Number(text);
  if (!Number.isSafeInteger(seed) || seed < 0) {
    showNotice(`The seed must be a whole number from 0 up, not "${text}".`);
    return;
  }
  showNotice("");
  await play({op: "reset", seed, draw: true});
  if (!coplay.play.paused) setPaused(false);
}

// ------------------------------------------------------------------ keyboard

function typing(event) {
  return event.target instanceof HTMLElement && event.target.matches("input, select, textarea");
}

/** The players that bind `event`'s key, as [player, key name] pairs. */
function bound(event) {
  const found = [];
  for (const [player, keys] of Object.entries(settings.keys)) {
    for (const name of [event.key, event.key?.toLowerCase(), event.key?.toUpperCase(), event.code]) {
      if (name !== undefined && Object.hasOwn(keys, name)) {
        found.push([player, name]);
        break;
      }
    }
  }
  return found;
}

function onKeyDown(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) return;
  const pairs = bound(event);
  if (!pairs.length) return;
  event.preventDefault();
  if (event.repeat) return;
  for (const [player, key] of pairs) held[player] = [...(held[player] || []).filter((k) => k !== key), key];
}

function onKeyUp(event) {
  if (typing(event)) return;
  const pairs = bound(event);
  if (!pairs.length) return;
  event.preventDefault();
  for (const [player, key] of pairs) held[player] = (held[player] || []).filter((k) => k !== key);
}

// ------------------------------------------------------------------ showing

function showSeats() {
  ui.seats.replaceChildren(...settings.players.map((player) => {
    const policy = settings.ai[player];
    const keys = settings.keys[player] || {};
    const names = Object.entries(keys).map(([key, action]) => `${key === " " ? "Space" : key} → ${JSON.stringify(action)}`);
    const text = policy ? `AI: ${policy}` : names.length ? `keys: ${names.join(", ")}` : "no keys: default action";
    return h("li", {}, h("strong", {}, player), ` – ${text}`);
  }));
}

function show(answer) {
  Object.assign(coplay.play, {frame: answer.frame, episode: answer.episode, seed: answer.seed,
                              checksum: answer.checksum, terminated: answer.terminated,
                              truncated: answer.truncated, players: answer.players});
  if (answer.primitives) {
    view.primitives = answer.primitives;
    resize();
  }
  const now = performance.now();
  if (coplay.play.paused || ended() || now - lastInspect >= INSPECT_EVERY_MS) {
    lastInspect = now;
    inspect(answer);
  }
  showStatus();
}

function inspect(answer) {
  ui.frame.textContent = String(answer.frame);
  ui.episode.textContent = String(answer.episode);
  ui.seedShown.textContent = String(answer.seed);
  ui.done.textContent = answer.terminated ? "terminated" : answer.truncated ? "truncated" : "no";
  ui.checksum.textContent = answer.checksum;
  ui.info.textContent = JSON.stringify(answer.info, null, 1);
  ui.players.replaceChildren(...Object.entries(answer.players).map(([player, p]) =>
    h("div", {class: "play-player", "data-player": player},
      h("strong", {}, player + (p.ai ? " (AI)" : "")),
      ` reward ${formatNumber(p.reward)} · return ${formatNumber(p.return)}`,
      h("pre", {class: "observation", text: JSON.stringify(p.observation).slice(0, SHOWN_CHARS)}))));
}

function formatNumber(value) {
  return typeof value === "number" ? String(+value.toFixed(4)) : JSON.stringify(value);
}

function showStatus() {
  if (coplay.worker.error) return;
  let text = coplay.play.paused ? "Paused: Step runs one frame." : "Running.";
  if (ended()) text = `Episode over (${view.terminated ? "terminated" : "truncated"}): reset to play again.`;
  if (ui.status.textContent !== text) ui.status.textContent = text;
}

function showNotice(text) {
  ui.notice.hidden = !text;
  ui.notice.textContent = text;
}

function resize() {
  const primitives = view?.primitives;
  if (!primitives) return;
  const viewport = viewportOf(primitives);
  const width = ui.canvas.clientWidth || viewport.width;
  const height = Math.round(width * viewport.height / viewport.width);
  const scale = window.devicePixelRatio || 1;
  if (ui.canvas.width !== Math.round(width * scale) || ui.canvas.height !== Math.round(height * scale)) {
    ui.canvas.width = Math.round(width * scale);
    ui.canvas.height = Math.round(height * scale);
    ui.canvas.style.height = `${height}px`;
  }
  draw(ui.canvas.getContext("2d"), primitives, ui.canvas.width, ui.canvas.height);
}

function fatal(message, traceback) {
  if (coplay.worker.error) return;
  coplay.worker.error = message;
  clearTimeout(timer);
  console.error(`coplay play: ${message}`, traceback);
  ui.loading.hidden = true;
  for (const control of [ui.pause, ui.step, ui.reset]) control.disabled = true;
  ui.status.replaceChildren(h("div", {class: "fatal play-error", role: "alert"},
    h("strong", {}, "The game stopped: "), h("span", {class: "fatal-message", text: message}),
    traceback ? h("details", {open: true}, h("summary", {}, "Traceback"), h("pre", {text: traceback})) : null));
}
