"""Per-request page faults of `wasmtime serve`, by kind, instruction and place (faults.sh).

Usage: python3 faults.py TRACE MAPS PERF_MAP WASMTIME_BINARY REQUESTS

TRACE: `perf script -F trace` of exceptions:page_fault_user; MAPS: /proc/PID/maps snapshots
separated by "----"; PERF_MAP: wasmtime's /tmp/perf-PID.map (JIT code); REQUESTS: answered in
the recording.
"""

import bisect
import collections
import os
import re
import subprocess
import sys

trace_path, maps_path, perfmap_path, wasmtime_bin, requests = sys.argv[1:6]
requests = max(int(requests), 1)

GiB = 1 << 30


def parse_maps(text):
    out = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        out.append((lo, hi, parts[1], int(parts[2], 16), parts[5] if len(parts) > 5 else ""))
    return out


snapshots = [parse_maps(s) for s in open(maps_path).read().split("----") if s.strip()]

# Instance memories: the run of accessible VMAs around each mapping of the memory image memfd.
memories = {}  # base -> (image_start_offset, image_end_offset, accessible_end_offset)
for vmas in snapshots:
    for k, (lo, hi, perm, off, name) in enumerate(vmas):
        if "wasm-memory-image" not in name:
            continue
        j = k
        while j > 0 and vmas[j - 1][1] == vmas[j][0] and vmas[j - 1][2].startswith("rw"):
            j -= 1
        base = vmas[j][0]
        e = k
        while e + 1 < len(vmas) and vmas[e + 1][0] == vmas[e][1] and vmas[e + 1][2].startswith("rw"):
            e += 1
        memories[base] = (lo - base, hi - base, vmas[e][1] - base)
bases = sorted(memories)
all_vmas = sorted({v for s in snapshots for v in s})


def place(addr):
    i = bisect.bisect_right(bases, addr) - 1
    if i >= 0 and addr - bases[i] < 4 * GiB:
        base = bases[i]
        img_lo, img_hi, _ = memories[base]
        off = addr - base
        if off < img_lo:
            region = "linear memory, below the image (stack; anonymous)"
        elif off < img_hi:
            region = "linear memory, the memory image (copy-on-write)"
        else:
            region = "linear memory, past the image (heap grown per request; anonymous)"
        return region, off
    for lo, hi, perm, _, name in all_vmas:
        if lo <= addr < hi:
            return "host: " + (name.split("/")[-1] if name else f"anonymous {perm}"), None
    return "host: unmapped when sampled (short-lived: fiber stack, instance data)", None


# Symbols: JIT code from the perf map, wasmtime's own from its symbol table.
syms = []
for line in open(perfmap_path, errors="replace"):
    parts = line.split(None, 2)
    if len(parts) == 3:
        syms.append((int(parts[0], 16), int(parts[1], 16), "guest: " + parts[2].strip()))
load = next((lo - off for lo, hi, perm, off, name in all_vmas if name.endswith("/wasmtime") and off == 0), None)
if load is not None:
    nm = subprocess.run(["nm", "-C", "--defined-only", "-S", wasmtime_bin], capture_output=True, text=True).stdout
    for line in nm.splitlines():
        p = line.split(None, 3)
        if len(p) == 4 and p[2] in "tTwW":
            syms.append((load + int(p[0], 16), int(p[1], 16), "host: " + p[3][:90]))
syms.sort()
starts = [s[0] for s in syms]


def symbol(ip):
    i = bisect.bisect_right(starts, ip) - 1
    if i >= 0 and ip < syms[i][0] + max(syms[i][1], 1):
        return syms[i][2]
    for lo, hi, perm, _, name in all_vmas:
        if lo <= ip < hi:
            return "host: " + (name.split("/")[-1] if name else "anonymous") + " (no symbol)"
    return "?"


def kind(code):
    if code & 0x10:
        return "instruction fetch"
    if code & 2:
        return "write, page mapped read-only before (copy-on-write)" if code & 1 else "write, page not mapped yet"
    return "read"


pat = re.compile(r"address=(0x[0-9a-f]+)\s+ip=(0x[0-9a-f]+)\s+error_code=(0x[0-9a-f]+)")
by_kind, by_sym, by_place, by_page, by_4k = (collections.Counter() for _ in range(5))
first_addr = {}  # 4 KiB page key -> the lowest faulting offset seen in it (which static or block)
total = 0
for line in open(trace_path):
    m = pat.search(line)
    if not m:
        continue
    addr, ip, code = (int(x, 16) for x in m.groups())
    total += 1
    k = kind(code)
    region, off = place(addr)
    by_kind[k] += 1
    by_sym[(symbol(ip), k.split(",")[0])] += 1
    by_place[(region, k.split(",")[0])] += 1
    if off is not None:
        by_page[(off // 65536, k.split(",")[0])] += 1
        key = (off // 4096, k, symbol(ip))
        by_4k[key] += 1
        first_addr[key] = min(first_addr.get(key, off), off)

print(f"{total} user page faults over {requests} requests: {total / requests:.1f} per request")
if bases:
    lo, hi, end = memories[bases[0]]
    print(f"instance memory: image at [{lo:#x}, {hi:#x}) ({(hi - lo) / 1024:.0f} KiB), accessible to {end:#x} ({end / 1048576:.2f} MiB)")
print()
print("| kind | faults / request |")
print("|---|---|")
for k, n in by_kind.most_common():
    print(f"| {k} | {n / requests:.2f} |")
print()
print("| where (place) | kind | faults / request |")
print("|---|---|---|")
for (r, k), n in by_place.most_common():
    print(f"| {r} | {k} | {n / requests:.2f} |")
print()
print("| who (faulting instruction) | kind | faults / request |")
print("|---|---|---|")
for (s, k), n in by_sym.most_common(25):
    if n / requests >= 0.05:
        print(f"| {s} | {k} | {n / requests:.2f} |")
print()
print("| linear memory, 64 KiB block at offset | kind | faults / request |")
print("|---|---|---|")
for (b, k), n in sorted(by_page.items()):
    if n / requests >= 0.05:
        print(f"| {b * 64:>6} KiB | {k} | {n / requests:.2f} |")

# FAULTS_PAGES=1: every 4 KiB page of linear memory that faults, with kind and instruction (to
# tell which static or heap block a request writes; match the offsets against the symbol
# addresses of the component's core module, e.g. `wasm-tools print` or `wasm-objdump -x`).
if os.environ.get("FAULTS_PAGES") == "1":
    print()
    print("| linear memory page (offset) | faulting address | kind | who | faults / request |")
    print("|---|---|---|---|---|")
    for (pg, k, s), n in sorted(by_4k.items()):
        if n / requests >= 0.05:
            print(f"| {pg * 4096:#x} | {first_addr[(pg, k, s)]:#x} | {k} | {s[:80]} | {n / requests:.2f} |")
