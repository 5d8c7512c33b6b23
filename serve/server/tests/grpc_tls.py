"""KServe v2 gRPC over TLS with tritonclient.grpc (ssl=True, the test's CA as root certificate),
against `mdeploy serve --tls-cert/--tls-key` with API keys.

Usage: python grpc_tls.py HOST:PORT CA_PEM INFER_KEY CASES_JSON
CASES_JSON: {"digits": [{"image": [784 floats], "probs": [10 floats]}, ...]}, the probabilities
from the plain-HTTP REST answers of the same model. Checks: health open, no key UNAUTHENTICATED,
every digit's probabilities equal bit for bit with the key; a plaintext client and a TLS client
that does not trust the CA both fail UNAVAILABLE, and the trusted client still works after them.
Prints one line of counts on success.
"""
import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient

from grpc_status import status_of


def infer(client, image, headers=None):
    inp = grpcclient.InferInput("input", [1, 784], "FP32")
    inp.set_data_from_numpy(np.asarray(image, dtype=np.float32).reshape(1, 784))
    return client.infer("digits", [inp], headers=headers, client_timeout=30)


def main():
    url, ca, key, cases_path = sys.argv[1:5]
    with open(cases_path) as f:
        digits = json.load(f)["digits"]
    good = {"authorization": f"Bearer {key}"}
    client = grpcclient.InferenceServerClient(url, ssl=True, root_certificates=ca)

    assert client.is_server_live() and client.is_server_ready()
    assert status_of(lambda: infer(client, digits[0]["image"])) == "StatusCode.UNAUTHENTICATED"
    for i, d in enumerate(digits):
        probs = infer(client, d["image"], good).as_numpy("probabilities")
        want = np.asarray(d["probs"], dtype=np.float32).reshape(1, 10)
        assert np.array_equal(probs, want), f"digit {i}: gRPC over TLS {probs} != REST {want}"

    # A client speaking plaintext h2c to the TLS port, and one that does not trust our CA
    # (the system's roots only): both refused, neither stops the server.
    plain = grpcclient.InferenceServerClient(url)
    untrusted = grpcclient.InferenceServerClient(url, ssl=True)
    got = {
        "plaintext": status_of(lambda: plain.is_server_live(client_timeout=10)),
        "untrusted": status_of(lambda: untrusted.is_server_live(client_timeout=10)),
    }
    assert got == {"plaintext": "StatusCode.UNAVAILABLE", "untrusted": "StatusCode.UNAVAILABLE"}, got
    probs = infer(client, digits[-1]["image"], good).as_numpy("probabilities")
    assert np.array_equal(probs, np.asarray(digits[-1]["probs"], dtype=np.float32).reshape(1, 10))
    print("ok", len(digits), "digits over TLS;", got)


if __name__ == "__main__":
    main()
