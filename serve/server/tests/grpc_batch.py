"""Concurrent gRPC clients (tritonclient.grpc) for the dynamic batching test (`batching.rs`).

Usage: python grpc_batch.py GRPC_HOST:PORT CASES_JSON
CASES_JSON: {"model": NAME, "clients": K, "cases": [{"image": [784 floats], "probs": [...]}, ...]}
with the probabilities the unbatched server answered over REST. K threads, one client each,
send every case once (each its own request, 1 digit, raw FP32) all at the same time, and each
answer must equal the expected probabilities bit for bit. Exits non-zero naming the first
mismatch; prints one line of counts on success.
"""
import json
import sys
import threading

import numpy as np
import tritonclient.grpc as grpcclient


def main():
    url, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        spec = json.load(f)
    cases, k = spec["cases"], spec["clients"]
    errors, done = [], [0]
    lock = threading.Lock()
    start = threading.Barrier(k)

    def worker(w):
        client = grpcclient.InferenceServerClient(url)
        start.wait()
        for i in range(w, len(cases), k):
            c = cases[i]
            inp = grpcclient.InferInput("input", [1, 784], "FP32")
            inp.set_data_from_numpy(np.asarray(c["image"], dtype=np.float32).reshape(1, 784))
            try:
                r = client.infer(spec["model"], [inp], outputs=[grpcclient.InferRequestedOutput("probabilities")])
                got = r.as_numpy("probabilities").reshape(-1)
                want = np.asarray(c["probs"], dtype=np.float32)
                if got.tobytes() != want.tobytes():
                    raise AssertionError(f"case {i}: {got.tolist()} != {want.tolist()}")
                with lock:
                    done[0] += 1
            except Exception as e:  # noqa: BLE001 - every failure is reported by the test
                with lock:
                    errors.append(f"case {i}: {e}")

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print("\n".join(errors[:5]), file=sys.stderr)
        sys.exit(1)
    print(f"grpc batch: {done[0]} answers equal over {k} concurrent clients")


main()
