// Runs Python snippets in Pyodide under Node, for app/pyodide/node.py.
//
// Usage: node app/pyodide/runner.mjs PYODIDE_DIR
//
// PYODIDE_DIR is the local node_modules/pyodide folder; it is the indexURL, so
// nothing is fetched from a CDN. Protocol, one JSON object per line:
//   stdout, first line:  {"ready": true, "version": "0.27.7", "boot_ms": 2900.1}
//                        (or {"ready": false, "error": "..."} and exit code 1)
//   stdin, each request: {"id": 1, "files": {"rel/path.py": "source"}, "code": "...", "result": "result"}
//                     or {"id": 1, "files": {...}, "call": "package.module:function", "args": [...]}
//                     either may add "packages": [names] (pyodide.loadPackage from PYODIDE_DIR) and
//                     "wheels": [local .whl paths] (unpacked into WHEELS, on sys.path), installed first
//   stdout, each answer: {"id": 1, "ok": true, "value": <JSON>, "stdout": "...", "ms": 1.2}
//                     or {"id": 1, "ok": false, "error": "ValueError: ...", "traceback": "...", "stdout": "..."}
// Requests are handled one at a time, in order. The process exits when stdin closes.
//
// The request line is handed to Python (host.py) as a str and Python writes the whole
// answer line (json.dumps), so values such as ints above 2**53 or exact float bits are
// never squeezed through JavaScript numbers.

import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import path from "node:path";

// The Python side, host.py beside this file, answers each request line with one answer line.
const HOST = readFileSync(new URL("./host.py", import.meta.url), "utf-8");

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
const WHEELS = "/home/pyodide/coplay-packages";   // as static/worker_core.js

// A request's packages and wheels, installed as the browser worker's LOAD does.
async function install({ packages = [], wheels = [] }) {
  if (packages.length) await pyodide.loadPackage(packages, { messageCallback: toStderr, checkIntegrity: true });
  for (const file of wheels) {
    pyodide.FS.mkdirTree(WHEELS);
    pyodide.unpackArchive(readFileSync(file), "wheel", { extractDir: WHEELS });
  }
}

let pyodide;
let handle;
try {
  const start = performance.now();
  const { loadPyodide } = await import(pathToFileURL(indexURL + "pyodide.mjs").href);
  pyodide = await loadPyodide({ indexURL, stdout: toStderr, stderr: toStderr, env: { PYTHONPATH: WHEELS } });
  pyodide.runPython(HOST);
  pyodide.globals.get("setup")();
  handle = pyodide.globals.get("handle");
  send(JSON.stringify({ ready: true, version: pyodide.version, boot_ms: performance.now() - start }));
} catch (err) {
  send(JSON.stringify({ ready: false, error: String(err && err.stack ? err.stack : err) }));
  process.exit(1);
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let request;
  try {
    request = JSON.parse(line);
  } catch (err) {
    send(JSON.stringify({ id: null, ok: false, error: `not a JSON request: ${err}`, traceback: "", stdout: "" }));
    continue;
  }
  try {
    await install(request);
  } catch (err) {
    send(JSON.stringify({ id: request.id, ok: false, error: `installing packages failed: ${err}`, traceback: "",
                          stdout: "" }));
    continue;
  }
  try {
    send(handle(line));
  } catch (err) {
    // Only a fatal Pyodide error gets here; Python exceptions are answered above.
    send(JSON.stringify({ id: null, ok: false, error: `Pyodide failed: ${err}`, traceback: String(err && err.stack), stdout: "" }));
    process.exit(1);
  }
}
