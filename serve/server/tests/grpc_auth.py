"""API keys over gRPC with tritonclient.grpc: UNAUTHENTICATED without or with a wrong key,
PERMISSION_DENIED for a model outside the key's allow list, health open.

Usage: python grpc_auth.py GRPC_HOST:PORT INFER_KEY
(INFER_KEY: scope "infer", allowed model "digits" only; the server also serves "other".)
"""
import sys

import numpy as np
import tritonclient.grpc as grpcclient

from grpc_status import status_of


def main():
    url, key = sys.argv[1], sys.argv[2]
    c = grpcclient.InferenceServerClient(url)
    good = {"authorization": f"Bearer {key}"}
    wrong = {"authorization": "Bearer not-a-key"}
    inp = grpcclient.InferInput("input", [1, 784], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 784), dtype=np.float32))

    # Probes stay open.
    assert c.is_server_live() and c.is_server_ready()
    got = {
        "infer no key": status_of(lambda: c.infer("digits", [inp])),
        "infer wrong key": status_of(lambda: c.infer("digits", [inp], headers=wrong)),
        "infer good key": status_of(lambda: c.infer("digits", [inp], headers=good)),
        "infer other model": status_of(lambda: c.infer("other", [inp], headers=good)),
        "metadata no key": status_of(lambda: c.get_model_metadata("digits")),
        "metadata good key": status_of(lambda: c.get_model_metadata("digits", headers=good)),
        "ready other model": status_of(lambda: c.is_model_ready("other", headers=good)),
        "server metadata no key": status_of(lambda: c.get_server_metadata()),
    }
    want = {
        "infer no key": "StatusCode.UNAUTHENTICATED",
        "infer wrong key": "StatusCode.UNAUTHENTICATED",
        "infer good key": "OK",
        "infer other model": "StatusCode.PERMISSION_DENIED",
        "metadata no key": "StatusCode.UNAUTHENTICATED",
        "metadata good key": "OK",
        "ready other model": "StatusCode.PERMISSION_DENIED",
        "server metadata no key": "StatusCode.UNAUTHENTICATED",
    }
    assert got == want, f"got {got}"
    print("ok", len(got))


if __name__ == "__main__":
    main()
