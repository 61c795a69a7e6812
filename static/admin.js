// The researcher's dashboard: draws each snapshot the server pushes on Socket.IO's /admin namespace
// (app/live/dashboard.py) and sends the researcher's actions as JSON requests (app/web/admin_routes.py).
// Nothing is kept only here: every figure comes from the server, so a reload or a restart shows the same.
// window.coplayAdmin exposes {snapshots, last, connected, error} for tests.

const $ = id => document.getElementById(id);
const state = window.coplayAdmin = {snapshots: 0, last: null, connected: false, error: null};

/** Cell `index` of `row` (made when missing) showing `text`. */
function cell(row, index, text, className) {
  const td = row.cells[index] || row.insertCell();
  const shown = text == null ? "" : String(text);
  if (td.textContent !== shown) td.textContent = shown;
  if (className) td.className = className;
  return td;
}

/** Cell `index` of `row` holding the element `make()` builds, built once (so it stays clickable). */
function control(row, index, make) {
  const td = row.cells[index] || row.insertCell();
  if (!td.firstChild) td.append(make());
  return td;
}

function button(text, onClick, label) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "secondary";
  b.textContent = text;
  if (label) b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

/** Rows of `tbody`, one per item (kept by `key` from one snapshot to the next), drawn by `draw(row, item)`. */
function fill(tbody, items, key, draw, empty, columns) {
  const old = new Map([...tbody.rows].filter(r => r.dataset.key).map(r => [r.dataset.key, r]));
  const rows = items.map(item => {
    let row = old.get(key(item));
    if (!row) {
      row = document.createElement("tr");
      row.dataset.key = key(item);
    }
    draw(row, item);
    return row;
  });
  if (!items.length) {
    const row = document.createElement("tr");
    cell(row, 0, empty).colSpan = columns;
    rows.push(row);
  }
  const same = rows.length === tbody.rows.length && rows.every((row, i) => tbody.rows[i] === row);
  if (!same) tbody.replaceChildren(...rows);
}

function list(ul, events) {
  ul.replaceChildren(...events.map(e => {
    const li = document.createElement("li");
    const who = [e.participant && `participant ${e.participant}`, e.match && `match ${e.match}`].filter(Boolean);
    li.textContent = `${e.at.slice(11, 19)} ${e.kind}${who.length ? " (" + who.join(", ") + ")" : ""}: ${e.text}`;
    return li;
  }));
  if (!events.length) ul.replaceChildren(Object.assign(document.createElement("li"), {textContent: "none"}));
}

