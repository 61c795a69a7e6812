// The match worker (a module Worker): static/worker_core.js holds the logic, this only
// wires it to postMessage. See docs/worker.md.
import { createCore } from "./worker_core.js";

const core = createCore(m => self.postMessage(m), { close: () => self.close() });
self.onmessage = e => core.handle(e.data);
