// The participant's page: one Socket.IO connection to the experiment server (docs/protocol.md),
// one game worker (docs/worker.md), and the view of the current scene.

import {$, h} from "./dom.js";
import {sceneView} from "./scenes.js";
import {coplay, noteEvent, options} from "./state.js";
import {WorkerClient} from "./worker_client.js";

const PYODIDE_URL = "/static/vendor/pyodide/";   // unless /config.json names another (e.g. a CDN)
const CONFIG_URL = "/config.json";
const BUNDLE_URL = "/bundle.json";
const AUTOPILOT_DELAY_MS = 400;
const ADVANCE_TIMEOUT_MS = 15_000;
const MAX_REPORT_CHARS = 8000;   // client_error fields are at most 8 KiB on the server

const ui = {
  main: $("#scene"),
  stage: $("#stage"),
  loading: $("#loading"),
  progress: $("#progress"),
  progressText: $("#progress-text"),
  step: $("#step"),
  notice: $("#notice"),
};
let view = null;          // the current scene's view
let terminated = false;   // the study is over and the worker told to close: its errors no longer matter
let pendingReport = null; // a client_error waiting for the connection
let advanceTimer = null;  // an `advance` the server has not answered yet
let pendingAdvance = null;  // {index, data} of that advance: sent again if a reconnect lost it
let awayNotice = null;    // {text, scene}: why the page skipped a match, shown above the next scene (scene null till then)

const now = () => Math.round(performance.now());

if (typeof io !== "function") {
  ui.main.replaceChildren(h("p", {class: "fatal", role: "alert"},
    "The page could not load all its parts. Please check your connection and reload the page."));
  throw new Error("coplay: /static/vendor/socket.io.min.js did not load (no global io)");
}
const socket = io({transports: ["websocket"]});

// ------------------------------------------------------------------ the worker

const worker = new WorkerClient(onWorkerMessage);
coplay.worker.mode = worker.start();
const bundle = loadGame();
bundle.catch(() => {});   // reported by fatal(); matches await it again

async function loadGame() {
  coplay.pyodide.startMs = now();
  showProgress(0, "loading Python");
  const fetched = fetchJson(BUNDLE_URL);
  fetched.catch(() => {});
  try {
    const config = await fetchJson(CONFIG_URL).catch((error) => {
      console.warn(`coplay: ${error.message}; loading Pyodide from ${PYODIDE_URL}`);
      return {};
    });
    await worker.request("INIT", {indexURL: config.pyodide_url || PYODIDE_URL});
    markReady();
    const game = await fetched;
    showProgress(0.9, "loading the game");
    await worker.request("LOAD", {bundle: game});
    coplay.worker.loaded = true;
    coplay.pyodide.loadedMs = now();
    ui.loading.hidden = true;
    view?.maybeReady?.();
    return game;
  } catch (error) {
    fatal(`the game could not be loaded: ${error.message}`, error.traceback || "");
    throw error;
  }
}

async function fetchJson(url) {
  const response = await fetch(url, {credentials: "same-origin", cache: "no-cache"});
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
  return response.json();
}

function markReady() {
  if (coplay.worker.ready) return;
  coplay.worker.ready = true;
  coplay.pyodide.readyMs = now();
}

function onWorkerMessage(message) {
  switch (message.type) {
    case "PROGRESS": {
      const share = message.stage === "bundle" ? [0.9, 0.1] : [0, 0.9];
      showProgress(share[0] + share[1] * (Number(message.fraction) || 0), message.message);
      break;
    }
    case "READY":
      markReady();
      break;
    case "ERROR":
      fatal(message.message || "the game stopped with an error", message.traceback || "");
      break;
    default:   // OUT, STATE, DONE belong to the match being played
      view?.onWorkerMessage?.(message);
  }
}

function showProgress(fraction, text) {
  if (coplay.worker.loaded || coplay.worker.error || terminated) return;
  ui.loading.hidden = false;
  const value = Math.max(0, Math.min(1, fraction));
  ui.progress.value = value;
  ui.progress.title = text || "";   // the worker's technical note, for the curious
  ui.progressText.textContent = `Preparing the game… ${Math.round(value * 100)} %`;
}

// ------------------------------------------------------------------ failures

/**
 * The game cannot run here: say so on the page, tell the server (client_error), and disconnect so
 * the server gives this seat to an AI or ends the match for the partner at once.
 */
function fatal(message, traceback = "") {
  if (coplay.worker.error || terminated) return;
  coplay.worker.error = message;
  console.error(`coplay: ${message}`, traceback);
  ui.loading.hidden = true;
  view?.leave?.();
  view = null;
  ui.main.replaceChildren(h("section", {class: "fatal", role: "alert"},
    h("h1", {tabindex: "-1"}, "Sorry, the game stopped working"),
    h("p", {}, "Your browser could not run the game, so you cannot continue here. " +
      "The researchers have been told. You can try reloading the page."),
    h("p", {class: "fatal-message", text: message}),
    traceback ? h("details", {}, h("summary", {}, "Technical details"), h("pre", {text: traceback})) : null,
    h("div", {class: "actions"}, h("button", {type: "button", class: "primary", onclick: () => location.reload()},
      "Reload the page"))));
  ui.main.querySelector("h1").focus();
  pendingReport = {message: message.slice(0, MAX_REPORT_CHARS), traceback: String(traceback).slice(-MAX_REPORT_CHARS)};
  if (socket.connected) sendReport();
}

