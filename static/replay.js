// The admin replay viewer: plays a recorded match, re-simulated on the server
// (/replay/<match>/frames.json), drawn with the participants' renderer (renderer.js).
// window.coplayReplay exposes {frame, episode, playing, speed, loadedFrames, ...} for tests.

import {draw, fitCanvas, viewportOf} from "./renderer.js";

const CHUNK = 300;         // frames per request
const AHEAD = 150;         // at least this many frames ahead of the playhead are fetched
const $ = id => document.getElementById(id);

const matchId = decodeURIComponent(location.pathname.split("/")[2] || "");
const base = `/replay/${encodeURIComponent(matchId)}`;

const state = window.coplayReplay = {
  match: matchId, episode: 0, frame: 0, playing: false, speed: 1, loadedFrames: 0,
  states: 0, fps: 60, drawn: 0, mismatch: false, buffering: false, error: null,
};
let info = null;           // episodes.json
let frames = new Map();    // frame -> entry, for the current episode
const inflight = new Set();
let ratio = 4 / 3;
let clock = {last: null, carry: 0};

// The token in the address bar has done its work (the session remembers it): keep it out of history.
if (new URLSearchParams(location.search).has("token")) {
  history.replaceState(null, "", location.pathname);
}

async function getJSON(url) {
  const response = await fetch(url, {credentials: "same-origin", cache: "no-store"});
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = null;
  }
  if (!response.ok) throw new Error((body && body.error) || `${url}: HTTP ${response.status}`);
  return body;
}

function fail(error) {
  state.error = String(error && error.message || error);
  $("error").textContent = state.error;
  $("error").hidden = false;
  pause();
}

// ---------------------------------------------------------------- loading frames

/** Fetch the chunk holding `frame` and those the playhead reaches in the next ~1.5 s at this speed. */
function ensureLoaded(frame) {
  const ahead = Math.max(AHEAD, state.fps * state.speed * 1.5);
  for (let start = Math.floor(frame / CHUNK) * CHUNK; start < state.states && start <= frame + ahead; start += CHUNK) {
    load(start);
  }
}

async function load(start) {
  const episode = state.episode;
  if (start >= state.states || frames.has(start) || inflight.has(`${episode}:${start}`)) return;
  const key = `${episode}:${start}`;
  inflight.add(key);
  try {
    const chunk = await getJSON(`${base}/frames.json?episode=${episode}&start=${start}&count=${CHUNK}`);
    if (chunk.episode !== state.episode) return;
    for (const entry of chunk.frames) frames.set(entry.frame, entry);
    state.loadedFrames = frames.size;
    if (frames.has(state.frame)) show();
  } catch (error) {
    fail(error);
  } finally {
    inflight.delete(key);
  }
}

// ---------------------------------------------------------------- drawing and the panel

function resize() {
  fitCanvas($("canvas"), $("stage").parentElement.clientWidth, Math.min(window.innerHeight * 0.6, 720), ratio);
}

