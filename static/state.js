// window.coplay: what the page is doing, kept up to date for tests and headless pilots.
// Plain data only (JSON-serialisable), so a test can read it with JSON.parse(JSON.stringify(window.coplay)).

const params = new URLSearchParams(location.search);

export const options = {
  autopilot: params.get("autopilot") === "1",
  hud: params.get("hud") !== "0",
};

export const coplay = {
  scene: {index: null, kind: null, id: null},
  worker: {ready: false, loaded: false, error: null, mode: null},
  match: {match: null, episode: null, checksums: []},
  events: [],
  errors: [],
  pyodide: {startMs: null, readyMs: null, loadedMs: null},
  resume: null,   // {frame, startMs, playingMs} of the last match_start with resume (static/match.js)
  disconnects: 0,
  connected: false,
  end: null,
  autopilot: options.autopilot,
};

window.coplay = coplay;

const MAX_EVENTS = 1000;  // a long session must not grow the list forever

/** Record the name of a received socket event (not `packet`: dozens a second). */
export function noteEvent(name) {
  if (name === "packet") return;
  coplay.events.push(name);
  if (coplay.events.length > MAX_EVENTS) coplay.events.splice(0, coplay.events.length - MAX_EVENTS);
}
