"""Runs an ONNX file that `mdeploy export` wrote in onnxruntime: the independent side of
core/onnx/tests/onnx/export.rs (the Rust test compares these outputs with mdeploy's own).

    python ort_run.py MODEL.onnx INPUT.f32 OUTPUT.f32

1. `onnx.checker.check_model(full_check=True)` (structure, types, shape inference);
2. reads INPUT.f32 (little-endian float32, N samples back to back), reshapes it to the model's
   input [N, ...] (the shape declared in the file, batch axis symbolic);
3. runs onnxruntime (CPU, 1 thread, so the result does not depend on the machine's cores; float
   compute for quantized weights, see below) and
   writes the output to OUTPUT.f32 (little-endian float32);
4. prints one JSON line: what onnx reads back from the file (opset, IR version, producer,
   input/output shapes, metadata_props, op types), so the test can check them too.

Needs only numpy, onnx and onnxruntime (the test venv of scripts/bootstrap.sh).
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def dims(value_info):
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in value_info.type.tensor_type.shape.dim]


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit("usage: ort_run.py MODEL.onnx INPUT.f32 OUTPUT.f32")
    model_path, in_path, out_path = sys.argv[1:]
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    (inp,) = model.graph.input
    (out,) = model.graph.output
    sample = dims(inp)[1:]
    x = np.fromfile(in_path, dtype="<f4").reshape([-1, *sample])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    # onnxruntime (1.32) rewrites DequantizeLinear + Gemm/MatMul of constant int8 weights into
    # MatMulNBits, which by default (accuracy level 4) also quantizes the activations to int8:
    # 0.15 off on a random 256 -> 10 layer. Level 1 computes in float, as the ONNX graph says.
    opts.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "1")
    sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
    (y,) = sess.run([out.name], {inp.name: x})
    np.ascontiguousarray(y, dtype="<f4").tofile(out_path)
    print(json.dumps({
        "opset": {o.domain: o.version for o in model.opset_import},
        "ir_version": model.ir_version,
        "producer": [model.producer_name, model.producer_version],
        "input": [inp.name, dims(inp)],
        "output": [out.name, dims(out)],
        "output_shape_run": list(y.shape),
        "metadata": {p.key: p.value for p in model.metadata_props},
        "ops": sorted({n.op_type for n in model.graph.node}),
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main()
