// The page's side of the worker protocol (docs/worker.md): start the Web Worker (or, where a
// Worker cannot be created, the same core in this thread), send requests with ids and timeouts,
// and hand every other message (PROGRESS, READY, OUT, STATE, DONE, ERROR without id) to `onMessage`.

export const TIMEOUTS_MS = {INIT: 120_000, default: 10_000};

export class WorkerError extends Error {
  constructor(message, traceback = "") {
    super(message);
    this.name = "WorkerError";
    this.traceback = traceback;
  }
}

export class WorkerClient {
  /** onMessage(msg) gets every message that is not the answer to a request. */
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.nextId = 1;
    this.pending = new Map();   // id -> {resolve, reject, timer, type}
    this.mode = null;           // "worker" or "inline"
    this.send = null;           // (message) => void, once started
    this.queue = [];            // messages posted before the inline core is imported
  }

  /** Start the worker at `url`; fall back to `coreUrl`'s createCore in this thread if Worker throws. */
  start(url = "/static/worker.js", coreUrl = "/static/worker_core.js") {
    try {
      const worker = new Worker(url, {type: "module"});
      worker.onmessage = (event) => this.receive(event.data);
      worker.onerror = (event) => {
        event.preventDefault?.();
        const where = event.filename ? ` (${event.filename}:${event.lineno})` : "";
        this.fail(`the game worker failed: ${event.message || "it could not be started"}${where}`);
      };
      worker.onmessageerror = () => this.fail("a worker message could not be read");
      this.worker = worker;
      this.mode = "worker";
      this.send = (message) => worker.postMessage(message);
    } catch (error) {
      console.warn("coplay: cannot start a Web Worker, running the game in the page instead:", error);
      this.mode = "inline";
      this.send = (message) => this.queue.push(message);
      import(coreUrl).then(({createCore}) => {
        // The core posts with post(message); we deliver asynchronously, as postMessage would.
        const core = createCore((message) => queueMicrotask(() => this.receive(message)));
        const handle = typeof core === "function" ? core : (message) => core.handle(message);
        this.send = (message) => queueMicrotask(() => handle(message));
        for (const message of this.queue.splice(0)) this.send(message);
      }).catch((importError) => this.fail(`the game code could not be loaded: ${importError.message || importError}`));
    }
    return this.mode;
  }

  /** A request: resolves with RESULT's value, rejects with a WorkerError (ERROR or timeout). */
  request(type, fields = {}, timeoutMs = TIMEOUTS_MS[type] || TIMEOUTS_MS.default) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new WorkerError(`the game worker did not answer ${type} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.pending.set(id, {resolve, reject, timer, type});
      this.post({type, id, ...fields});
    });
  }

  /** A message without an answer (INPUT, PACKET). */
  post(message) {
    if (this.send) this.send(message);
  }

  receive(message) {
    if (!message || typeof message !== "object") return;
    const waiting = message.id !== undefined && message.id !== null ? this.pending.get(message.id) : undefined;
    if (waiting && (message.type === "RESULT" || message.type === "ERROR")) {
      this.pending.delete(message.id);
      clearTimeout(waiting.timer);
      if (message.type === "RESULT") waiting.resolve(message.value);
      else waiting.reject(new WorkerError(message.message || `${waiting.type} failed`, message.traceback || ""));
      return;
    }
    this.onMessage(message);
  }

  /** The worker itself is broken: fail every request and report an ERROR without id. */
  fail(text) {
    for (const [id, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      waiting.reject(new WorkerError(text));
      this.pending.delete(id);
    }
    this.onMessage({type: "ERROR", id: null, message: text, traceback: ""});
  }
}