function formatTime(seconds) {
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${(seconds - minutes * 60).toFixed(2).padStart(5, "0")}`;
}

const short = text => (text.length > 12 ? `${text.slice(0, 12)}…` : text);

function seatOf(player) {
  for (const [addr, seat] of Object.entries(info.seats || {})) {
    if ((seat.players || []).includes(player)) return `${addr} (${seat.kind})`;
  }
  return "";
}

/** Draw the current frame and update the counter, slider, actions and checksum marker. */
function show() {
  const last = Math.max(0, state.states - 1);
  $("counter").textContent = `frame ${state.frame} / ${last} · ${formatTime(state.frame / state.fps)} / ` +
    formatTime(last / state.fps);
  $("seek").value = String(state.frame);
  $("play").textContent = state.playing ? "Pause" : "Play";
  const entry = frames.get(state.frame);
  state.buffering = !entry;
  $("status").textContent = entry ? `${state.loadedFrames} frames loaded` : "loading frames…";
  if (!entry) return;
  const view = viewportOf(entry.primitives);
  if (view.width / view.height !== ratio) {
    ratio = view.width / view.height;
    resize();
  }
  const canvas = $("canvas");
  draw(canvas.getContext("2d"), entry.primitives, canvas.width, canvas.height);
  state.drawn += 1;
  const rows = (info.players || []).map(player => {
    const action = entry.actions ? JSON.stringify(entry.actions[player]) : "—";
    const reward = entry.rewards && player in entry.rewards ? String(entry.rewards[player]) : "—";
    return [player, seatOf(player), action, reward];
  });
  $("actions").replaceChildren(...rows.map(cells => {
    const tr = document.createElement("tr");
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  }));
  const check = entry.checksum;
  state.mismatch = Boolean(check && !check.ok);
  $("mismatch").hidden = !state.mismatch;
  if (state.mismatch) {
    const recorded = Object.entries(check.recorded).map(([seat, sum]) => `${seat} ${short(sum)}`).join(", ");
    $("mismatch").textContent = `Checksum MISMATCH at frame ${state.frame}: recorded ${recorded}, ` +
      `replayed ${short(check.replayed)}`;
  }
}

// ---------------------------------------------------------------- playback

function seek(frame) {
  state.frame = Math.max(0, Math.min(state.states - 1, Math.round(frame)));
  ensureLoaded(state.frame);
  show();
}

function play() {
  if (state.frame >= state.states - 1) seek(0);
  state.playing = true;
  clock = {last: null, carry: 0};
  show();
}

function pause() {
  state.playing = false;
  show();
}

function step(delta) {
  state.playing = false;
  seek(state.frame + delta);
}

function tick(now) {
  requestAnimationFrame(tick);
  if (!state.playing) return;
  if (clock.last === null) clock.last = now;
  const elapsed = Math.min(now - clock.last, 250);   // a background tab does not jump ahead
  clock.last = now;
  if (!frames.has(state.frame + 1) && state.frame < state.states - 1) {
    ensureLoaded(state.frame + 1);                    // wait for the frames (buffering)
    show();
    return;
  }
  clock.carry += elapsed * state.fps * state.speed / 1000;
  const advance = Math.floor(clock.carry);
  if (advance < 1) return;
  clock.carry -= advance;
  let target = Math.min(state.frame + advance, state.states - 1);
  while (target > state.frame && !frames.has(target)) target -= 1;
  state.frame = target;
  ensureLoaded(state.frame);
  if (state.frame >= state.states - 1) state.playing = false;
  show();
}

// ---------------------------------------------------------------- episodes

function selectEpisode(episode) {
  const entry = info.episodes.find(e => e.episode === episode);
  if (!entry) return;
  state.episode = episode;
  state.states = entry.states;
  state.fps = entry.fps || info.fps || 60;
  state.playing = false;
  frames = new Map();
  state.loadedFrames = 0;
  $("seek").max = String(Math.max(0, entry.states - 1));
  seek(0);
}

function describe(entry) {
  const c = entry.checksums;
  const verdict = c.mismatches ? `${c.mismatches} MISMATCHED (first at frame ${c.first_mismatch})`
    : c.checked ? "checksums verified" : "no checksums recorded";
  return `episode ${entry.episode}: ${entry.frames} frames, seed ${entry.seed}, ${verdict}`;
}

async function start() {
  try {
    info = await getJSON(`${base}/episodes.json`);
  } catch (error) {
    $("status").textContent = "";
    fail(error);
    return;
  }
  $("title").textContent = `Replay of match ${info.match}`;
  document.title = `Replay ${info.match}`;
  const truncated = info.truncated ? " · the recording is truncated (the process died while writing it)" : "";
  $("summary").textContent = `scene ${info.scene} · ${info.game} · ${info.players.join(", ")} · ` +
    `${info.fps} fps · recorded ${info.created_at}${info.ended ? "" : " · no match end recorded"}${truncated}`;
  const select = $("episode");
  select.replaceChildren(...info.episodes.map(entry => {
    const option = document.createElement("option");
    option.value = String(entry.episode);
    option.textContent = describe(entry);
    return option;
  }));
  if (!info.episodes.length) {
    fail(new Error("this match has no recorded episode"));
    return;
  }
  selectEpisode(info.episodes[0].episode);
  requestAnimationFrame(tick);
}

// ---------------------------------------------------------------- controls

$("play").addEventListener("click", () => (state.playing ? pause() : play()));
$("back").addEventListener("click", () => step(-1));
$("forward").addEventListener("click", () => step(1));
$("seek").addEventListener("input", event => seek(Number(event.target.value)));
$("speed").addEventListener("change", event => {
  state.speed = Number(event.target.value) || 1;
  clock.carry = 0;
});
$("episode").addEventListener("change", event => selectEpisode(Number(event.target.value)));
for (const button of document.querySelectorAll(".replay-controls button")) {
  button.addEventListener("mousedown", event => event.preventDefault());   // keep keyboard focus on the page
}
document.addEventListener("keydown", event => {
  if (event.altKey || event.ctrlKey || event.metaKey || !info) return;
  const tag = event.target && event.target.tagName;
  if (event.key === " " && tag !== "BUTTON" && tag !== "SELECT") {
    event.preventDefault();
    if (state.playing) pause();
    else play();
  } else if ((event.key === "ArrowLeft" || event.key === "ArrowRight") && tag !== "INPUT" && tag !== "SELECT") {
    event.preventDefault();
    step(event.key === "ArrowLeft" ? -1 : 1);
  }
});
new ResizeObserver(() => {
  resize();
  if (info) show();
}).observe($("stage").parentElement);
resize();
start();
