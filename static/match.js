// The match scene: title and instructions, "preparing the game", the waiting room, then the
// canvas. Relays netcode packets between the server and the worker (on the match channel, else
// as Socket.IO `packet` events), captures the keyboard and draws the latest STATE on each
// animation frame.

import {clock, h} from "./dom.js";
import {KeyMap} from "./keymap.js";
import {draw, viewportOf} from "./renderer.js";
import {coplay, options} from "./state.js";

const HUD_EVERY_MS = 250;
const AUTOPILOT_EVERY_MS = 300;
const NOTICE_MS = 3000;     // how long "your partner is back" stays
const CHANNEL_OPEN_MS = 3000;   // a match channel not `ok` by then is given up: packets stay on Socket.IO
const CHANNEL_REJOIN_MS = 1000; // a channel that broke mid-match: ask for a fresh ticket this much later
// Close codes after which the page does not ask for a new channel: normal, flooding, try later,
// bad ticket, seat no longer ours (docs/protocol.md).
const CHANNEL_FINAL_CODES = [1000, 1008, 1013, 4401, 4410];

/** The page's match channel figures (tests read them): channels opened, the close codes of those that
 *  closed under the page (the last 20), packets sent on a channel. */
function channelStats() {
  coplay.channel ??= {opened: 0, closes: [], packets: 0};
  return coplay.channel;
}

/** The URL of match_start's channel: a path on this page's origin, or an absolute ws(s):// URL. */
function channelUrl(url) {
  const resolved = new URL(url, location.href);
  if (resolved.protocol === "http:") resolved.protocol = "ws:";
  else if (resolved.protocol === "https:") resolved.protocol = "wss:";
  return resolved.href;
}

/** The match channel (docs/protocol.md): a WebSocket carrying this seat's packets as
 *  "<episode> <addr> <data>" text frames once the server said `ok` to its ticket.
 *  `onPacket(payload)` gets frames as Socket.IO `packet` payloads; `onLost(code, wasReady)` is
 *  called once if it closes other than by `close()`. */
/** match_start with its `local_ai` policies named as the game bundle names them for the worker (as the game). */
function withBundledPolicies(start, bundle) {
  if (!start.local_ai) return start;
  const named = (spec) => bundle.games?.[spec] || spec;
  const localAi = Object.fromEntries(Object.entries(start.local_ai).map(([p, ai]) => [p, {...ai, policy: named(ai.policy)}]));
  return {...start, local_ai: localAi};
}

class MatchChannel {
  constructor(spec, match, onPacket, onLost) {
    this.match = match;
    this.ready = false;
    this.closed = false;
    this.ws = new WebSocket(channelUrl(spec.url));
    this.timer = setTimeout(() => { if (!this.ready) this.close(); }, CHANNEL_OPEN_MS);
    this.ws.onopen = () => this.ws.send(spec.ticket);
    this.ws.onmessage = ({data}) => {
      if (typeof data !== "string") return;
      if (!this.ready) {
        this.ready = data === "ok";
        if (this.ready) clearTimeout(this.timer);
        return;
      }
      if (data.startsWith("! ")) {
        console.warn("coplay: the server refused a packet:", data.slice(2));
        return;
      }
      const a = data.indexOf(" ");
      const b = data.indexOf(" ", a + 1);
      if (a > 0 && b > a) onPacket({match, episode: Number(data.slice(0, a)), from: data.slice(a + 1, b), data: data.slice(b + 1)});
    };
    this.ws.onclose = ({code}) => {
      const wasReady = this.ready;
      this.ready = false;
      clearTimeout(this.timer);
      if (!this.closed) {
        this.closed = true;
        onLost(code, wasReady);
      }
    };
  }

