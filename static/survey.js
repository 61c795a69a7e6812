// The survey scene: a form of Likert, choice and free-text questions, validated like the server
// (scenes/survey.py) before it is sent, and showing the server's reasons if it still refuses.

import {h, setBusy} from "./dom.js";

const codePoints = (text) => [...text].length;   // Python's len() of a str

/** The answer a question's inputs hold, as the server wants it (null = unanswered). */
function readAnswer(form, q) {
  if (q.kind === "likert") {
    const checked = form.querySelector(`input[name="${CSS.escape(q.id)}"]:checked`);
    return checked ? Number(checked.value) : null;
  }
  if (q.kind === "choice") {
    const checked = [...form.querySelectorAll(`input[name="${CSS.escape(q.id)}"]:checked`)].map((i) => i.value);
    if (q.multiple) return checked.length ? checked : null;
    return checked[0] ?? null;
  }
  if (q.kind === "text") {
    const value = form.querySelector(`textarea[name="${CSS.escape(q.id)}"]`).value.trim();
    return value || null;
  }
  return null;
}

/** What is wrong with `value` for `q` (mirrors Question.clean and Survey.validate), or null. */
export function problem(q, value) {
  if (value === null) return q.required ? "An answer is required." : null;
  if (q.kind === "likert" && !(Number.isInteger(value) && value >= 1 && value <= q.scale)) {
    return `Choose a number from 1 to ${q.scale}.`;
  }
  if (q.kind === "choice") {
    const values = q.multiple ? value : [value];
    if (!values.every((v) => q.options.includes(v))) return "Choose one of the options.";
    if (new Set(values).size !== values.length) return "An option is listed twice.";
  }
  if (q.kind === "text" && codePoints(value) > q.max_length) {
    return `Your answer is ${codePoints(value)} characters long; the limit is ${q.max_length}.`;
  }
  return null;
}

/** Split the server's reason ("question 'q1': why; question 'q2': why") into {q1: why, ...}. */
function serverProblems(reason) {
  const found = {};
  for (const match of reason.matchAll(/question '([^']+)': (.*?)(?=; question '|$)/g)) found[match[1]] = match[2];
  return found;
}

function legend(q) {
  return h("legend", {},
    h("span", {class: "question-text", text: q.text}),
    q.required ? [h("span", {class: "required", "aria-hidden": "true"}, " *"),
                  h("span", {class: "visually-hidden"}, " (required)")] : null);
}

function likert(q) {
  const [low, high] = q.labels || ["", ""];
  const points = [];
  for (let k = 1; k <= q.scale; k++) {
    points.push(h("label", {class: "likert-point"},
      h("input", {type: "radio", name: q.id, value: k, "aria-label": `${k} of ${q.scale}`}),
      h("span", {"aria-hidden": "true"}, String(k))));
  }
  return h("div", {class: "likert"},
    h("span", {class: "end-label", text: low}),
    h("div", {class: "likert-points"}, points),
    h("span", {class: "end-label", text: high}));
}

function choice(q) {
  return h("div", {class: "options"}, q.options.map((option) =>
    h("label", {class: "option"},
      h("input", {type: q.multiple ? "checkbox" : "radio", name: q.id, value: option}),
      h("span", {text: option}))));
}

function freeText(q) {
  const counter = h("span", {class: "counter", "aria-live": "polite"}, `0 / ${q.max_length}`);
  const area = h("textarea", {name: q.id, rows: q.max_length > 200 ? 5 : 2, maxlength: q.max_length,
    oninput: () => { counter.textContent = `${codePoints(area.value)} / ${q.max_length}`; }});
  return h("div", {class: "text-answer"}, area, counter);
}

/** Build the survey view. `advance(data)` sends it; returns {el, onError, autopilot, resent}. */
export function surveyView(scene, advance) {
  const questions = scene.questions || [];
  const errors = {};
  const fields = questions.map((q, i) => {
    const errorId = `error-${i}`;
    errors[q.id] = h("p", {class: "field-error", id: errorId, hidden: true});
    const input = q.kind === "likert" ? likert(q) : q.kind === "choice" ? choice(q) : freeText(q);
    return h("fieldset", {class: `question question-${q.kind}`, "data-question": q.id, "aria-describedby": errorId},
      legend(q), q.multiple ? h("p", {class: "hint"}, "Choose all that apply.") : null, input, errors[q.id]);
  });
  const formError = h("p", {class: "form-error", role: "alert", hidden: true});
  const anyRequired = questions.some((q) => q.required);
  const form = h("form", {class: "survey", novalidate: true},
    anyRequired ? h("p", {class: "hint"}, "Questions marked ", h("span", {class: "required"}, "*"), " are required.") : null,
    fields, formError,
    h("div", {class: "actions"}, h("button", {type: "submit", class: "primary"}, "Continue")));

  function show(problems) {
    let first = null;
    questions.forEach((q, i) => {
      const why = problems[q.id];
      errors[q.id].hidden = !why;
      errors[q.id].textContent = why || "";
      fields[i].classList.toggle("invalid", Boolean(why));
      if (why && !first) first = fields[i];
    });
    return first;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const answers = {};
    const problems = {};
    for (const q of questions) {
      const value = readAnswer(form, q);
      const why = problem(q, value);
      if (why) problems[q.id] = why;
      else if (value !== null) answers[q.id] = value;
    }
    const first = show(problems);
    formError.hidden = !first;
    formError.textContent = first ? "Please check the answers marked below." : "";
    if (first) {
      first.scrollIntoView({block: "center", behavior: "smooth"});
      first.querySelector("input, textarea")?.focus({preventScroll: true});
      return;
    }
    setBusy(form, true);
    advance({answers});
  });

  return {
    el: form,
    onError(reason) {
      setBusy(form, false);
      const problems = serverProblems(reason);
      show(problems);
      formError.hidden = false;
      formError.textContent = Object.keys(problems).length ? `Your answers were not accepted: ${reason}` : reason;
      formError.scrollIntoView({block: "center"});
    },
    resent() { setBusy(form, false); },
    autopilot() {
      for (const q of questions) fillRandom(form, q);
      form.requestSubmit();
    },
  };
}

const WORDS = ["fine", "fast", "partner", "ball", "good", "hard", "fun", "played", "round", "team", "easy", "ok"];
const pick = (list) => list[Math.floor(Math.random() * list.length)];

/** Tick or type a random valid answer (autopilot). */
function fillRandom(form, q) {
  const inputs = [...form.querySelectorAll(`[name="${CSS.escape(q.id)}"]`)];
  if (q.kind === "text") {
    const words = Array.from({length: 1 + Math.floor(Math.random() * 8)}, () => pick(WORDS));
    inputs[0].value = words.join(" ").slice(0, q.max_length).trim() || "x";
    inputs[0].dispatchEvent(new Event("input"));
  } else if (q.kind === "choice" && q.multiple) {
    inputs.forEach((input) => { input.checked = Math.random() < 0.5; });
    if (!inputs.some((input) => input.checked)) pick(inputs).checked = true;
  } else if (inputs.length) {
    pick(inputs).checked = true;
  }
}
