"""Writes the gRPC request body bench/serve/run.sh sends with h2load: one KServe v2 ModelInfer
message (the digit of bench/serverless/make-bodies.mjs's infer.json as a raw FP32 [1, 784]
tensor, the probabilities asked for) in gRPC's length-prefixed framing (1 byte flag 0, 4 bytes
big-endian length, the protobuf), using tritonclient's generated messages.

Usage: python grpc-body.py INFER_JSON MODEL OUT
"""
import json
import struct
import sys

import numpy as np
import tritonclient.grpc.service_pb2 as pb

infer_json, model, out = sys.argv[1:4]
with open(infer_json) as f:
    data = json.load(f)["inputs"][0]["data"]
req = pb.ModelInferRequest(model_name=model)
tensor = req.inputs.add()
tensor.name, tensor.datatype = "input", "FP32"
tensor.shape.extend([1, 784])
req.outputs.add().name = "probabilities"
req.raw_input_contents.append(np.asarray(data, dtype="<f4").tobytes())
msg = req.SerializeToString()
with open(out, "wb") as f:
    f.write(b"\x00" + struct.pack(">I", len(msg)) + msg)
