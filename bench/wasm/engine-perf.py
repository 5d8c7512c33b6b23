"""Classifies `perf script` samples of one Node process between CLOCK_MONOTONIC marks (bench/wasm/engine-perf.mjs).
usage: engine-perf.py perf.data <engine start ns> <engine end ns> <first run end ns>"""
import collections, re, subprocess, sys

data, a, b, c = sys.argv[1], *map(int, sys.argv[2:5])
out = subprocess.run(['perf', 'script', '-i', data, '-F', 'tid,time,ip,sym,dso', '--ns'], capture_output=True, text=True).stdout
blocks = [blk.strip() for blk in out.split('\n\n') if blk.strip()]
heads = [re.match(r'(\d+)\s+(\d+)\.(\d+):', blk) for blk in blocks]
main = min(int(h.group(1)) for h in heads if h)  # the process's first thread is its main thread
windows = {'Engine': (a, b), 'first run': (b, c)}
cats = {w: collections.Counter() for w in windows}
for blk, h in zip(blocks, heads):
    if not h:
        continue
    t = int(h.group(2)) * 10**9 + int(h.group(3))
    w = next((k for k, (lo, hi) in windows.items() if lo <= t < hi), None)
    if w is None:
        continue
    frames = [l.strip().split(' ', 1)[-1] for l in blk.split('\n')[1:]]
    stack = '\n'.join(frames)
    thread = 'main' if int(h.group(1)) == main else 'background'
    # Why these patterns: V8's optimizing wasm compiler lives in v8::internal::compiler (TurboFan),
    # the baseline one in wasm::Liftoff*; lazy compiles enter through CompileLazy.
    if re.search(r'compiler::|Turbofan|TurboFan', stack):
        kind = 'TurboFan'
    elif re.search(r'Liftoff|CompileLazy|WasmCompilationUnit|wasm::.*Compil', stack):
        kind = 'Liftoff (lazy compile)'
    elif frames and 'kallsyms' in frames[0]:
        kind = 'kernel'
    elif frames and ('[unknown]' in frames[0] or 'wasm-function' in frames[0] or '/tmp/perf-' in frames[0]):
        kind = 'generated code'
    else:
        kind = 'other native'
    cats[w][f'{thread}: {kind}'] += 1
for w, (lo, hi) in windows.items():
    n = sum(cats[w].values())
    print(f'{w}: {n} samples at 25 kHz, {(hi - lo) / 1e6:.1f} ms wall')
    for k, v in cats[w].most_common():
        print(f'  {100 * v / max(1, n):5.1f} %  {k}')