function sendReport() {
  // Disconnect only once the server has the report (or after 2 s): a disconnect right after
  // the emit can close the connection before the report leaves.
  socket.timeout(2000).emit("client_error", pendingReport, () => socket.disconnect());
  pendingReport = null;
}

function showNotice(text) {
  ui.notice.hidden = !text;
  ui.notice.textContent = text || "";
}

// ------------------------------------------------------------------ the server

socket.onAny((name) => noteEvent(name));

socket.on("connect", () => {
  coplay.connected = true;
  showNotice(awayNotice?.text || "");
  if (pendingReport) sendReport();
});

socket.on("disconnect", (reason) => {
  coplay.connected = false;
  coplay.disconnects += 1;
  view?.onDisconnect?.();
  if (coplay.worker.error || reason === "io client disconnect") return;
  showNotice(reason === "io server disconnect"
    ? "This study was opened in another window or tab. Please continue there."
    : "The connection to the study server was lost. Reconnecting…");
});

socket.on("connect_error", (error) => {
  if (coplay.worker.error) return;
  showNotice(socket.active
    ? "Cannot reach the study server. Retrying…"
    : `The study server refused the connection (${error.message}). Please reload the page; ` +
      "if this keeps happening, allow cookies for this site.");
});

/** Finish scene `index`; if the server neither moves on nor refuses within a while, let the participant retry. */
function advance(index, data) {
  clearTimeout(advanceTimer);
  pendingAdvance = {index, data};
  const asked = view;
  advanceTimer = setTimeout(() => {
    if (view === asked) asked.onError?.("The study server did not answer. Please try again in a moment.");
  }, ADVANCE_TIMEOUT_MS);
  socket.emit("advance", {index, data});
}

socket.on("scene", ({index, count, scene}) => {
  if (coplay.worker.error || !scene) return;
  ui.step.textContent = count > 1 ? `Step ${index + 1} of ${count}` : "";
  if (view && coplay.scene.index === index && coplay.scene.id === scene.id) {
    // Sent again after a reconnect: keep what the participant has typed, and send again an advance
    // the dropped connection may have swallowed (the server is still on this scene, so it never got it).
    view.resent?.();
    if (pendingAdvance?.index === index) socket.emit("advance", pendingAdvance);
    return;
  }
  clearTimeout(advanceTimer);
  pendingAdvance = null;
  view?.leave?.();
  coplay.scene = {index, kind: scene.kind, id: scene.id};
  const shown = view = sceneView(index, scene, {
    advance: (data) => advance(index, data),
    socket, worker, bundle, stage: ui.stage, fatal,
  });
  ui.main.replaceChildren(view.el);
  if (awayNotice && awayNotice.scene === null) awayNotice.scene = index;
  else if (awayNotice) {
    awayNotice = null;
    showNotice("");
  }
  window.scrollTo(0, 0);
  (ui.main.querySelector("h1") || ui.main).focus({preventScroll: true});
  view.maybeReady?.();
  if (scene.kind === "end") terminateWorker();
  if (options.autopilot && view.autopilot) {
    setTimeout(() => { if (view === shown) shown.autopilot(); }, AUTOPILOT_DELAY_MS);
  }
});

socket.on("waiting", (payload) => {
  if (payload.scene === coplay.scene.index) view?.onWaiting?.(payload);
});
socket.on("match_start", (payload) => {
  if (view?.onMatchStart) view.onMatchStart(payload);
  else console.warn("coplay: match_start outside a match scene", payload);
});
socket.on("packet", (payload) => view?.onPacket?.(payload));
socket.on("seat_changed", (payload) => view?.onSeatChanged?.(payload));
socket.on("match_end", (payload) => {
  coplay.match.end_reason = payload.reason;
  view?.onMatchEnd?.(payload);
  if (payload.away) {   // the page moves on at once: say why above the next scene
    awayNotice = {text: payload.message, scene: null};
    showNotice(awayNotice.text);
  }
});

socket.on("error", (payload = {}) => {
  if (payload.event === "advance") {
    if (!pendingAdvance) return;   // refusing a resent advance the server had already taken: stale
    clearTimeout(advanceTimer);
    pendingAdvance = null;
  }
  coplay.errors.push(payload);
  console.warn("coplay: the server refused an event:", payload);
  if ((payload.event === "advance" || payload.event === "ready") && view?.onError) view.onError(payload.reason);
  else if (!["packet", "episode_done", "client_error"].includes(payload.event)) {
    showNotice(`The server refused "${payload.event}": ${payload.reason}`);
  }
});

/** The study is over: let the worker free Pyodide's memory; from now on its silence is no error. */
function terminateWorker() {
  if (terminated) return;
  terminated = true;
  ui.loading.hidden = true;
  worker.request("TERMINATE").catch(() => {});
}
