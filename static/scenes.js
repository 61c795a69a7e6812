// Views of the non-game scenes: consent, page, end (and anything unknown), plus the dispatcher.
// A view is {el, onError?(reason), resent?(), autopilot?(), leave?()}. Researchers' html is trusted
// (innerHTML); everything else is set as text.

import {h, setBusy} from "./dom.js";
import {MatchView} from "./match.js";
import {surveyView} from "./survey.js";
import {coplay, options} from "./state.js";

const REDIRECT_AFTER_S = 5;

function title(scene, fallback) {
  const text = scene.title || fallback;
  return text ? h("h1", {tabindex: "-1", text}) : null;
}

function body(scene) {
  return scene.html ? h("div", {class: "scene-body", html: scene.html}) : null;
}

/** A page with buttons; each button sends its data with `advance`. */
function buttonsView(scene, fallbackTitle, buttons, advance) {
  const error = h("p", {class: "form-error", role: "alert", hidden: true});
  const row = h("div", {class: "actions"}, buttons.map(({label, data, primary}) =>
    h("button", {type: "button", class: primary ? "primary" : "secondary", "data-action": label,
      onclick: () => { setBusy(row, true); advance(data); }}, label)));
  return {
    el: h("section", {class: `scene-${scene.kind}`}, title(scene, fallbackTitle), body(scene), error, row),
    onError(reason) {
      setBusy(row, false);
      error.hidden = false;
      error.textContent = reason;
    },
    resent() { setBusy(row, false); },
    autopilot() { row.querySelector("button.primary")?.click(); },
  };
}

function surveyScene(scene, advance) {
  const view = surveyView(scene, advance);
  return {...view, el: h("section", {class: "scene-survey"}, title(scene, "Questions"), view.el)};
}

function endView(scene) {
  coplay.end = {outcome: scene.outcome ?? null, completion_code: scene.completion_code ?? null,
                redirect: scene.redirect ?? null};
  const parts = [title(scene, "Thank you"), body(scene)];
  if (scene.completion_code) {
    const status = h("span", {class: "copy-status", role: "status"});
    const code = h("code", {class: "completion-code", id: "completion-code", text: scene.completion_code});
    const copy = h("button", {type: "button", class: "secondary", onclick: async () => {
      try {
        await navigator.clipboard.writeText(scene.completion_code);
        status.textContent = "Copied.";
      } catch {
        getSelection().selectAllChildren(code);   // let the participant copy it by hand
        status.textContent = "Press Ctrl+C (or ⌘C) to copy the selected code.";
      }
    }}, "Copy code");
    parts.push(h("div", {class: "code-box"},
      h("p", {class: "code-label"}, "Your completion code:"), code, h("div", {class: "code-actions"}, copy, status)));
  }
  let timer = null;
  if (scene.redirect) {
    const go = () => { location.href = scene.redirect; };
    const note = h("p", {class: "redirect-note", role: "status"});
    parts.push(h("div", {class: "actions"}, h("a", {class: "button primary", href: scene.redirect}, "Continue")), note);
    if (options.autopilot) {
      note.textContent = "(autopilot: not redirecting automatically)";
    } else {
      let left = REDIRECT_AFTER_S;
      const update = () => { note.textContent = `You will be taken back automatically in ${left} s.`; };
      update();
      timer = setInterval(() => {
        left -= 1;
        if (left <= 0) { clearInterval(timer); go(); } else update();
      }, 1000);
    }
  }
  return {el: h("section", {class: "scene-end"}, parts), leave() { clearInterval(timer); }};
}

/**
 * The view of `scene` (scene index `index`). ctx: {advance(data), and for matches: socket, worker,
 * bundle, stage, fatal}.
 */
export function sceneView(index, scene, ctx) {
  switch (scene.kind) {
    case "consent":
      return buttonsView(scene, "Consent", [
        {label: "I agree", data: {accept: true}, primary: true},
        {label: "I do not agree", data: {accept: false}},
      ], ctx.advance);
    case "page":
      return buttonsView(scene, "", [{label: "Continue", data: {}, primary: true}], ctx.advance);
    case "survey":
      return surveyScene(scene, ctx.advance);
    case "match":
      return new MatchView({...ctx, index, scene});
    case "end":
      return endView(scene);
    default:   // a scene kind this page does not know: show it and let the participant go on
      return buttonsView(scene, "", [{label: "Continue", data: {}, primary: true}], ctx.advance);
  }
}

