"""The cost of one act() of an ONNX policy (onnxruntime, CPython) beside the Python PongTracker.

    python benchmarks/onnx_policy.py [--frames N] [--repeats R] [--web [--ort-dist DIR]]

Plays N frames of Pong (seeded; both paddles driven by the tracker so the ball moves) to
collect the right player's observations, then times act() over them R times for:

- PongTracker (game/games/policies.py), the Python policy the demo's bots use;
- the tiny Gemm+ArgMax tracker of tests/test_onnx_policy.py as an OnnxPolicy with
  `observation_keys` (the declared mapping), and with a numpy `preprocess` function;
- the same model in a session with onnxruntime's default options (a thread pool as wide as the
  machine, spinning after each run) instead of coplay's one thread without spinning;
- each wrapped in PacedPolicy (reaction delay 6, action repeat 2), as a server bot plays it.

Prints the best of R runs in µs per act(), wall clock and process CPU time (all threads: the
spinning of a thread pool shows there), and the share of one core an AI seat's policy costs at
60 fps. Timings on a shared machine are noisy: re-run on a quiet one and read them as relative.

`--web` also runs the models in headless Chromium with onnxruntime-web (the npm package's wasm build, from
node_modules/onnxruntime-web/dist or `--ort-dist`, served by a throwaway loopback HTTP server) on the same
observations' tensors, and prints how often its action (the arg max) differs from CPython onnxruntime's, and
the largest difference of any output. Besides the tracker it uses a seeded random MLP (tanh, 32 units) on
the whole flattened observation, whose float sums leave room for last-bit differences.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from game.adapters.onnx_policy import OnnxPolicy, flatten_observation  # noqa: E402
from game.games.policies import PongTracker  # noqa: E402
from game.games.pong import Pong  # noqa: E402
from game.paced_policy import PacedPolicy  # noqa: E402
from game.spaces import Discrete  # noqa: E402
from tests.test_onnx_policy import TRACKER_KEYS, tracker_model  # noqa: E402


def observations(frames: int) -> list[dict[str, Any]]:
    env, left, right = Pong({"max_score": 1000, "max_frames": frames + 1}), PongTracker(), PongTracker()
    left.setup("left", Discrete(3), 1)
    right.setup("right", Discrete(3), 2)
    obs = env.reset(7)
    seen = []
    for _ in range(frames):
        seen.append(obs["right"])
        obs = env.step({"left": left.act(obs["left"]), "right": right.act(obs["right"])})["observations"]
    return seen


def per_act_us(make: Any, seen: list[dict[str, Any]], repeats: int, paced: bool) -> tuple[float, float]:
    """The best (wall, CPU) µs per act() over `repeats` runs."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        policy = make()
        wrapped = PacedPolicy(policy, reaction_delay_frames=6, action_repeat=2, default_action=0)
        started, started_cpu = time.perf_counter(), time.process_time()
        if paced:
            for frame, obs in enumerate(seen):
                wrapped.act(obs, frame)
        else:
            for obs in seen:
                policy.act(obs)
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - started_cpu)
    return wall / len(seen) * 1e6, cpu / len(seen) * 1e6


def default_session(factory: OnnxPolicy, path: str) -> OnnxPolicy:
    """`factory` with a session of onnxruntime's default options (what coplay's loader does not use)."""
    import onnxruntime

    copy = OnnxPolicy(factory.path, observation_keys=factory.observation_keys)
    copy.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return copy


def mlp_model(path: Path, inputs: int, hidden: int = 32, seed: int = 5) -> Path:
    """A seeded random MLP (Gemm, Tanh, Gemm) from `inputs` numbers to 3 logits, made with onnx's helper API."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    tensors = {"W1": rng.normal(0, 1 / np.sqrt(inputs), (inputs, hidden)), "B1": rng.normal(0, 0.1, hidden),
               "W2": rng.normal(0, 1 / np.sqrt(hidden), (hidden, 3)), "B2": rng.normal(0, 0.1, 3)}
    initializer = [helper.make_tensor(name, TensorProto.FLOAT, list(value.shape), value.astype(np.float32).ravel())
                   for name, value in tensors.items()]
    nodes = [helper.make_node("Gemm", ["obs", "W1", "B1"], ["h"]), helper.make_node("Tanh", ["h"], ["t"]),
             helper.make_node("Gemm", ["t", "W2", "B2"], ["logits"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [1, inputs])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
                              initializer=initializer)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


WEB_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
# Runs in a page of the throwaway server: onnxruntime-web's wasm build, one thread, every tensor in turn.
WEB_RUN_JS = """
async ({model, tensors, width}) => {
  const ort = await import("/ort/ort.wasm.min.mjs");
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = "/ort/";
  const session = await ort.InferenceSession.create(model);
  const outputs = [];
  for (const tensor of tensors) {
    const result = await session.run({[session.inputNames[0]]: new ort.Tensor("float32", Float32Array.from(tensor), [1, width])});
    outputs.push(Array.from(result[session.outputNames[0]].data, Number));
  }
  return {outputs, version: ort.env.versions.web};
}
"""


def web_outputs(ort_dist: Path, models: dict[str, Path], tensors: dict[str, list[list[float]]]) -> dict[str, Any]:
    """Each model's outputs on its tensors from onnxruntime-web in headless Chromium."""
    import functools
    import http.server
    import shutil
    import threading

    from app.loadtest.chromium import CHROMIUM, CHROMIUM_FLAGS
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as site:
        (Path(site) / "ort").mkdir()
        for file in WEB_FILES:
            shutil.copy(ort_dist / file, Path(site) / "ort" / file)
        for name, path in models.items():
            shutil.copy(path, Path(site) / f"{name}.onnx")
        (Path(site) / "index.html").write_text("<!doctype html><title>ort</title>")
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        handler = functools.partial(Quiet, directory=site)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
                found = {name: page.evaluate(WEB_RUN_JS, {"model": f"/{name}.onnx", "tensors": tensors[name],
                                                          "width": len(tensors[name][0])})
                         for name in models}
                browser.close()
        finally:
            server.shutdown()
    return found


