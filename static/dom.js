// A tiny element builder: h("p", {class: "x"}, "text", child). Strings become text nodes (never HTML),
// except the `html` property, which is for the researcher's trusted page HTML only.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "html") el.innerHTML = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Disable or enable every button and form control inside `root`. */
export function setBusy(root, busy) {
  for (const control of root.querySelectorAll("button, input, textarea, select")) {
    if (control.dataset.keepEnabled) continue;
    control.disabled = busy;
  }
  root.toggleAttribute("aria-busy", busy);
}

/** Minutes:seconds for a countdown. */
export function clock(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
