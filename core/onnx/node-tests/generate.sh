#!/usr/bin/env bash
# Writes the ONNX backend node test cases (onnx 1.23.2: 1,884 cases, about 57 MB, a few seconds)
# into $MDEPLOY_ONNX_NODE_DIR (default ~/.cache/mdeploy/onnx-node/1.23.2), never into the repo.
# Idempotent: a stamp file marks a complete set; a second run does nothing. Run by scripts/test.sh
# before the Rust tests; core/onnx/tests/node.rs reads the cases.
set -euo pipefail
ONNX_VERSION=1.23.2
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${MDEPLOY_PY_VENV:-$HOME/.cache/mdeploy/py-venv}/bin/python"
OUT="${MDEPLOY_ONNX_NODE_DIR:-$HOME/.cache/mdeploy/onnx-node/$ONNX_VERSION}"
STAMP="$OUT/.complete"

[ -f "$STAMP" ] && exit 0
[ -x "$PY" ] || { echo "generate.sh: no Python at $PY; run scripts/bootstrap.sh (it makes the venv with onnx==$ONNX_VERSION)" >&2; exit 1; }
have="$("$PY" -c 'import onnx; print(onnx.__version__)')" || { echo "generate.sh: $PY cannot import onnx; run scripts/bootstrap.sh" >&2; exit 1; }
# Other onnx versions define other cases; the committed expectation file is for this one.
[ "$have" = "$ONNX_VERSION" ] || { echo "generate.sh: $PY has onnx $have, the node tests are pinned to $ONNX_VERSION (pip install onnx==$ONNX_VERSION)" >&2; exit 1; }

# Write beside the target and rename, so an interrupted run never leaves a half set behind a stamp.
mkdir -p "$(dirname "$OUT")"
TMP="$(mktemp -d "$OUT.tmp.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
"$PY" -W ignore "$HERE/generate.py" "$TMP" >/dev/null
touch "$TMP/.complete"
rm -rf "$OUT"
mv "$TMP" "$OUT"
trap - EXIT
echo "generate.sh: the ONNX $ONNX_VERSION node test cases are in $OUT/node"
