"""Checks that the ONNX files `mdeploy export` wrote compute what our native Plan computes, on the
2,000 fixed-split test digits, in onnxruntime.

    python3 bench/native/check_onnx.py ONNX_DIR models/mnist-mlp.mdm [models/mnist-cnn.mdm ...]

For each model, `ONNX_DIR/<stem>.onnx` runs in onnxruntime and the `.mdm` in our native Plan
(`cargo run --release -p mdeploy-core --example dump_test_outputs`, the same Plan and scoring code
as `mdeploy eval`); required: every probability within 1e-5, the same argmax on all 2,000 digits
(a tie closer than float noise is reported, not hidden), and the accuracy equal to the native one
and to the one the export carries in its metadata (`mdeploy.provenance`, copied from the `.mdm`).
Comparing probabilities is stronger than comparing accuracies: two exports can agree on accuracy
while disagreeing on every number.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mnist_digits import ROOT, test_digits  # noqa: E402


def native_outputs(mdm_path: Path, n: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.f32"
        subprocess.run(
            ["cargo", "run", "--release", "-q", "-p", "mdeploy-core", "--example", "dump_test_outputs", "--",
             str(mdm_path), str(out)],
            cwd=ROOT, check=True,
        )
        return np.fromfile(out, dtype="<f4").reshape(n, -1)


def check(mdm_path: Path, onnx_path: Path) -> None:
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    stored = json.loads(meta["mdeploy.provenance"])["test_accuracy"]
    images, labels = test_digits()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ours = native_outputs(mdm_path, len(labels))
    theirs = sess.run(["output"], {"input": images})[0]
    if ours.shape != theirs.shape:
        raise SystemExit(f"{mdm_path.name}: native outputs {ours.shape} vs onnxruntime {theirs.shape}")
    diff = float(np.max(np.abs(ours - theirs)))
    a_ours, a_theirs = ours.argmax(1), theirs.argmax(1)
    disagree = np.nonzero(a_ours != a_theirs)[0]
    acc_ours = float((a_ours == labels).mean())
    acc_theirs = float((a_theirs == labels).mean())
    print(f"{onnx_path.name} (opset {model.opset_import[0].version}, {model.producer_name} {model.producer_version}): "
          f"max |p_native - p_onnxruntime| = {diff:.2e} over {ours.size} probabilities; argmax agrees on "
          f"{len(labels) - len(disagree)}/{len(labels)}; accuracy native {acc_ours:.4f}, onnxruntime "
          f"{acc_theirs:.4f}, in the file's metadata {stored}")
    for i in disagree:
        top2 = np.sort(ours[i])[-2:]
        print(f"  digit {i}: native says {a_ours[i]}, onnxruntime {a_theirs[i]} (native top-2 margin {top2[1] - top2[0]:.1e})")
    ok = diff <= 1e-5 and len(disagree) == 0 and acc_ours == acc_theirs and stored is not None and abs(acc_theirs - stored) < 1e-6
    if not ok:
        raise SystemExit(f"{mdm_path.name}: the ONNX export does not match the native model (see above)")


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit("usage: check_onnx.py ONNX_DIR MODEL.mdm [MODEL.mdm ...]")
    onnx_dir = Path(sys.argv[1])
    for m in sys.argv[2:]:
        path = Path(m)
        check(path, onnx_dir / (path.stem + ".onnx"))


if __name__ == "__main__":
    main()
