"""The bad-input table (tests/bad-inputs/table.json) over KServe v2 gRPC: each request row that
has a gRPC meaning is sent as the RPC that means the same (raw protobuf through tritonclient's
generated stubs, so malformed requests reach the server as they are), must get the gRPC code of
the row's HTTP status and a message naming the row's `says`, and a good ModelInfer right after it
must succeed. Rows without a gRPC meaning are listed with the reason.

Usage: python grpc_bad_inputs.py HOST:PORT TABLE_JSON
Prints one JSON line: {"sent": [...names], "skipped": {name: reason}}; exits 1 naming each
mismatch. The mapping is documented in tests/bad-inputs/README.md.
"""
import json
import math
import struct
import sys
import urllib.parse

import grpc
import numpy as np
import tritonclient.grpc.service_pb2 as pb
import tritonclient.grpc.service_pb2_grpc as pb_grpc

# The HTTP status of a row -> the gRPC code (serve/server/SERVER.md, gRPC).
CODE = {400: "INVALID_ARGUMENT", 415: "INVALID_ARGUMENT", 404: "NOT_FOUND", 405: "UNIMPLEMENTED", 413: "RESOURCE_EXHAUSTED"}
F32_MAX = 3.4028234663852886e38


class NoMeaning(Exception):
    pass


def expand(body):
    out, rest = "", body
    while "{{repeat " in rest:
        i = rest.index("{{repeat ")
        out += rest[:i]
        tail = rest[i + 9 :]
        end = tail.index("}}")
        text, n = tail[:end].rsplit(" ", 1)
        out += text * int(n)
        rest = tail[end + 2 :]
    return out + rest


def contents(datatype, data):
    """Typed contents for a flat list of numbers; NoMeaning when protobuf cannot carry them."""
    if not isinstance(data, list) or any(isinstance(x, (list, dict)) for x in data):
        raise NoMeaning("nested data: gRPC contents are flat")
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in data):
        raise NoMeaning("a non-number in data: typed protobuf fields hold numbers only")
    c = pb.InferTensorContents()
    if datatype == "FP32":
        if any(not math.isfinite(x) or abs(x) > F32_MAX for x in data):
            raise NoMeaning("NaN, infinity or a number beyond FP32: fp32_contents cannot carry it")
        c.fp32_contents.extend(data)
    elif datatype == "UINT8":
        if any(x < 0 or x != int(x) or x >= 2**32 for x in data):
            raise NoMeaning("a value uint_contents cannot hold")
        c.uint_contents.extend(int(x) for x in data)
    elif datatype == "INT64":
        c.int64_contents.extend(int(x) for x in data)
    else:
        # Any other datatype: the values as they are in fp64_contents; the server must refuse the
        # datatype before looking at them.
        c.fp64_contents.extend(float(x) for x in data)
    return c


def infer_request(model, version, head, raw=None):
    if not isinstance(head, dict):
        raise NoMeaning("the JSON body is not an object: protobuf has no such message")
    req = pb.ModelInferRequest(model_name=model, model_version=version or "")
    for i, t in enumerate(head.get("inputs", [])):
        shape = t.get("shape", [])
        if not all(isinstance(d, int) and -(2**63) <= d < 2**63 for d in shape):
            raise NoMeaning("a shape entry int64 cannot hold")
        tensor = req.inputs.add(name=t.get("name", ""), datatype=t.get("datatype", ""), shape=shape)
        size = (t.get("parameters") or {}).get("binary_data_size")
        if size is not None and raw is not None:
            req.raw_input_contents.append(raw[:size])
            raw = raw[size:]
        else:
            tensor.contents.CopyFrom(contents(t.get("datatype"), t.get("data")))
    for o in head.get("outputs", []):
        req.outputs.add(name=o.get("name", ""))
    return req


def rpc_of(row, stub):
    """The RPC call meaning what the row's HTTP request means, or NoMeaning."""
    method, path = row["method"], row["path"]
    segs = path.split("?")[0].strip("/").split("/")
    if segs[:2] != ["v2", "models"] or len(segs) < 3:
        raise NoMeaning("not a KServe v2 model route (TF Serving, /predict and unknown paths are REST only)")
    model = urllib.parse.unquote(segs[2])
    version = segs[4] if len(segs) >= 5 and segs[3] == "versions" else None
    tail = segs[5:] if version is not None else segs[3:]
    if method == "GET" and tail == []:
        return lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name=model, version=version or ""), timeout=30)
    if method != "POST" or tail != ["infer"]:
        raise NoMeaning("an HTTP method gRPC has no counterpart for")
    body = expand(row["body"]) if "body" in row else None
    if body is None:
        raise NoMeaning("a body only REST has")
    headers = {k.lower(): v for k, v in row.get("headers", [])}
    raw = None
    if "inference-header-content-length" in headers:
        n = headers["inference-header-content-length"]
        if not n.isdigit() or int(n) > len(body.encode()):
            raise NoMeaning("the REST binary framing (header length) is not part of gRPC")
        raw, body = body.encode()[int(n):], body.encode()[: int(n)].decode()
    try:
        head = json.loads(body)
    except (ValueError, RecursionError):
        raise NoMeaning("not valid JSON: protobuf replaces JSON parsing")
    if isinstance(head, dict) and "inputs" not in head:
        raise NoMeaning("proto3 cannot tell a missing repeated field from an empty one: the 'empty inputs list' row is this request")
    req = infer_request(model, version, head, raw)
    return lambda: stub.ModelInfer(req, timeout=30)


def good(stub):
    req = pb.ModelInferRequest(model_name="mnist-mlp")
    req.inputs.add(name="input", datatype="FP32", shape=[1, 784]).contents.fp32_contents.extend([0.5] * 784)
    r = stub.ModelInfer(req, timeout=30)
    return len(r.raw_output_contents) > 0


def main():
    url, table_path = sys.argv[1], sys.argv[2]
    with open(table_path) as f:
        table = json.load(f)
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(url, options=[("grpc.max_send_message_length", 64 << 20)]))
    sent, skipped, failures = [], {}, []
    for row in table["requests"]:
        name = row["name"]
        try:
            call = rpc_of(row, stub)
        except NoMeaning as e:
            skipped[name] = str(e)
            continue
        want = CODE[row["status"]]
        try:
            call()
            failures.append(f"{name}: the call succeeded, expected {want}")
        except grpc.RpcError as e:
            got, msg = e.code().name, e.details() or ""
            if got != want:
                failures.append(f"{name}: {got} ({msg}), expected {want}")
            elif row["says"].lower() not in msg.lower():
                failures.append(f"{name}: {got} {msg!r} does not mention {row['says']!r}")
        sent.append(name)
        if not good(stub):
            failures.append(f"a good request after {name} got no output")
    print(json.dumps({"sent": sent, "skipped": skipped}))
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