  /** Send a packet; false (the caller sends it over Socket.IO) until the channel is `ok`. */
  send(packet) {
    if (!this.ready || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(`${packet.episode} ${packet.to} ${packet.data}`);
    return true;
  }

  close() {
    this.closed = true;
    this.ready = false;
    clearTimeout(this.timer);
    this.ws.close(1000);
  }
}

export class MatchView {
  /**
   * ctx: {index, scene, socket, worker, bundle (a promise of the bundle), stage (the #stage element),
   *       fatal(message, traceback)}
   */
  constructor(ctx) {
    Object.assign(this, ctx);
    this.readySent = false;
    this.current = null;        // {match, episode, players, keys} of the running episode
    this.channel = null;        // the match channel (MatchChannel), while one is open or opening
    this.starting = null;       // packets of this episode that arrive before START answered (the
                                // browser's one pre-start buffer: the worker drops packets while no match runs)
    this.held = [];             // bound keys held, most recent last
    this.keys = new KeyMap(ctx.scene.keys);
    this.lastInput = "";
    this.primitives = null;     // the latest STATE's primitives
    this.dirty = false;
    this.chain = Promise.resolve();   // worker requests of this view, one after the other
    this.secondsLeft = null;
    this.canvas = this.stage.querySelector("canvas");
    this.hud = this.stage.querySelector(".hud");
    this.hudText = "";
    this.hudNote = "";
    this.hudShown = options.hud;

    this.status = h("p", {class: "status", role: "status"}, "Preparing the game…");
    this.episodeLabel = h("p", {class: "episode-label", hidden: true});
    this.slot = h("div", {class: "stage-slot"});
    this.el = h("section", {class: "match-view"},
      h("h1", {tabindex: "-1", text: ctx.scene.title || "Game"}),
      this.episodeLabel, this.status, this.slot,
      ctx.scene.html ? h("div", {class: "scene-body", html: ctx.scene.html}) : null);
    this.slot.append(this.stage);

    this.onKeyDown = this.onKeyDown.bind(this);
    this.onKeyUp = this.onKeyUp.bind(this);
    this.releaseAll = this.releaseAll.bind(this);
    this.frame = this.frame.bind(this);
    window.addEventListener("keydown", this.onKeyDown);
    window.addEventListener("keyup", this.onKeyUp);
    window.addEventListener("blur", this.releaseAll);
    this.ratio = 4 / 3;         // the game's viewport width / height
    this.resize = this.resize.bind(this);
    this.resizer = new ResizeObserver(this.resize);
    this.resizer.observe(this.slot);
    window.addEventListener("resize", this.resize);
    this.countdown = setInterval(() => this.tickCountdown(), 1000);
  }

  // ------------------------------------------------------------- loading and the waiting room

  /** The worker has Pyodide and the bundle: join the waiting room (once per connection). */
  maybeReady() {
    if (this.readySent || this.current || !coplay.worker.loaded || coplay.worker.error || !this.socket.connected) return;
    this.readySent = true;
    this.socket.emit("ready", {index: this.index});
    this.setStatus(this.scene.waiting_message || "Waiting for other participants to join…");
  }

  /** After a reconnect the server resends the scene: be ready again. */
  resent() {
    this.readySent = false;
    this.maybeReady();
  }

  /** `ready` was refused (e.g. the server still holds this participant's seat after a reload). */
  onError(reason) {
    this.readySent = false;
    this.setStatus(`Please wait a moment… (${reason})`);
  }

  onWaiting(payload) {
    this.waiting = payload;
    this.secondsLeft = payload.seconds_left;
    this.renderWaiting();
  }

  tickCountdown() {
    if (this.secondsLeft === null || this.current || this.waiting?.busy) return;  // busy: the clock is paused
    this.secondsLeft = Math.max(0, this.secondsLeft - 1);
    this.renderWaiting();
  }

  renderWaiting() {
    if (!this.waiting || this.current) return;
    const {present, needed, busy} = this.waiting;
    if (busy) return this.setStatus(this.waiting.message);  // the server is starting no new match just now
    const message = this.scene.waiting_message || "Waiting for other participants to join…";
    this.setStatus(`${message} ${present} of ${needed} here. Time left: ${clock(this.secondsLeft)}.`);
  }

  setStatus(text) {
    this.status.hidden = !text;
    if (this.status.textContent !== text) this.status.textContent = text;
  }

