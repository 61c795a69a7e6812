// The dashboard's live view of a running match: frames pushed on Socket.IO's /admin namespace
// (app/live/spectator.py re-simulates the confirmed inputs on the server), drawn with the
// participants' renderer. window.coplayWatch exposes {frame, frames, episode, ended} for tests.

import {draw, fitCanvas, viewportOf} from "./renderer.js";

const $ = id => document.getElementById(id);
const matchId = decodeURIComponent(location.pathname.split("/")[3] || "");
const state = window.coplayWatch = {match: matchId, frame: null, frames: 0, episode: null, ended: false};
let ratio = 4 / 3;

$("title").textContent = `Match ${matchId}`;

function resize() {
  fitCanvas($("canvas"), $("stage").parentElement.clientWidth, Math.min(window.innerHeight * 0.7, 720), ratio);
}

window.addEventListener("resize", resize);
resize();

const socket = io("/admin", {transports: ["websocket", "polling"], auth: {watch: matchId}});
socket.on("connect", () => { $("status").textContent = "live"; });
socket.on("connect_error", () => { $("status").textContent = "not connected (logged out? reload the page)"; });
socket.on("frame", (frame) => {
  if (frame.unsupported) {   // a relayed match: its inputs are on the relay (docs/scaling.md)
    state.unsupported = frame.unsupported;
    $("status").textContent = "no live view";
    $("counter").textContent = frame.unsupported;
    $("stage").hidden = true;
    socket.disconnect();
    return;
  }
  if (frame.ended) {
    state.ended = true;
    $("status").textContent = "the match has ended";
    socket.disconnect();
    return;
  }
  const view = viewportOf(frame.primitives);
  if (view.width / view.height !== ratio) {
    ratio = view.width / view.height;
    resize();
  }
  const canvas = $("canvas");
  draw(canvas.getContext("2d"), frame.primitives, canvas.width, canvas.height);
  state.frame = frame.frame;
  state.episode = frame.episode;
  state.frames += 1;
  $("counter").textContent = `episode ${frame.episode + 1} · frame ${frame.frame} (confirmed ${frame.confirmed})`;
});
