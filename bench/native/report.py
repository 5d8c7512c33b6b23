"""Prints the markdown table: mdeploy (criterion + per-call latency JSON) vs onnxruntime.

    python3 bench/native/report.py CRITERION_DIR MDEPLOY_LATENCY.json ORT.json [ORT_C.json ORT_NODE.json]

ORT.json is onnxruntime from Python (ort_bench.py); the optional ORT_C.json (ort-c/, its C API) and
ORT_NODE.json (ort_node_bench.mjs, onnxruntime-node) add a column and a speed-up each: the same
statistics of the same library without Python's per-call floor, and through Node's binding.

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
    if len(sys.argv) not in (4, 6):
        raise SystemExit("usage: report.py CRITERION_DIR MDEPLOY_LATENCY.json ORT.json [ORT_C.json ORT_NODE.json]")
    crit = criterion_medians(Path(sys.argv[1]))
    lat = json.loads(Path(sys.argv[2]).read_text())
    ort = json.loads(Path(sys.argv[3]).read_text())
    # Extra onnxruntime witnesses: (column title, JSON), each with the same per-model keys.
    extra = []
    if len(sys.argv) == 6:
        c_api, node = (json.loads(Path(a).read_text()) for a in sys.argv[4:6])
        extra = [("onnxruntime C API", c_api), (f"onnxruntime-node {node['onnxruntime_node']}", node)]

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
        others = [o] + [e["models"][name] for _, e in extra]
        # Each row: ours, then (theirs, speed-up) per onnxruntime witness. Latency speed-up is
        # their time / ours, throughput ours / theirs: above 1 means mdeploy is faster.
        rows.append((label, "1", "latency, criterion median (µs)", b1 / 1e3,
                     [(x["batch1"]["median_of_chunk_means_ns"] / 1e3, x["batch1"]["median_of_chunk_means_ns"] / b1) for x in others]))
        for q in ("median", "p99"):
            a = lat[name][f"{q}_ns"]
            rows.append((label, "1", f"latency, {q} per call (µs)", a / 1e3,
                         [(x["batch1"][f"{q}_ns"] / 1e3, x["batch1"][f"{q}_ns"] / a) for x in others]))
        ips_o = 1024 / (bb * 1e-9)
        rows.append((label, "1024", "throughput (images/s)", ips_o,
                     [(x["batch1024"]["images_per_s"], ips_o / x["batch1024"]["images_per_s"]) for x in others]))
        notes.append(
            f"{label}: mdeploy kernels {lat[name]['kernels']}, {lat[name]['calls']:,} calls timed; onnxruntime batch 1 via `{o['batch1']['api']}` "
            f"(plain `run`: median {o['batch1']['run']['median_ns'] / 1e3:.1f} µs, p99 {o['batch1']['run']['p99_ns'] / 1e3:.1f} µs), "
            f"{o['batch1']['calls']:,} calls; onnxruntime batch 1024 CPU time / wall time "
            f"{o['batch1024'].get('cpu_per_wall', float('nan')):.2f} (1.0: one thread kept busy; above: more threads; below: it waited for a shared core)"
        )

    def fmt(v: float) -> str:
        return f"{v:,.0f}" if v >= 1000 else f"{v:.1f}"

    titles = [f"onnxruntime {ort['onnxruntime']} (Python)"] + [t for t, _ in extra]
    print("| model | batch | metric | mdeploy | " + " | ".join(f"{t} | speed-up" for t in titles) + " |")
    print("|---|---:|---|---:|" + "---:|---:|" * len(titles))
    for label, batch, metric, a, theirs in rows:
        print(f"| {label} | {batch} | {metric} | {fmt(a)} | " + " | ".join(f"{fmt(b)} | {r:.2f}×" for b, r in theirs) + " |")
    print()
    for n in notes:
        print(f"- {n}")
    fl = ort.get("call_floor", {})
    if fl:
        print("- onnxruntime's per-call floor from Python (a graph holding one Identity, same protocol): "
              + ", ".join(f"`{api}` median {r['median_ns'] / 1e3:.1f} µs" for api, r in fl.items())
              + "; its batch-1 latencies include this")
    for title, e in extra:
        fl, cw = e.get("call_floor"), [e["models"][n]["batch1024"].get("cpu_per_wall", float("nan")) for n in ("mlp", "cnn")]
        api = e["models"]["cnn"]["batch1"].get("api", "")
        print(f"- {title}: batch 1 via {api}; per-call floor (the same Identity graph) median "
              f"{fl['median_ns'] / 1e3:.1f} µs; batch 1024 CPU time / wall time {cw[0]:.2f} (MLP), {cw[1]:.2f} (CNN)")


if __name__ == "__main__":
    main()