def web_disagreement(seen: list[dict[str, Any]], folder: Path, ort_dist: Path) -> None:
    """Print how often onnxruntime-web and CPython onnxruntime choose different actions on `seen`."""
    import onnxruntime

    if not all((ort_dist / file).is_file() for file in WEB_FILES):
        raise SystemExit(f"no onnxruntime-web in {ort_dist}: run scripts/setup (npm ci) or pass --ort-dist")
    numbers = [{k: v for k, v in o.items() if k != "side"} for o in seen]   # every number of the observation
    width = len(flatten_observation(numbers[0]))
    models = {"tracker": tracker_model(folder / "tracker.onnx", argmax=False), "mlp": mlp_model(folder / "mlp.onnx", width)}
    tensors = {"tracker": [[float(o["ball"][1]), float(o["paddle"])] for o in seen],
               "mlp": [flatten_observation(o) for o in numbers]}
    web = web_outputs(ort_dist, models, tensors)
    print(f"\nonnxruntime-web {web['tracker']['version']} (wasm, 1 thread, Chromium) vs onnxruntime "
          f"{onnxruntime.__version__} (CPython) on {len(seen)} Pong observations")
    print(f"{'model':10} {'different actions':>18} {'rate':>8} {'max |output diff|':>18}")
    for name, path in models.items():
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        here = np.array([session.run(None, {"obs": np.asarray([t], dtype=np.float32)})[0][0] for t in tensors[name]])
        there = np.array(web[name]["outputs"], dtype=np.float32)
        differ = int(np.sum(here.argmax(axis=1) != there.argmax(axis=1)))
        print(f"{name:10} {differ:>18} {differ / len(seen):8.4%} {float(np.max(np.abs(here - there))):18.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--web", action="store_true", help="also compare with onnxruntime-web in Chromium")
    parser.add_argument("--ort-dist", type=Path, default=ROOT / "node_modules" / "onnxruntime-web" / "dist")
    args = parser.parse_args()
    seen = observations(args.frames)
    with tempfile.TemporaryDirectory() as folder:
        model = str(tracker_model(Path(folder) / "tracker.onnx"))
        keyed = OnnxPolicy(model, observation_keys=TRACKER_KEYS).load()
        numpy_pre = OnnxPolicy(model, preprocess=lambda o: np.array([[o["ball"][1], o["paddle"]]],
                                                                   dtype=np.float32)).load()

        def tracker() -> PongTracker:
            policy = PongTracker()
            policy.setup("right", Discrete(3), 3)
            return policy

        def onnx_player(factory: OnnxPolicy) -> Any:
            player = factory()
            player.setup("right", Discrete(3), 3)
            return player

        default = default_session(keyed, model)
        rows = [("PongTracker (Python)", tracker),
                ("OnnxPolicy, observation_keys", lambda: onnx_player(keyed)),
                ("OnnxPolicy, numpy preprocess", lambda: onnx_player(numpy_pre)),
                ("  same, onnxruntime default threads", lambda: onnx_player(default))]
        print(f"act() cost over {len(seen)} Pong observations, best of {args.repeats} runs")
        print("paced: in PacedPolicy with reaction delay 6 and action repeat 2 (the model runs every 2nd frame)")
        print(f"{'policy':36} {'wall µs':>8} {'CPU µs':>8} {'paced wall':>11} {'paced CPU':>10} "
              f"{'core share at 60 fps, paced':>28}")
        for name, make in rows:
            wall, cpu = per_act_us(make, seen, args.repeats, paced=False)
            paced_wall, paced_cpu = per_act_us(make, seen, args.repeats, paced=True)
            print(f"{name:36} {wall:8.1f} {cpu:8.1f} {paced_wall:11.1f} {paced_cpu:10.1f} "
                  f"{paced_cpu * 60 / 1e4:27.3f}%")
        if args.web:
            web_disagreement(seen, Path(folder), args.ort_dist)


if __name__ == "__main__":
    main()