function showError(message) {
  state.error = message;
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

async function act(url, body) {
  showError(null);
  try {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: {"Content-Type": "application/json", "X-Coplay-Admin": "1"}, body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
    return answer;
  } catch (error) {
    showError(`${url}: ${error.message}`);
    return null;
  }
}

function seatText(seat) {
  const who = seat.kind === "human" ? (seat.participant || "?") : (seat.policy || "AI");
  const ping = seat.ping_ms == null ? "" : `, ${seat.ping_ms} ms`;
  return `${seat.addr} ${seat.players.join("/")}: ${seat.kind} ${who} (${seat.state}${ping})`;
}

function mb(bytes) {
  return bytes == null || Number.isNaN(bytes) ? "–" : `${(bytes / 1048576).toFixed(0)} MB`;
}

function drawCharts(charts) {
  for (const [name, svg] of Object.entries(charts || {})) {
    const parsed = new DOMParser().parseFromString(svg, "image/svg+xml").documentElement;
    if (parsed.nodeName === "svg") $(`chart-${name}`).replaceChildren(document.importNode(parsed, true));
  }
}

function draw(s) {
  const people = s.participants, live = s.live, by = people.by_status;
  $("n-total").textContent = people.total;
  $("n-active").textContent = by.active || 0;
  $("n-completed").textContent = by.completed || 0;
  $("n-codes").textContent = people.completion_codes;
  $("n-sockets").textContent = live.sockets;
  $("n-waiting").textContent = live.waiting_rooms.reduce((n, room) => n + room.waiting.length, 0);
  $("n-matches").textContent = live.matches.length;

  const entries = s.entries;
  $("entries-state").textContent = entries.paused
    ? `Paused since ${entries.since} by ${entries.by}: new arrivals see the paused page.`
    : "Open: new participants may enter.";
  $("entries-toggle").textContent = entries.paused ? "Resume new entries" : "Pause new entries";
  $("entries-toggle").dataset.paused = entries.paused ? "1" : "0";

  const h = s.health;
  $("h-cpu").textContent = h.cpu_percent == null ? "–" : `${h.cpu_percent} % of one core`;
  $("h-mem").textContent = mb(h.memory_bytes);
  $("h-relay").textContent = h.relay_p99_ms == null ? "no packets" : `${h.relay_p99_ms} ms`;
  $("h-packets").textContent = h.relayed_packets;
  $("h-admission").textContent = admissionText(h.admission);
  $("h-relays").textContent = relaysText(h.admission);

  fill($("matches"), live.matches, m => m.id, (row, m) => {
    control(row, 0, () => Object.assign(document.createElement("a"), {
      href: `/admin/matches/${encodeURIComponent(m.id)}/watch`, target: "_blank", rel: "noopener", textContent: m.id,
      title: "Watch it live",
    })).className = "id";
    cell(row, 1, m.relay ? `${m.scene} (relay ${m.relay})` : m.scene);
    cell(row, 2, `${m.episode + 1} / ${m.episodes}`);
    cell(row, 3, m.frame);
    cell(row, 4, m.seats.map(seatText).join("; "));
    cell(row, 5, m.desyncs);
    control(row, 6, () => button("End", () => {
      act(`/admin/matches/${encodeURIComponent(m.id)}/end`, {message: $("end-message").value});
    }, `End match ${m.id}`));
  }, "No match is running.", 7);

  fill($("waiting"), live.waiting_rooms, room => room.scene, (row, room) => {
    cell(row, 0, room.scene);
    cell(row, 1, room.needed);
    cell(row, 2, room.waiting.map(w => `${w.participant} (${w.waited_s})`).join(", ") || "nobody");
    cell(row, 3, `${room.on_timeout} after ${room.timeout_s} s`);
  }, "No waiting room is open.", 4);

  fill($("scenes"), Object.entries(people.by_scene), ([scene]) => scene, (row, [scene, counts]) => {
    cell(row, 0, scene);
    cell(row, 1, Object.entries(counts).map(([status, n]) => `${status} ${n}`).join(", "));
  }, "Nobody yet.", 2);
  $("outcomes").textContent = `Outcomes: ${Object.entries(by).map(([k, n]) => `${k} ${n}`).join(", ") || "none yet"}`
    + ` · matches ended: ${Object.entries(s.matches_ended).map(([k, n]) => `${k} ${n}`).join(", ") || "none"}`;

  fill($("people"), people.recent, p => p.id, (row, p) => {
    cell(row, 0, p.id, "id");
    cell(row, 1, p.platform_id);
    cell(row, 2, p.status);
    cell(row, 3, p.scene);
    cell(row, 4, p.created_at.slice(0, 19));
    if (p.status === "active") {
      control(row, 5, () => button("End study", () => {
        act(`/admin/participants/${encodeURIComponent(p.id)}/end`, {outcome: $("outcome").value});
      }, `End the study of ${p.id}`));
    } else {
      cell(row, 5, "");
    }
  }, "Nobody yet.", 6);

  list($("errors"), s.errors);
  list($("events"), s.events);
  list($("actions"), s.actions);
  drawCharts(s.charts);
}

$("entries-toggle").addEventListener("click", () => {
  act("/admin/entries", {paused: $("entries-toggle").dataset.paused !== "1"});
});

// The message participants see when a match is ended from here (the server has a default).
const message = Object.assign(document.createElement("input"), {
  id: "end-message", type: "text", maxLength: 500, placeholder: "The researcher ended this game.",
});
const label = Object.assign(document.createElement("label"), {textContent: "Message to its players when you end a match "});
label.append(message);
$("h-matches").after(label);

const socket = io("/admin", {transports: ["websocket", "polling"]});
socket.on("connect", () => {
  state.connected = true;
  $("status").textContent = "live";
});
socket.on("disconnect", () => {
  state.connected = false;
  $("status").textContent = "reconnecting…";
});
socket.on("connect_error", () => {
  $("status").textContent = "not connected (logged out? reload the page)";
});
socket.on("snapshot", (snapshot) => {
  state.snapshots += 1;
  state.last = snapshot;
  draw(snapshot);
  $("status").textContent = `live · ${snapshot.at.slice(11, 19)} UTC`;
});

/** The health panel's admission line: whether new matches start, and the lag that decides it. */
function admissionText(a) {
  if (a == null) return "not reported by this server";
  if (!a.enabled) return `off (lag ${a.lag_ms} ms)`;
  const state = a.open ? "open: new matches start" : "closed: new matches wait";
  const relays = a.relays_open === false ? "; every relay lags" : "";
  return `${state} (lag ${a.lag_ms} ms, limit ${a.max_lag_ms} ms${relays})`;
}

/** The health panel's relays line: each relay's matches, lag, relay p99, packets/s, CPU and whether it takes matches. */
function relaysText(a) {
  if (a == null || !a.relays || !a.relays.length) return "none (matches run in this server)";
  return a.relays.map(r => `${r.id}: ${r.matches} matches, lag ${r.lag_ms} ms, p99 ${r.relay_p99_ms ?? "–"} ms, `
    + `${r.packets_per_s} packets/s, CPU ${r.cpu_percent ?? "–"} %${r.admitting ? "" : " (lags: no new matches)"}`)
    .join("; ");
}
