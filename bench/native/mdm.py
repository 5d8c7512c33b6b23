"""A small reader of mdeploy's `.mdm` model files, written from `core/src/format/MDM_FORMAT.md`.

It exists so the benchmark can give onnxruntime the *exact* weights of our models. It reads
format 1.x with dense f32 tensors (what `mdeploy train` writes); quantized and sparse tensors are
rejected with a clear error instead of being half-supported. The SHA-256 digest is verified as the
spec says: over every byte of the file except the digest field itself.

    python3 bench/native/mdm.py models/mnist-cnn.mdm     # prints the layers and tensor shapes
"""

from __future__ import annotations

import hashlib
import struct
import sys
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"\x89MDM\r\n\x1a\n"
KIND_META, KIND_GRAPH, KIND_TENSORS, KIND_DATA = 1, 2, 3, 4
LAYER_NAMES = {1: "Dense", 2: "Conv2d", 3: "MaxPool2d", 4: "Relu", 5: "Softmax", 6: "Flatten", 7: "Dropout"}
DTYPE_F32, ENC_DENSE, QUANT_NONE = 1, 1, 0


class MdmError(ValueError):
    pass


@dataclass
class Layer:
    kind: str
    # Dense/Conv2d: tensors; Conv2d: stride/padding; MaxPool2d: kernel/stride; Dropout: rate.
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    kernel: tuple[int, int] = (1, 1)
    rate: float = 0.0


@dataclass
class Model:
    name: str
    input_shape: list[int]
    labels: list[str]
    test_accuracy: float | None
    layers: list[Layer] = field(default_factory=list)
    digest: str = ""


class _Cur:
    """Little-endian cursor over one section; every read is bounds-checked."""

    def __init__(self, buf: bytes, base: int, section: str):
        self.buf, self.pos, self.base, self.section = buf, 0, base, section

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise MdmError(f"{self.section} section, file offset {self.base + self.pos}: truncated while reading {what}")
        b = self.buf[self.pos : self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt: str, what: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))[0]

    def u8(self, w: str) -> int:
        return self.unpack("B", w)

    def u16(self, w: str) -> int:
        return self.unpack("H", w)

    def u32(self, w: str) -> int:
        return self.unpack("I", w)

    def u64(self, w: str) -> int:
        return self.unpack("Q", w)

    def i32(self, w: str) -> int:
        return self.unpack("i", w)

    def f32(self, w: str) -> float:
        return self.unpack("f", w)

    def string(self, w: str) -> str:
        n = self.u32(w + " length")
        if n > 65536:
            raise MdmError(f"{self.section} section: {w} is {n} bytes long, more than the limit of 65536")
        return self.take(n, w).decode("utf-8")


def read(path: str) -> Model:
    with open(path, "rb") as f:
        data = f.read()
    return parse(data, path)


