"""Exports mdeploy's `.mdm` models to ONNX (opset 17) with their exact weights, and checks with
onnxruntime that the export computes what our native Plan computes.

    python3 bench/native/export_onnx.py --out-dir OUT [--check] [models/mnist-mlp.mdm ...]

The graph is the layer list, op for op: Dense → MatMul + Add (our weight is already `[in, out]`,
ONNX MatMul's layout), Conv2d → Conv (OIHW in both), MaxPool2d → MaxPool, ReLU → Relu,
Flatten → Flatten(axis=1) (NCHW → C·H·W order in both), Softmax → Softmax(axis=-1). Dropout is
the identity at inference and is left out. The batch dimension is symbolic (`N`).

`--check` runs the 2,000 fixed-split test digits through onnxruntime and through our native Plan
(`cargo run --release -p mdeploy-core --example dump_test_outputs`, the same Plan and scoring code
as `mdeploy eval`), then requires: every probability within 1e-5, the same argmax on all 2,000
digits (a tie closer than float noise is reported, not hidden), and the accuracy equal to both the
native one and the one stored in the file's provenance. Comparing probabilities is stronger than
comparing `mdeploy eval --json` accuracies: two exports can agree on accuracy while disagreeing on
every number.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mdm  # noqa: E402
from mnist_digits import ROOT, test_digits  # noqa: E402

OPSET = 17
DEFAULT_MODELS = [ROOT / "models/mnist-mlp.mdm", ROOT / "models/mnist-cnn.mdm"]


def to_onnx(model: mdm.Model) -> onnx.ModelProto:
    nodes, inits = [], []
    cur = "x"
    n = 0

    def fresh(tag: str) -> str:
        nonlocal n
        n += 1
        return f"{tag}{n}"

    for i, l in enumerate(model.layers):
        if l.kind == "Dropout":
            continue  # identity at inference
        out = fresh(l.kind.lower())
        if l.kind == "Dense":
            w, b = f"dense{i}.weight", f"dense{i}.bias"
            inits += [numpy_helper.from_array(l.weight, w), numpy_helper.from_array(l.bias, b)]
            mm = fresh("matmul")
            nodes.append(helper.make_node("MatMul", [cur, w], [mm]))
            nodes.append(helper.make_node("Add", [mm, b], [out]))
        elif l.kind == "Conv2d":
            w, b = f"conv{i}.weight", f"conv{i}.bias"
            inits += [numpy_helper.from_array(l.weight, w), numpy_helper.from_array(l.bias, b)]
            ph, pw = l.padding
            nodes.append(helper.make_node(
                "Conv", [cur, w, b], [out], kernel_shape=list(l.weight.shape[2:]),
                strides=list(l.stride), pads=[ph, pw, ph, pw],
            ))
        elif l.kind == "MaxPool2d":
            nodes.append(helper.make_node("MaxPool", [cur], [out], kernel_shape=list(l.kernel), strides=list(l.stride)))
        elif l.kind == "Relu":
            nodes.append(helper.make_node("Relu", [cur], [out]))
        elif l.kind == "Flatten":
            nodes.append(helper.make_node("Flatten", [cur], [out], axis=1))
        elif l.kind == "Softmax":
            nodes.append(helper.make_node("Softmax", [cur], [out], axis=-1))
        else:
            raise mdm.MdmError(f"layer {i}: {l.kind} has no ONNX mapping here")
        cur = out
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *model.input_shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", len(model.labels)])
    graph = helper.make_graph(nodes, model.name, [x], [y], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mdeploy bench/native")
    m.doc_string = f"exported from .mdm sha256 {model.digest}"
    onnx.checker.check_model(m, full_check=True)
    return m


def native_outputs(mdm_path: Path, n: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.f32"
        subprocess.run(
            ["cargo", "run", "--release", "-q", "-p", "mdeploy-core", "--example", "dump_test_outputs", "--",
             str(mdm_path), str(out)],
            cwd=ROOT, check=True,
        )
        return np.fromfile(out, dtype="<f4").reshape(n, -1)


def check(mdm_path: Path, model: mdm.Model, onnx_path: Path) -> None:
    import onnxruntime as ort

    images, labels = test_digits()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ours = native_outputs(mdm_path, len(labels))
    theirs = sess.run(None, {"x": images})[0]
    if ours.shape != theirs.shape:
        raise SystemExit(f"{mdm_path.name}: native outputs {ours.shape} vs onnxruntime {theirs.shape}")
    diff = float(np.max(np.abs(ours - theirs)))
    a_ours, a_theirs = ours.argmax(1), theirs.argmax(1)
    disagree = np.nonzero(a_ours != a_theirs)[0]
    acc_ours = float((a_ours == labels).mean())
    acc_theirs = float((a_theirs == labels).mean())
    stored = model.test_accuracy
    print(f"{mdm_path.name}: max |p_native - p_onnxruntime| = {diff:.2e} over {ours.size} probabilities; "
          f"argmax agrees on {len(labels) - len(disagree)}/{len(labels)}; accuracy native {acc_ours:.4f}, "
          f"onnxruntime {acc_theirs:.4f}, stored in the file {stored:.4f}")
    for i in disagree:
        top2 = np.sort(ours[i])[-2:]
        print(f"  digit {i}: native says {a_ours[i]}, onnxruntime {a_theirs[i]} (native top-2 margin {top2[1] - top2[0]:.1e})")
    ok = diff <= 1e-5 and len(disagree) == 0 and acc_ours == acc_theirs and stored is not None and abs(acc_theirs - stored) < 1e-6
    if not ok:
        raise SystemExit(f"{mdm_path.name}: the ONNX export does not match the native model (see above)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", type=Path, default=DEFAULT_MODELS)
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--check", action="store_true", help="compare with the native Plan on the 2,000 test digits")
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for path in args.models:
        model = mdm.read(str(path))
        out = args.out_dir / (path.stem + ".onnx")
        onnx.save(to_onnx(model), out)
        print(f"{path} -> {out} ({os.path.getsize(out):,} bytes, opset {OPSET})")
        if args.check:
            check(path, model, out)


if __name__ == "__main__":
    main()