  // ------------------------------------------------------------- episodes

  onMatchStart(start) {
    const previous = this.current;
    // The keys play the seat's own players; `local_ai` players (an AI seat run here) are played by the worker.
    const players = (start.players || []).filter((p) => !Object.hasOwn(start.local_ai || {}, p));
    this.current = {match: start.match, episode: start.episode, players};
    if (start.keys && Object.keys(start.keys).length) this.keys = new KeyMap(start.keys);
    this.starting = [];
    this.secondsLeft = null;
    this.primitives = null;
    // A new episode starts from zero: no stats of the previous one may show until its first STATE.
    Object.assign(coplay.match, {match: start.match, episode: start.episode, frame: 0, confirmed_frame: -1,
                                 rollbacks: 0, max_rollback_depth: 0, stalls: 0, ping_ms: null, desyncs: 0,
                                 done: false, end_reason: null});
    this.setStatus("");
    if (start.ai_peers?.length) this.onSeatChanged({status: "ai_partner"});   // seats the scene reveals as AI
    this.episodeLabel.hidden = !(start.episodes > 1);
    this.episodeLabel.textContent = `Round ${start.episode + 1} of ${start.episodes}`;
    document.body.classList.add("playing");
    this.stage.hidden = false;
    document.activeElement?.blur?.();   // a focused button must not catch the space bar
    this.canvas.focus({preventScroll: true});
    this.canvas.scrollIntoView({block: "nearest"});
    this.resize();
    if (!this.raf) this.raf = requestAnimationFrame(this.frame);
    if (!this.hudTimer) this.hudTimer = setInterval(() => this.renderHud(), HUD_EVERY_MS);

    this.openChannel(start);
    const current = this.current;
    // A seat taken back: when match_start came and when the worker had re-simulated to the present
    // (page milliseconds; benchmarks/browser.py reads them beside coplay.pyodide's).
    const resumed = start.resume ? (coplay.resume = {frame: start.resume.frame, startMs: Math.round(performance.now()),
                                                     playingMs: null}) : null;
    this.chain = this.chain
      .then(() => (previous ? this.worker.request("STOP").catch((e) => console.error("coplay: STOP failed", e)) : null))
      .then(() => this.bundle)
      .then((bundle) => this.worker.request("START", {start: withBundledPolicies(start, bundle),
                                                     game: bundle.games?.[start.game] || start.game}))
      .then(() => {
        if (resumed) resumed.playingMs = Math.round(performance.now());
        if (this.current !== current) return;
        const queued = this.starting;
        this.starting = null;
        for (const packet of queued) this.worker.post({type: "PACKET", from: packet.from, data: packet.data});
        this.lastInput = "";
        this.sendInput();
        if (options.autopilot) this.startAutopilot();
      })
      .catch((error) => this.fatal(`the game could not start: ${error.message}`, error.traceback));
  }

  /** Open match_start's channel, unless the open one already carries this match (a next episode). */
  openChannel(start) {
    const open = this.channel;
    if (open && !open.closed && open.match === start.match && !start.resume) return;
    this.closeChannel();
    if (!start.channel || typeof WebSocket === "undefined") return;
    const channel = new MatchChannel(start.channel, start.match, (payload) => this.onPacket(payload),
                                     (code, wasReady) => this.onChannelLost(channel, code, wasReady));
    this.channel = channel;
    channelStats().opened += 1;
  }

  closeChannel() {
    if (this.channel) this.channel.close();
    this.channel = null;
  }

  /** The channel closed under us: packets go over Socket.IO; one that broke mid-match is replaced
   *  by asking for the seat again (`ready`: the rejoin's match_start brings a fresh ticket). */
  onChannelLost(channel, code, wasReady) {
    if (this.channel !== channel) return;
    this.channel = null;
    const closes = channelStats().closes;
    closes.push(code);
    if (closes.length > 20) closes.shift();
    if (!wasReady || CHANNEL_FINAL_CODES.includes(code)) return;
    const match = channel.match;
    setTimeout(() => {
      if (this.current?.match === match && !this.channel && this.socket.connected) {
        this.socket.emit("ready", {index: this.index});
      }
    }, CHANNEL_REJOIN_MS);
  }

