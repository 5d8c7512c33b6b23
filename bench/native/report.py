"""Prints the markdown table: mdeploy (criterion + per-call latency JSON) vs onnxruntime.

    python3 bench/native/report.py CRITERION_DIR MDEPLOY_LATENCY.json ORT.json

Rows, each measured the same way on both sides:

* batch 1, criterion median: ours is criterion's median estimate
  (`CRITERION_DIR/<group>/<id>/new/estimates.json`, found through each `benchmark.json`'s full_id
  so the folder-name escaping does not matter), i.e. the median of ~100 sample means; onnxruntime's
  is the same statistic over 100 chunks of its timed calls.
* batch 1, median and p99 per call: every call timed on its own (the bench writes ours with
  MDEPLOY_BENCH_LATENCY_OUT), same window, same rank rule.
* batch 1024, images/s: 1024 / criterion's median estimate vs 1024 / onnxruntime's median call.

"Speed-up" is onnxruntime's time / ours: above 1 means mdeploy is faster.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def criterion_medians(root: Path) -> dict[str, float]:
    found = {}
    for bj in root.glob("*/*/new/benchmark.json"):
        meta = json.loads(bj.read_text())
        est = json.loads((bj.parent / "estimates.json").read_text())
        found[meta["full_id"]] = est["median"]["point_estimate"]
    return found


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit("usage: report.py CRITERION_DIR MDEPLOY_LATENCY.json ORT.json")
    crit = criterion_medians(Path(sys.argv[1]))
    lat = json.loads(Path(sys.argv[2]).read_text())
    ort = json.loads(Path(sys.argv[3]).read_text())

    def ours(group: str) -> float:
        key = f"{group}/plan"
        if key not in crit:
            raise SystemExit(f"no criterion result for {key} under {sys.argv[1]}; did the bench run?")
        return crit[key]

    rows = []
    notes = []
    for name, label in [("mlp", "MLP"), ("cnn", "CNN")]:
        o = ort["models"][name]
        b1 = ours(f"trained/{name}/batch1")
        bb = ours(f"trained/{name}/batch1024")
        c_t = o["batch1"]["median_of_chunk_means_ns"]
        rows.append((label, "1", "latency, criterion median (µs)", b1 / 1e3, c_t / 1e3, c_t / b1))
        for q in ("median", "p99"):
            a, b = lat[name][f"{q}_ns"], o["batch1"][f"{q}_ns"]
            rows.append((label, "1", f"latency, {q} per call (µs)", a / 1e3, b / 1e3, b / a))
        ips_o, ips_t = 1024 / (bb * 1e-9), o["batch1024"]["images_per_s"]
        rows.append((label, "1024", "throughput (images/s)", ips_o, ips_t, ips_o / ips_t))
        notes.append(
            f"{label}: mdeploy kernels {lat[name]['kernels']}, {lat[name]['calls']:,} calls timed; onnxruntime batch 1 via `{o['batch1']['api']}` "
            f"(plain `run`: median {o['batch1']['run']['median_ns'] / 1e3:.1f} µs, p99 {o['batch1']['run']['p99_ns'] / 1e3:.1f} µs), "
            f"{o['batch1']['calls']:,} calls; onnxruntime batch 1024 CPU time / wall time "
            f"{o['batch1024'].get('cpu_per_wall', float('nan')):.2f} (≈ 1: one thread)"
        )

    def fmt(v: float) -> str:
        return f"{v:,.0f}" if v >= 1000 else f"{v:.1f}"

    print(f"| model | batch | metric | mdeploy | onnxruntime {ort['onnxruntime']} | mdeploy speed-up |")
    print("|---|---:|---|---:|---:|---:|")
    for label, batch, metric, a, b, r in rows:
        print(f"| {label} | {batch} | {metric} | {fmt(a)} | {fmt(b)} | {r:.2f}× |")
    print()
    for n in notes:
        print(f"- {n}")
    fl = ort.get("call_floor", {})
    if fl:
        print("- onnxruntime's per-call floor from Python (a graph holding one Identity, same protocol): "
              + ", ".join(f"`{api}` median {r['median_ns'] / 1e3:.1f} µs" for api, r in fl.items())
              + "; its batch-1 latencies include this")


if __name__ == "__main__":
    main()
