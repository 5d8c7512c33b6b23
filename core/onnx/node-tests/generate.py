"""Writes the ONNX backend node test cases of the installed `onnx` into a folder.

onnx 1.23 no longer ships `onnx/backend/test/data/node/` in its wheel; the cases are still
defined in Python (`onnx.backend.test.case.node`), and onnx's own `generate_data` writes them in
the on-disk layout (`<case>/model.onnx`, `<case>/test_data_set_0/{input,output}_N.pb`). That tool
collects only the "real" model cases, so this script hands it the node cases instead.

Beside the cases it writes `manifest.tsv` (case name, the ONNX op type the case tests, whether it
is the function-expanded form) because an expanded case's graph holds the op's function body,
not the op, and the Rust test reports per op.

Usage: python generate.py OUT_DIR   (run by generate.sh; needs only onnx and numpy)
"""

import argparse
import os
import sys

import onnx
import onnx.backend.test.case.model as model_cases
import onnx.backend.test.case.node as node_cases
from onnx.backend.test import cmd_tools
from onnx.backend.test.loader import load_node_model_tests


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: generate.py OUT_DIR")
    out = sys.argv[1]
    cases = load_node_model_tests()
    # generate_data asks the model-case module for its list; give it the node cases.
    model_cases.collect_testcases = lambda: cases
    cmd_tools.generate_data(argparse.Namespace(output=out))

    # The op each case tests: expect() records it under the case's own name; an expanded case is
    # named after it plus "_expanded" (and "_verN" for another opset).
    ops = node_cases._existing_names
    rows = []
    for case in cases:
        base, expanded = case.name, False
        if base not in ops and "_expanded" in base:
            base, expanded = base[: base.index("_expanded")], True
        node = ops.get(base)
        if node is None:
            sys.exit(f"generate.py: cannot tell which op case {case.name} tests")
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
        tol = (case.rtol, case.atol)
        if tol != (1e-3, 1e-7):
            sys.exit(f"generate.py: case {case.name} has tolerance {tol}; the Rust test assumes 1e-3/1e-7")
        rows.append(f"{case.name}\t{op}\t{'expanded' if expanded else 'node'}\n")
    with open(os.path.join(out, "node", "manifest.tsv"), "w") as f:
        f.write("".join(sorted(rows)))
    print(f"generate.py: {len(cases)} node cases of onnx {onnx.__version__} in {os.path.join(out, 'node')}")


if __name__ == "__main__":
    main()