  onPacket(payload) {
    const current = this.current;
    if (!current || payload.match !== current.match || payload.episode !== current.episode) return;
    if (this.starting) this.starting.push(payload);
    else this.worker.post({type: "PACKET", from: payload.from, data: payload.data});
  }

  /** A partner's seat changed holder: a short neutral notice; an AI is named only when the server
   *  says so (`by`, or `ai_peers` in match_start: sent for the AI seats the scene reveals). */
  onSeatChanged(payload) {
    clearTimeout(this.noticeTimer);
    const notices = {absent: "Your partner's connection dropped; waiting…", back: "Your partner is back.",
                     ai_partner: "Your partner is an AI."};
    const text = payload.by === "ai" ? "An AI now plays for your partner." : (notices[payload.status] || "");
    this.hudNote = text;
    if (this.current) this.setStatus(text);
    if (payload.status !== "absent") this.noticeTimer = setTimeout(() => this.clearNotice(text), NOTICE_MS);
  }

  clearNotice(text) {
    if (this.hudNote === text) this.hudNote = "";
    if (this.current && this.status.textContent === text) this.setStatus("");
  }

  /** The connection dropped: the server holds this seat for a while; on reconnect the page sends
   *  `ready` again and the server resumes the match (a `match_start` with `resume`). */
  onDisconnect() {
    this.readySent = false;
    this.closeChannel();
    if (this.current) {
      this.stopEpisode();
      this.setStatus("The connection was lost. Reconnecting…");
    }
  }

  onMatchEnd(payload) {
    this.closeChannel();
    this.stopEpisode();
    if (payload.reason !== "completed" && payload.message) this.setStatus(payload.message);
  }

  /** Worker messages of the running match: OUT, STATE, DONE. */
  onWorkerMessage(message) {
    const current = this.current;
    if (!current) return;
    if (message.type === "OUT") {
      for (const packet of message.packets || []) {
        if (packet.match !== current.match || packet.episode !== current.episode) continue;
        if (this.channel?.send(packet)) {
          channelStats().packets += 1;
        } else if (this.socket.connected) {
          this.socket.emit("packet", packet);   // never buffered while disconnected
        }
      }
    } else if (message.type === "STATE") {
      if (message.stats) Object.assign(coplay.match, message.stats);
      if (message.primitives) {   // only on ticks the worker drew (about once per animation frame)
        this.primitives = message.primitives;
        this.dirty = true;
      }
    } else if (message.type === "DONE") {
      const report = message.report;
      if (!report || report.match !== current.match || report.episode !== current.episode) return;
      coplay.match.checksums.push(report);
      this.socket.emit("episode_done", report);
    }
  }

  stopEpisode() {
    if (!this.current) return;
    this.current = null;
    this.starting = null;
    this.stopAutopilot();
    this.releaseAll();
    this.chain = this.chain.then(() => this.worker.request("STOP"))
      .catch((error) => console.error("coplay: STOP failed", error));
  }

  /** Leaving the scene: stop the episode, the loops and the listeners; give the stage back. */
  leave() {
    this.closeChannel();
    this.stopEpisode();
    clearTimeout(this.noticeTimer);
    clearInterval(this.countdown);
    clearInterval(this.hudTimer);
    cancelAnimationFrame(this.raf);
    this.raf = null;
    this.resizer.disconnect();
    window.removeEventListener("resize", this.resize);
    window.removeEventListener("keydown", this.onKeyDown);
    window.removeEventListener("keyup", this.onKeyUp);
    window.removeEventListener("blur", this.releaseAll);
    document.body.classList.remove("playing");
    this.stage.hidden = true;
    document.body.append(this.stage);
  }

  // ------------------------------------------------------------- keyboard

