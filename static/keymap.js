// The match's key bindings (Match(keys=...)): single keys and combinations held together.
//
// A binding's name is a KeyboardEvent.key name ("ArrowUp", "w") or a combination of them joined
// by "+" ("ArrowUp+ArrowLeft", as scenes/match.py sends it; "+" alone is the plus key). Of the
// bindings whose keys are all held, the one with the most keys wins; among equals, the one whose
// last key was pressed most recently (so rolling from one key to the next switches at once), then
// the one declared first.

const COMBO = "+";

export class KeyMap {
  /** keys: {binding name: action}, in declaration order. */
  constructor(keys) {
    this.bindings = Object.entries(keys || {}).map(([name, action]) => ({
      keys: name.length > 1 && name.includes(COMBO) ? name.split(COMBO) : [name], action}));
    this.names = new Set(this.bindings.flatMap((binding) => binding.keys));
  }

  /** The name under which `event`'s key takes part in some binding, or null. */
  bound(event) {
    for (const name of [event.key, event.key?.toLowerCase(), event.key?.toUpperCase(), event.code]) {
      if (name !== undefined && this.names.has(name)) return name;
    }
    return null;
  }

  /** Every single key name of the bindings (what the autopilot presses). */
  keyNames() {
    return [...this.names];
  }

  /** The action of the keys held (bound names, the most recently pressed last), or undefined. */
  action(held) {
    let best = null;
    let bestLast = -1;
    for (const binding of this.bindings) {
      const at = binding.keys.map((key) => held.indexOf(key));
      if (at.includes(-1)) continue;
      const last = Math.max(...at);
      if (best === null || binding.keys.length > best.keys.length ||
          (binding.keys.length === best.keys.length && last > bestLast)) {
        best = binding;
        bestLast = last;
      }
    }
    return best === null ? undefined : best.action;
  }
}
