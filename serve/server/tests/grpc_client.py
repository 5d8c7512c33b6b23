"""A third-party KServe v2 gRPC client (tritonclient.grpc, as Triton users run it) against
`mdeploy serve`, on real test digits, compared with the server's REST answers.

Usage: python grpc_client.py GRPC_HOST:PORT CASES_JSON
CASES_JSON: {"digits": [{"image": [784 floats], "v1": {"probs": [...], "label": "7"},
             "v2": {...}}, ...], "slow_model": NAME, "slow_batch": N}
written by grpc.rs from the REST route's answers (version 1 and 2 of model "digits"; labels
stable -> 1, canary -> 2). Exits non-zero, saying what differed, on any mismatch; prints one
line of counts on success.
"""
import json
import sys

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.service_pb2 as pb
import tritonclient.grpc.service_pb2_grpc as pb_grpc
from tritonclient.utils import InferenceServerException


def expect_error(code, fn):
    try:
        fn()
    except InferenceServerException as e:
        assert e.status() == f"StatusCode.{code}", f"expected {code}, got {e.status()}: {e.message()}"
        return e.message()
    raise AssertionError(f"expected {code}, the call succeeded")


def main():
    url, cases_path = sys.argv[1], sys.argv[2]
    with open(cases_path) as f:
        cases = json.load(f)
    digits = cases["digits"]
    client = grpcclient.InferenceServerClient(url)

    # Health and metadata.
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("digits")
    assert client.is_model_ready("digits", "1")
    assert client.is_model_ready("digits", "canary")
    meta = client.get_server_metadata()
    assert meta.name == "mdeploy" and "binary_tensor_data" in meta.extensions, meta
    mm = client.get_model_metadata("digits")
    assert list(mm.versions) == ["2", "1"], mm.versions
    assert mm.inputs[0].name == "input" and mm.inputs[0].datatype == "FP32" and mm.inputs[0].shape[0] == -1, mm
    assert [o.name for o in mm.outputs] == ["probabilities", "label"], mm.outputs
    assert "unknown model" in expect_error("NOT_FOUND", lambda: client.get_model_metadata("nope"))
    expect_error("NOT_FOUND", lambda: client.is_model_ready("digits", "9"))

    # tritonclient's default: raw_input_contents / raw_output_contents, one digit per request, on
    # version numbers and labels; FP32 and UINT8.
    runs = 0
    for d in digits:
        img = np.asarray(d["image"], dtype=np.float32).reshape(1, 784)
        for version, want in (("1", d["v1"]), ("stable", d["v1"]), ("2", d["v2"]), ("canary", d["v2"]), ("", d["v2"])):
            inp = grpcclient.InferInput("input", [1, 784], "FP32")
            inp.set_data_from_numpy(img)
            r = client.infer("digits", [inp], model_version=version, request_id=f"r{runs}")
            runs += 1
            probs = r.as_numpy("probabilities")
            want_probs = np.asarray(want["probs"], dtype=np.float32).reshape(1, 10)
            assert probs.dtype == np.float32 and probs.shape == (1, 10), (probs.dtype, probs.shape)
            assert np.array_equal(probs, want_probs), f"v{version or 'default'}: gRPC {probs} != REST {want_probs}"
            label = r.as_numpy("label")
            assert label.shape == (1,) and label[0].decode() == want["label"], (label, want["label"])
            resp = r.get_response()
            assert resp.id == f"r{runs - 1}", resp.id
            assert resp.model_version == ("1" if want is d["v1"] else "2"), resp.model_version

    # UINT8 raw: equals the REST UINT8 answer (the server's REST side computed it).
    for d in digits[:10]:
        u8 = np.asarray(d["u8"], dtype=np.uint8).reshape(1, 784)
        inp = grpcclient.InferInput("input", [1, 784], "UINT8")
        inp.set_data_from_numpy(u8)
        r = client.infer("digits", [inp], model_version="1", outputs=[grpcclient.InferRequestedOutput("probabilities")])
        runs += 1
        assert np.array_equal(r.as_numpy("probabilities"), np.asarray(d["u8_v1"], dtype=np.float32).reshape(1, 10))
        assert r.as_numpy("label") is None, "only the requested output comes back"

    # Typed `contents` (fp32_contents), a batch of every digit in one request, through the
    # generated stub (tritonclient's high-level API always sends raw bytes).
    channel = grpc.insecure_channel(url)
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    req = pb.ModelInferRequest(model_name="digits", model_version="1", id="typed")
    t = req.inputs.add(name="input", datatype="FP32", shape=[len(digits), 1, 28, 28])
    t.contents.fp32_contents.extend(np.asarray([d["image"] for d in digits], dtype=np.float32).ravel().tolist())
    resp = stub.ModelInfer(req)
    runs += 1
    assert resp.id == "typed" and resp.model_version == "1"
    names = [o.name for o in resp.outputs]
    probs = np.frombuffer(resp.raw_output_contents[names.index("probabilities")], dtype="<f4").reshape(len(digits), 10)
    want = np.asarray([d["v1"]["probs"] for d in digits], dtype=np.float32)
    assert np.array_equal(probs, want), "typed batch differs from the REST answers"
    # Typed UINT8 (uint_contents) with a value out of range: INVALID_ARGUMENT naming it.
    bad = pb.ModelInferRequest(model_name="digits")
    b = bad.inputs.add(name="input", datatype="UINT8", shape=[1, 784])
    b.contents.uint_contents.extend([300] + [0] * 783)
    try:
        stub.ModelInfer(bad)
        raise AssertionError("UINT8 300 was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "300" in e.details(), (e.code(), e.details())

    # Errors keep their meaning: wrong shape, unknown version, no data.
    inp = grpcclient.InferInput("input", [1, 783], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 783), dtype=np.float32))
    expect_error("INVALID_ARGUMENT", lambda: client.infer("digits", [inp]))
    inp = grpcclient.InferInput("input", [1, 784], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 784), dtype=np.float32))
    assert "stable -> 1" in expect_error("NOT_FOUND", lambda: client.infer("digits", [inp], model_version="beta"))

    # A deadline shorter than the work: DEADLINE_EXCEEDED (the server also stops waiting and
    # counts a failure, which grpc.rs checks in /metrics).
    n = cases["slow_batch"]
    big = np.tile(np.asarray(digits[0]["image"], dtype=np.float32), (n, 1))
    inp = grpcclient.InferInput("input", [n, 784], "FP32")
    inp.set_data_from_numpy(big)
    # Whoever notices first answers: the client's own timer or our server check
    # (DEADLINE_EXCEEDED), or tonic's grpc-timeout layer, which answers CANCELLED "Timeout expired".
    try:
        client.infer(cases["slow_model"], [inp], client_timeout=0.05)
        raise AssertionError("a 50 ms deadline on a slow batch succeeded")
    except InferenceServerException as e:
        assert e.status() == "StatusCode.DEADLINE_EXCEEDED" or (
            e.status() == "StatusCode.CANCELLED" and "Timeout" in e.message()), (e.status(), e.message())
    # And the server answers normally afterwards.
    assert client.is_model_ready(cases["slow_model"])
    print(json.dumps({"grpc_inferences": runs, "digits": len(digits)}))


if __name__ == "__main__":
    main()