  /** The name under which `event`'s key is bound in `keys` (alone or in a combination), or null. */
  boundKey(event) {
    return this.keys.bound(event);
  }

  onKeyDown(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = this.boundKey(event);
    if (key === null) {
      if ((event.key === "h" || event.key === "H") && options.hud && !event.repeat) this.toggleHud();
      return;
    }
    event.preventDefault();   // no page scrolling, no button presses
    if (event.repeat || !this.current) return;
    this.held = this.held.filter((k) => k !== key);
    this.held.push(key);
    this.sendInput();
  }

  onKeyUp(event) {
    const key = this.boundKey(event);
    if (key === null) return;
    event.preventDefault();
    this.held = this.held.filter((k) => k !== key);
    this.sendInput();
  }

  releaseAll() {
    this.held = [];
    this.sendInput();
  }

  /** INPUT: the held keys' action (static/keymap.js) for each local player, {} when no binding is held. */
  sendInput() {
    if (!this.current || this.starting) return;
    const action = this.keys.action(this.held);
    const actions = action === undefined ? {} : Object.fromEntries(this.current.players.map((p) => [p, action]));
    const text = JSON.stringify(actions);
    if (text === this.lastInput) return;
    this.lastInput = text;
    this.worker.post({type: "INPUT", actions});
  }

  // ------------------------------------------------------------- drawing and the HUD

  /** Fit the canvas to the space (width of the page, at most --stage-height tall) and the game's shape. */
  resize() {
    const maxWidth = this.slot.clientWidth;
    const maxHeight = Math.min(window.innerHeight * 0.68, 760);
    if (!maxWidth) return;
    const width = Math.floor(Math.min(maxWidth, maxHeight * this.ratio));
    const height = Math.floor(width / this.ratio);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    const scale = window.devicePixelRatio || 1;
    const pixelsWide = Math.round(width * scale);
    const pixelsHigh = Math.round(height * scale);
    if (pixelsWide !== this.canvas.width || pixelsHigh !== this.canvas.height) {
      this.canvas.width = pixelsWide;
      this.canvas.height = pixelsHigh;
    }
    this.dirty = true;
  }

  frame() {
    this.raf = requestAnimationFrame(this.frame);
    if (!this.dirty || !this.primitives) return;
    this.dirty = false;
    const primitives = this.primitives;
    const view = viewportOf(primitives);
    if (view.width / view.height !== this.ratio) {
      this.ratio = view.width / view.height;
      this.resize();
    }
    draw(this.canvas.getContext("2d"), primitives, this.canvas.width, this.canvas.height);
  }

  toggleHud() {
    this.hudShown = !this.hudShown;
    this.renderHud();
  }

  renderHud() {
    this.hud.hidden = !this.hudShown;
    if (!this.hudShown) return;
    const s = coplay.match;
    const ping = s.ping_ms === null || s.ping_ms === undefined ? "–" : `${Math.round(s.ping_ms)} ms`;
    const text = `ping ${ping} · rollbacks ${s.rollbacks ?? 0} · frame ${s.frame ?? 0}` +
      (this.hudNote ? `\n${this.hudNote}` : "");
    if (text !== this.hudText) {
      this.hudText = text;
      this.hud.textContent = text;
    }
  }

  // ------------------------------------------------------------- autopilot

  /** Press a random bound key (or none) every ~0.3 s, through the same keyboard handlers. */
  startAutopilot() {
    const names = this.keys.keyNames();
    if (!names.length || this.autopilotTimer) return;
    let down = null;
    this.autopilotTimer = setInterval(() => {
      if (down !== null) window.dispatchEvent(new KeyboardEvent("keyup", {key: down, bubbles: true}));
      down = Math.random() < 0.2 ? null : names[Math.floor(Math.random() * names.length)];
      if (down !== null) window.dispatchEvent(new KeyboardEvent("keydown", {key: down, bubbles: true, cancelable: true}));
    }, AUTOPILOT_EVERY_MS);
  }

  stopAutopilot() {
    clearInterval(this.autopilotTimer);
    this.autopilotTimer = null;
  }
}
