"""Times onnxruntime (native CPU provider through its Python API) on the exported models, with
the same digits and the same protocol as our criterion bench:

* batch 1: one call per test digit, cycling through the 2,000; 0.5 s warm-up, then every call of a
  3 s window timed on its own → median and p99 per call, and criterion's statistic (the median of
  100 sample means) over the same calls.
* batch 1024: the first 1,024 test digits in one call; 2 warm-up calls, then calls for 3 s (at
  least 10) → median time → images/s.

One thread (intra_op_num_threads=1, inter_op_num_threads=1), sequential execution, all graph
optimizations on (ORT_ENABLE_ALL). Two ways of calling at batch 1 are timed: plain `run` (what
most code does) and `run_with_iobinding` with preallocated input/output OrtValues (the cheapest
call the Python API has); the report shows the faster one, so Python's per-call overhead is
counted against onnxruntime as little as this API allows.

    python3 bench/native/ort_bench.py ONNX_DIR OUT.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mnist_digits import test_digits  # noqa: E402

WARM_S, WINDOW_S, MAX_CALLS = 0.5, 3.0, 200_000


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def per_call(call, n: int) -> dict:
    clock = time.perf_counter_ns
    t_end = clock() + int(WARM_S * 1e9)
    i = 0
    while clock() < t_end:
        call(i % n)
        i += 1
    times = []
    t_end = clock() + int(WINDOW_S * 1e9)
    while not times or (len(times) < MAX_CALLS and clock() < t_end):
        t = clock()
        call(i % n)
        times.append(clock() - t)
        i += 1
    raw = np.asarray(times)
    a = np.sort(raw)
    pick = lambda q: int(a[round((len(a) - 1) * q)])  # same rank rule as the Rust side
    # Criterion's "median" is the median of ~100 sample means, each a mean over many calls; the
    # same statistic over 100 consecutive chunks of these calls makes the numbers comparable.
    chunk_means = [float(c.mean()) for c in np.array_split(raw, 100) if len(c)]
    return {"median_ns": pick(0.5), "p99_ns": pick(0.99), "median_of_chunk_means_ns": float(np.median(chunk_means)),
            "calls": len(a)}


def batch1(sess: ort.InferenceSession, images: np.ndarray) -> dict:
    singles = [np.ascontiguousarray(images[i : i + 1]) for i in range(len(images))]
    plain = per_call(lambda i: sess.run(["output"], {"input": singles[i]}), len(singles))

    xs = [ort.OrtValue.ortvalue_from_numpy(s) for s in singles]
    y = ort.OrtValue.ortvalue_from_numpy(np.zeros((1, 10), dtype=np.float32))
    binding = sess.io_binding()
    binding.bind_ortvalue_output("output", y)

    def bound(i: int) -> None:
        binding.bind_ortvalue_input("input", xs[i])
        sess.run_with_iobinding(binding)

    iob = per_call(bound, len(xs))
    best = min((plain, "run"), (iob, "run_with_iobinding"), key=lambda r: r[0]["median_ns"])
    return {**best[0], "api": best[1], "run": plain, "run_with_iobinding": iob}


def identity_floor_model():
    """One Identity on a [1, 10] tensor: a graph that does nothing, to time the call around it."""
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "floor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8  # opset 17's IR; onnx's newer default is refused by older runtimes (onnxruntime-node)
    return m


def call_floor(api: str) -> dict:
    """The per-call cost of a graph that does nothing (one Identity on a [1, 10] tensor) through the
    same API: Python + binding + onnxruntime's per-run bookkeeping. It bounds from below what any
    batch-1 number in this table can show for onnxruntime from Python."""
    m = identity_floor_model()
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    x = np.zeros((1, 10), dtype=np.float32)
    if api == "run":
        return per_call(lambda i: sess.run(["y"], {"x": x}), 1)
    xv = ort.OrtValue.ortvalue_from_numpy(x)
    binding = sess.io_binding()
    binding.bind_ortvalue_output("y", ort.OrtValue.ortvalue_from_numpy(np.zeros((1, 10), dtype=np.float32)))

    def bound(_: int) -> None:
        binding.bind_ortvalue_input("x", xv)
        sess.run_with_iobinding(binding)

    return per_call(bound, 1)


def batch1024(sess: ort.InferenceSession, images: np.ndarray) -> dict:
    x = np.ascontiguousarray(images[:1024])
    for _ in range(2):
        sess.run(["output"], {"input": x})
    times = []
    cpu0, wall0 = time.process_time_ns(), time.perf_counter_ns()
    t_end = wall0 + int(WINDOW_S * 1e9)
    while len(times) < 10 or time.perf_counter_ns() < t_end:
        t = time.perf_counter_ns()
        sess.run(["output"], {"input": x})
        times.append(time.perf_counter_ns() - t)
    # CPU time / wall time of the window: ≈ 1 proves onnxruntime really ran on one thread.
    cpu_per_wall = (time.process_time_ns() - cpu0) / (time.perf_counter_ns() - wall0)
    med = float(np.median(times))
    return {"median_ns": med, "images_per_s": 1024 / (med * 1e-9), "calls": len(times), "cpu_per_wall": cpu_per_wall}


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: ort_bench.py ONNX_DIR OUT.json")
    onnx_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    images, _ = test_digits()
    # The same 2,000 digits as raw little-endian f32 for the C API bench (bench/native/ort-c).
    images.astype("<f4").tofile(onnx_dir / "test-digits.f32")
    result = {"onnxruntime": ort.__version__, "providers": ["CPUExecutionProvider"], "models": {}}
    for name in ["mlp", "cnn"]:
        sess = session(onnx_dir / f"mnist-{name}.onnx")
        r = {"batch1": batch1(sess, images), "batch1024": batch1024(sess, images)}
        result["models"][name] = r
        b1, bb = r["batch1"], r["batch1024"]
        print(f"onnxruntime {name}: batch 1 median {b1['median_ns'] / 1e3:.1f} µs, p99 {b1['p99_ns'] / 1e3:.1f} µs "
              f"({b1['api']}, plain run median {b1['run']['median_ns'] / 1e3:.1f} µs); "
              f"batch 1024 {bb['images_per_s']:,.0f} img/s (CPU/wall {bb['cpu_per_wall']:.2f})", file=sys.stderr)
    # The same do-nothing graph for ort_node_bench.mjs's floor.
    (onnx_dir / "identity-floor.onnx").write_bytes(identity_floor_model().SerializeToString())
    result["call_floor"] = {api: call_floor(api) for api in ("run", "run_with_iobinding")}
    print("onnxruntime call floor (Identity graph): " + ", ".join(
        f"{api} median {r['median_ns'] / 1e3:.1f} µs" for api, r in result["call_floor"].items()), file=sys.stderr)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
