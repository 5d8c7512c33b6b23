"""A third-party KServe v2 client (tritonclient.http, as Triton users run it) against our server:
JSON tensors, then tritonclient's defaults (Triton's binary tensor extension, both ways).

Usage: python kserve_client.py HOST:PORT DIGITS_JSON
DIGITS_JSON: [{"image": [784 floats], "cnn": [10 floats], "mlp": [...]}, ...] (native answers,
from serve/examples/reference.rs). Exits non-zero, saying what differed, on any mismatch.
"""
import json
import sys

import numpy as np
import tritonclient.http as httpclient


def check_binary_defaults(client, model, image, json_probs, json_label):
    """tritonclient's DEFAULTS, as most Triton users write them: set_data_from_numpy sends the
    tensor as binary (Triton's binary tensor extension), InferRequestedOutput(name) and infer()
    without outputs ask for binary outputs. The answers must equal the JSON path's exactly.
    Returns how many inferences it ran."""
    runs = 0
    u8 = np.round(image * 255).astype(np.uint8)
    for arr, dtype in ((image, "FP32"), (u8, "UINT8")):
        inp = httpclient.InferInput("input", list(arr.shape), dtype)
        inp.set_data_from_numpy(arr)  # binary_data=True by default
        assert inp._get_binary_data() is not None, "tritonclient did not send binary data"
        want_probs = json_probs
        if dtype == "UINT8":
            # The JSON path with the same UINT8 pixels, to compare against.
            j = httpclient.InferInput("input", list(arr.shape), dtype)
            j.set_data_from_numpy(arr, binary_data=False)
            want_probs = client.infer(model, [j], outputs=[
                httpclient.InferRequestedOutput("probabilities", binary_data=False)]).as_numpy("probabilities")
        for outputs in (None, [httpclient.InferRequestedOutput(n) for n in ("probabilities", "label")]):
            result = client.infer(model, [inp], outputs=outputs, model_version="1")
            runs += 1
            for name in ("probabilities", "label"):
                out = result.get_output(name)
                assert "binary_data_size" in (out.get("parameters") or {}), f"{name} was not sent as binary: {out}"
                assert "data" not in out, out
            probs = result.as_numpy("probabilities")
            assert probs.dtype == np.float32 and probs.shape == (1, 10), (probs.dtype, probs.shape)
            assert np.array_equal(probs, want_probs), (model, dtype, probs, want_probs)
            label = result.as_numpy("label")[0]
            label = label.decode() if isinstance(label, bytes) else str(label)
            want_label = str(int(np.argmax(want_probs[0])))
            assert label == want_label, (model, dtype, label, want_label)
            if dtype == "FP32":
                assert label == json_label, (label, json_label)
    return runs


def main():
    url, ref_path = sys.argv[1], sys.argv[2]
    refs = json.load(open(ref_path))
    client = httpclient.InferenceServerClient(url=url)
    assert client.is_server_live(), "is_server_live() is False"
    assert client.is_server_ready(), "is_server_ready() is False"
    server = client.get_server_metadata()
    assert server["name"] == "mdeploy", server
    # The repository index (Triton's extension), through the client's own call: every model the
    # host serves, the embedded ones and those it added (the MobileNet fixture), all READY.
    index = client.get_model_repository_index()
    states = {m["name"]: m["state"] for m in index}
    for model in ("mnist-cnn", "mnist-mlp", "mnist-resnet", "mobilenet-block"):
        assert states.get(model) == "READY", index
    checked = 0
    binary = 0
    for model in ("mnist-cnn", "mnist-mlp"):
        assert client.is_model_ready(model), f"{model} not ready"
        assert client.is_model_ready(model, "1"), f"{model} version 1 not ready"
        meta = client.get_model_metadata(model)
        assert meta["name"] == model and meta["inputs"][0]["shape"] == [-1, 1, 28, 28], meta
        assert [o["name"] for o in meta["outputs"]] == ["probabilities", "label"], meta
        for ref in refs[::20]:
            image = np.array(ref["image"], dtype=np.float32).reshape(1, 1, 28, 28)
            inp = httpclient.InferInput("input", [1, 1, 28, 28], "FP32")
            # JSON tensors: the binary-tensor extension is Triton's, not part of KServe v2.
            inp.set_data_from_numpy(image, binary_data=False)
            outputs = [httpclient.InferRequestedOutput(n, binary_data=False) for n in ("probabilities", "label")]
            result = client.infer(model, [inp], outputs=outputs, request_id=f"py-{checked}", model_version="1")
            probs = result.as_numpy("probabilities")
            want = np.array(ref["cnn" if model == "mnist-cnn" else "mlp"], dtype=np.float32)
            assert probs.shape == (1, 10), probs.shape
            assert np.abs(probs[0] - want).max() <= 1e-5, (model, probs[0], want)
            label = result.as_numpy("label")[0]
            label = label.decode() if isinstance(label, bytes) else str(label)
            assert label == str(int(np.argmax(want))), (label, want)
            assert result.get_response()["id"] == f"py-{checked}"
            checked += 1
            binary += check_binary_defaults(client, model, image, probs, label)
    try:
        client.get_model_metadata("mnist-gpt")
        raise AssertionError("an unknown model did not raise")
    except httpclient.InferenceServerException as e:
        assert "404" in str(e.status()), e.status()
    print(f"tritonclient: live, ready, repository index ({len(index)} models), metadata and {checked} inferences OK "
          f"(+{binary} with the binary tensor defaults, equal to JSON)")


if __name__ == "__main__":
    main()
