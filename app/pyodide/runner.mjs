// Runs Python snippets in Pyodide under Node, for app/pyodide/node.py.
//
// Usage: node app/pyodide/runner.mjs PYODIDE_DIR
//
// PYODIDE_DIR is the local node_modules/pyodide folder; it is the indexURL, so
// nothing is fetched from a CDN. Protocol, one JSON object per line:
//   stdout, first line:  {"ready": true, "version": "0.27.7", "boot_ms": 2900.1}
//                        (or {"ready": false, "error": "..."} and exit code 1)
//   stdin, each request: {"id": 1, "files": {"rel/path.py": "source"}, "code": "...", "result": "result"}
//   stdout, each answer: {"id": 1, "ok": true, "value": <JSON>, "stdout": "...", "ms": 1.2}
//                     or {"id": 1, "ok": false, "error": "ValueError: ...", "traceback": "...", "stdout": "..."}
// Requests are handled one at a time, in order. The process exits when stdin closes.
//
// The request line is handed to Python as a str and Python writes the whole answer
// line (json.dumps), so no PyProxy is created and values such as ints above 2**53 or
// exact float bits are never squeezed through JavaScript numbers.

import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import path from "node:path";

// Python side: files are written under ROOT (on sys.path); each snippet runs in a
// fresh namespace with print() captured; modules stay imported between snippets.
const HOST = String.raw`
import contextlib, io, json, os, sys, time, traceback

ROOT = "/home/pyodide/coplay"
os.makedirs(ROOT, exist_ok=True)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def _coplay_handle(line):
    request = json.loads(line)
    answer = {"id": request.get("id")}
    out = io.StringIO()
    start = time.perf_counter()
    try:
        for rel, text in (request.get("files") or {}).items():
            target = os.path.normpath(os.path.join(ROOT, rel))
            if not target.startswith(ROOT + "/"):
                raise ValueError(f"file path {rel!r} leaves {ROOT}")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8") as handle:
                handle.write(text)
        if request.get("files"):
            import importlib
            importlib.invalidate_caches()
        namespace = {"__name__": "__coplay__"}
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            exec(compile(request.get("code") or "", "<coplay snippet>", "exec"), namespace)
        name = request.get("result")
        value = namespace.get(name) if name else None
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"the snippet's {name!r} is not JSON-able: {exc}") from None
        answer.update(ok=True, stdout=out.getvalue(), ms=(time.perf_counter() - start) * 1000)
        return json.dumps(answer)[:-1] + ', "value": ' + text + "}"
    except BaseException as exc:
        answer.update(
            ok=False, error=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(exc.with_traceback(exc.__traceback__.tb_next or exc.__traceback__))),
            stdout=out.getvalue(), ms=(time.perf_counter() - start) * 1000,
        )
        return json.dumps(answer)
`;

// Keep stdout for protocol lines only: anything else Pyodide or Python prints goes to stderr.
const send = (text) => process.stdout.write(text + "\n");
const toStderr = (msg) => process.stderr.write(msg + "\n");
console.log = console.info = console.warn = console.error;

const dir = process.argv[2];
if (!dir) {
  send(JSON.stringify({ ready: false, error: "usage: node runner.mjs PYODIDE_DIR" }));
  process.exit(1);
}
const indexURL = path.resolve(dir) + path.sep;

let pyodide;
try {
  const start = performance.now();
  const { loadPyodide } = await import(pathToFileURL(indexURL + "pyodide.mjs").href);
  pyodide = await loadPyodide({ indexURL, stdout: toStderr, stderr: toStderr });
  pyodide.runPython(HOST);
  send(JSON.stringify({ ready: true, version: pyodide.version, boot_ms: performance.now() - start }));
} catch (err) {
  send(JSON.stringify({ ready: false, error: String(err && err.stack ? err.stack : err) }));
  process.exit(1);
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  try {
    pyodide.globals.set("_coplay_request", line);
    send(pyodide.runPython("_coplay_handle(_coplay_request)"));
  } catch (err) {
    // Only a fatal Pyodide error gets here; Python exceptions are answered above.
    send(JSON.stringify({ id: null, ok: false, error: `Pyodide failed: ${err}`, traceback: String(err && err.stack), stdout: "" }));
    process.exit(1);
  }
}