def parse(data: bytes, what: str = "model") -> Model:
    if len(data) < 64 or data[:8] != MAGIC:
        raise MdmError(f"{what}: not an .mdm model file (bad magic or shorter than the 64-byte header)")
    major, minor, flags, file_len, section_count, reserved = struct.unpack_from("<HHIQII", data, 8)
    if major != 1:
        raise MdmError(f"{what}: .mdm format version {major}.{minor}; this reader knows 1.x")
    if file_len != len(data):
        raise MdmError(f"{what}: header says {file_len} bytes, the file has {len(data)} (truncated or appended)")
    digest = data[32:64]
    actual = hashlib.sha256(data[:32] + data[64:]).digest()
    if actual != digest:
        raise MdmError(f"{what}: SHA-256 digest mismatch: the file is corrupt or was modified after it was written")
    if flags != 0:
        raise MdmError(f"{what}: header flags {flags:#x} (signed/encrypted) are not supported by this reader")
    if reserved != 0 or not 1 <= section_count <= 32:
        raise MdmError(f"{what}: bad header (reserved {reserved}, section_count {section_count})")
    if 64 + 24 * section_count > len(data):
        raise MdmError(f"{what}: section table truncated")

    sections: dict[int, tuple[int, int]] = {}
    for i in range(section_count):
        kind, sflags, off, length = struct.unpack_from("<IIQQ", data, 64 + 24 * i)
        if off + length > len(data):
            raise MdmError(f"{what}: section {i} (kind {kind}) runs past the end of the file")
        if kind in (5, 6):
            raise MdmError(f"{what}: signature/encryption sections are not supported")
        if kind in sections:
            raise MdmError(f"{what}: section kind {kind} appears twice")
        if kind not in (KIND_META, KIND_GRAPH, KIND_TENSORS, KIND_DATA):
            if sflags & 1:
                raise MdmError(f"{what}: unknown REQUIRED section kind {kind}")
            continue
        sections[kind] = (off, length)
    for k in (KIND_META, KIND_GRAPH, KIND_TENSORS, KIND_DATA):
        if k not in sections:
            raise MdmError(f"{what}: missing section kind {k}")

    def cur(kind: int, name: str) -> _Cur:
        off, length = sections[kind]
        return _Cur(data[off : off + length], off, name)

    # META
    m = cur(KIND_META, "META")
    name = m.string("name")
    m.string("version")
    rank = m.u8("input rank")
    if rank > 8:
        raise MdmError(f"{what}: input rank {rank} > 8")
    input_shape = [m.u32("input dim") for _ in range(rank)]
    nlabels = m.u32("label count")
    if nlabels > 65536:
        raise MdmError(f"{what}: {nlabels} labels, more than 65536")
    labels = [m.string("label") for _ in range(nlabels)]
    m.string("preprocessing recipe")
    m.f32("range low")
    m.f32("range high")
    m.u8("ink_high")
    for w in ("provenance data", "provenance split", "provenance arch"):
        m.string(w)
    m.u32("epochs")
    m.u64("seed")
    has_acc = m.u8("test accuracy present")
    acc = m.f32("test accuracy")
    test_accuracy = acc if has_acc == 1 else None
    # Extras and any newer trailing fields are not needed here.

    # TENSORS (dense f32 only)
    t = cur(KIND_TENSORS, "TENSORS")
    ntensors = t.u32("tensor count")
    if ntensors > 8192:
        raise MdmError(f"{what}: {ntensors} tensors, more than 8192")
    data_off, data_len = sections[KIND_DATA]
    tensors: list[np.ndarray] = []
    for i in range(ntensors):
        dtype, bits, enc, quant, trank = (t.u8(f"tensor {i} header") for _ in range(5))
        if trank > 8:
            raise MdmError(f"{what}: tensor {i} has rank {trank} > 8")
        dims = [t.u32(f"tensor {i} dim") for _ in range(trank)]
        if (dtype, bits, enc, quant) != (DTYPE_F32, 32, ENC_DENSE, QUANT_NONE):
            raise MdmError(
                f"{what}: tensor {i} is dtype {dtype}/{bits} bits, encoding {enc}, quantization {quant}; "
                "this reader handles dense f32 only (the benchmark's models are f32)"
            )
        off, length = t.u64(f"tensor {i} offset"), t.u64(f"tensor {i} length")
        numel = int(np.prod(dims)) if dims else 1
        if length != 4 * numel:
            raise MdmError(f"{what}: tensor {i} buffer is {length} bytes, its shape {dims} needs {4 * numel}")
        if off % 64 or off < data_off or off + length > data_off + data_len:
            raise MdmError(f"{what}: tensor {i} buffer at {off} is not 64-aligned inside the DATA section")
        arr = np.frombuffer(data, dtype="<f4", count=numel, offset=off).reshape(dims).copy()
        if not np.all(np.isfinite(arr)):
            raise MdmError(f"{what}: tensor {i} holds non-finite values")
        tensors.append(arr)

    # GRAPH
    g = cur(KIND_GRAPH, "GRAPH")
    nlayers = g.u32("layer count")
    if nlayers > 4096:
        raise MdmError(f"{what}: {nlayers} layers, more than 4096")
    used: set[int] = set()

    def tensor(idx: int) -> np.ndarray:
        if idx >= len(tensors) or idx in used:
            raise MdmError(f"{what}: tensor index {idx} is out of range or used twice")
        used.add(idx)
        return tensors[idx]

    layers: list[Layer] = []
    for i in range(nlayers):
        code = g.u16(f"layer {i} code")
        kind = LAYER_NAMES.get(code)
        if kind is None:
            raise MdmError(f"{what}: layer {i} has unknown code {code}")
        layer = Layer(kind)
        if kind in ("Dense", "Conv2d"):
            layer.weight = tensor(g.u32("weight index"))
            layer.bias = tensor(g.u32("bias index"))
            if kind == "Conv2d":
                layer.stride = (g.u32("stride_h"), g.u32("stride_w"))
                layer.padding = (g.u32("pad_h"), g.u32("pad_w"))
        elif kind == "MaxPool2d":
            layer.kernel = (g.u32("kernel_h"), g.u32("kernel_w"))
            layer.stride = (g.u32("stride_h"), g.u32("stride_w"))
        elif kind == "Dropout":
            layer.rate = g.f32("dropout rate")
        layers.append(layer)
    if len(used) != len(tensors):
        raise MdmError(f"{what}: {len(tensors) - len(used)} tensors are not used by any layer")
    return Model(name, input_shape, labels, test_accuracy, layers, digest.hex())


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python3 mdm.py MODEL.mdm", file=sys.stderr)
        return 2
    m = read(argv[1])
    print(f"{argv[1]}: {m.name}, input {m.input_shape}, {len(m.labels)} labels, "
          f"stored test accuracy {m.test_accuracy}, sha256 {m.digest}")
    for i, l in enumerate(m.layers):
        extra = ""
        if l.weight is not None:
            extra = f" weight {list(l.weight.shape)} bias {list(l.bias.shape)}"
        if l.kind == "Conv2d":
            extra += f" stride {l.stride} pad {l.padding}"
        if l.kind == "MaxPool2d":
            extra += f" kernel {l.kernel} stride {l.stride}"
        if l.kind == "Dropout":
            extra += f" rate {l.rate:g}"
        print(f"  {i}: {l.kind}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
