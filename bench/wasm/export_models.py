"""Writes mdeploy's `.mdm` models in the formats of the wasm benchmark's peers.

    python3 bench/wasm/export_models.py --out-dir OUT [models/mnist-mlp.mdm ...]

For each model:
- `OUT/<name>.onnx` for onnxruntime-web: written by `mdeploy export` (opset 13 with IR version 7,
  the one that goes with it: onnxruntime-web 1.30 rejects the IR 14 that onnx 1.2x writes by
  default), the graph `bench/native/run.sh` checks against the native Plan;
- `OUT/<name>.tfjs.json` (the layer list, with each tensor's shape and float offset)
and `OUT/<name>.tfjs.bin` (all tensors, little-endian f32, back to back). `tfjs_model.mjs` builds
the network from them with tfjs-core ops.

TF.js convolutions run NHWC with HWIO filters, ours NCHW with OIHW (`core/src/model.rs`), so the
layouts are converted here, once, the way a user porting the model would:
- Conv2d weight `[out, in, kh, kw]` → `[kh, kw, in, out]`;
- the Dense right after a Flatten of a `[C, H, W]` activation (C > 1 and H·W > 1) gets its rows
  permuted from our C·H·W order to TF.js's H·W·C order, so no transpose runs per prediction;
- Dense `[in, out]` is already TF.js's matMul layout; Dropout is the identity at inference and is
  dropped.
The benchmark's parity check (every argmax and probability against mdeploy-wasm) is what proves
these conversions right; a wrong Flatten order fails it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench/native"))
import mdm  # noqa: E402
import onnx  # noqa: E402

DEFAULT_MODELS = [ROOT / "models/mnist-mlp.mdm", ROOT / "models/mnist-cnn.mdm"]


def convert(model: mdm.Model) -> tuple[dict, np.ndarray]:
    if len(model.input_shape) != 3:
        raise mdm.MdmError(f"{model.name}: input shape {model.input_shape} is not [C, H, W]; only image models are exported")
    shape = list(model.input_shape)  # current activation shape, ours: [C, H, W] or [F]
    chunks: list[np.ndarray] = []
    offset = 0
    layers = []
    flattened_from: list[int] | None = None

    def put(a: np.ndarray) -> dict:
        nonlocal offset
        a = np.ascontiguousarray(a, dtype="<f4")
        chunks.append(a.ravel())
        t = {"shape": list(a.shape), "offset": offset}
        offset += a.size
        return t

    for i, l in enumerate(model.layers):
        if l.kind == "Dropout":
            continue
        if l.kind == "Conv2d":
            o, c, kh, kw = l.weight.shape
            if len(shape) != 3 or shape[0] != c:
                raise mdm.MdmError(f"layer {i}: Conv2d expects {c} channels, gets activation {shape}")
            (sh, sw), (ph, pw) = l.stride, l.padding
            layers.append({"kind": "Conv2d", "stride": [sh, sw], "padding": [ph, pw],
                           "weight": put(l.weight.transpose(2, 3, 1, 0)), "bias": put(l.bias)})
            shape = [o, (shape[1] + 2 * ph - kh) // sh + 1, (shape[2] + 2 * pw - kw) // sw + 1]
        elif l.kind == "MaxPool2d":
            (kh, kw), (sh, sw) = l.kernel, l.stride
            layers.append({"kind": "MaxPool2d", "kernel": [kh, kw], "stride": [sh, sw]})
            shape = [shape[0], (shape[1] - kh) // sh + 1, (shape[2] - kw) // sw + 1]
        elif l.kind == "Flatten":
            layers.append({"kind": "Flatten"})
            flattened_from = shape if len(shape) == 3 else None
            shape = [int(np.prod(shape))]
        elif l.kind == "Dense":
            w = l.weight
            if flattened_from is not None:
                c, h, wd = flattened_from
                if w.shape[0] != c * h * wd:
                    raise mdm.MdmError(f"layer {i}: Dense has {w.shape[0]} inputs after a Flatten of {flattened_from}")
                # Row r of ours is (c, y, x) in C·H·W order; TF.js flattens NHWC as (y, x, c).
                w = w.reshape(c, h, wd, -1).transpose(1, 2, 0, 3).reshape(c * h * wd, -1)
                flattened_from = None
            layers.append({"kind": "Dense", "weight": put(w), "bias": put(l.bias)})
            shape = [w.shape[1]]
        elif l.kind in ("Relu", "Softmax"):
            layers.append({"kind": l.kind})
        else:
            raise mdm.MdmError(f"layer {i}: {l.kind} has no TF.js mapping here")
    meta = {"name": model.name, "inputShape": list(model.input_shape), "labels": model.labels,
            "digest": model.digest, "layers": layers, "floats": offset}
    return meta, np.concatenate(chunks) if chunks else np.zeros(0, "<f4")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", type=Path, default=DEFAULT_MODELS)
    ap.add_argument("--out-dir", type=Path, required=True)
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    # MDEPLOY_CLI=path/to/mdeploy (as in bench/native/run.sh) skips cargo: the CLI's link takes 10+ minutes on
    # the shared VM, and the export does not depend on the kernels.
    cli = [os.environ["MDEPLOY_CLI"]] if os.environ.get("MDEPLOY_CLI") else ["cargo", "run", "--release", "-q", "-p", "mdeploy-cli", "--"]
    for path in args.models:
        model = mdm.read(str(path))
        onnx_path = args.out_dir / f"{path.stem}.onnx"
        subprocess.run([*cli, "export", str(path), "--onnx", str(onnx_path)], cwd=ROOT, check=True, stdout=sys.stderr)
        onnx.checker.check_model(onnx.load(str(onnx_path)), full_check=True)
        meta, data = convert(model)
        (args.out_dir / f"{path.stem}.tfjs.json").write_text(json.dumps(meta, indent=1))
        data.astype("<f4").tofile(args.out_dir / f"{path.stem}.tfjs.bin")
        print(f"{path} -> {args.out_dir / path.stem}.onnx, .tfjs.{{json,bin}} ({data.size * 4:,} bytes of weights)")


if __name__ == "__main__":
    main()
