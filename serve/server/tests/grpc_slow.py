"""One slow KServe v2 ModelInfer through tritonclient.grpc (raw_input_contents, no deadline),
for the drain test: prints the predicted labels as JSON once the answer arrives.

Usage: python grpc_slow.py GRPC_HOST:PORT MODEL DIGITS_F32_FILE
DIGITS_F32_FILE: N × 784 little-endian f32 (real test digits, written by drain.rs).
Prints "sending" before the call so the test knows the request is on its way.
"""
import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient


def main():
    url, model, path = sys.argv[1], sys.argv[2], sys.argv[3]
    x = np.fromfile(path, dtype="<f4").reshape(-1, 784)
    client = grpcclient.InferenceServerClient(url)
    inp = grpcclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    out = grpcclient.InferRequestedOutput("probabilities")
    print("sending", flush=True)
    r = client.infer(model, [inp], outputs=[out])
    probs = r.as_numpy("probabilities")
    print(json.dumps({"labels": probs.argmax(axis=1).tolist()}), flush=True)


if __name__ == "__main__":
    main()
