// Parity and warm timings, shared by bench.mjs (Node) and browser.html (Chromium).
export const MODELS = ['mnist-mlp', 'mnist-cnn'];
export const IDS = ['mdeploy', 'ort', 'tfjs'];
export const TOL = 1e-4;
export const ROUNDS = 2;

const maybeAwait = (r) => (r && typeof r.then === 'function' ? r : Promise.resolve(r));
export const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const argmax = (v, off) => {
  let b = 0;
  for (let i = 1; i < 10; i++) if (v[off + i] > v[off + b]) b = i;
  return b;
};

// Loads every runtime × model, runs all n digits as one batch and the batch-1 path on the first
// 200, and compares each runtime with mdeploy-wasm. Returns { ok, parity, loaded }.
export async function checkParity(RUNTIMES, { xs, ys, n }, log = () => {}) {
  const parity = {};
  let ok = true;
  const loaded = {};
  for (const name of MODELS) {
    parity[name] = {};
    const outs = {};
    for (const id of IDS) {
      const m = await RUNTIMES[id].load(name);
      loaded[`${id}/${name}`] = m;
      outs[id] = Float32Array.from(await maybeAwait(m.run(xs, n)));
      if (outs[id].length !== n * 10) throw new Error(`${id} ${name}: ${outs[id].length} outputs for ${n} digits`);
      // The batch-1 path too, on the first 200 digits: it is the one timed.
      for (let i = 0; i < 200; i++) {
        const p = await maybeAwait(m.run(xs.subarray(i * 784, (i + 1) * 784), 1));
        for (let k = 0; k < 10; k++) {
          if (Math.abs(p[k] - outs[id][i * 10 + k]) > TOL) throw new Error(`${id} ${name}: digit ${i}: batch-1 and batch-${n} results differ (class ${k}: ${p[k]} vs ${outs[id][i * 10 + k]})`);
        }
      }
    }
    const ref = outs.mdeploy;
    for (const id of IDS) {
      let maxDiff = 0, agree = 0, correct = 0;
      const disagree = [];
      for (let i = 0; i < n; i++) {
        for (let k = 0; k < 10; k++) maxDiff = Math.max(maxDiff, Math.abs(outs[id][i * 10 + k] - ref[i * 10 + k]));
        const a = argmax(outs[id], i * 10), r = argmax(ref, i * 10);
        if (a === r) agree++;
        else disagree.push(i);
        if (a === ys[i]) correct++;
      }
      const good = agree === n && maxDiff <= TOL;
      ok &&= good;
      parity[name][id] = { maxAbsDiff: maxDiff, argmaxAgree: agree, accuracy: correct / n, ok: good, disagree: disagree.slice(0, 10) };
      log(`parity ${name} ${RUNTIMES[id].label}: max |Δp| vs mdeploy-wasm ${maxDiff.toExponential(1)}, argmax ${agree}/${n}, accuracy ${(100 * correct / n).toFixed(2)} % ${good ? 'ok' : 'FAIL'}`);
    }
  }
  return { ok, parity, loaded };
}

async function timeBatch1(run, xs, n) {
  for (let i = 0; i < 500; i++) await maybeAwait(run(xs.subarray((i % n) * 784, (i % n + 1) * 784), 1));
  const lat = [];
  for (let i = 0; i < n; i++) {
    const x = xs.subarray(i * 784, (i + 1) * 784);
    const t0 = performance.now();
    await maybeAwait(run(x, 1));
    lat.push(performance.now() - t0);
  }
  const meanUs = (1000 * lat.reduce((a, b) => a + b, 0)) / n;
  lat.sort((a, b) => a - b);
  return { medianUs: 1000 * quantile(lat, 0.5), p99Us: 1000 * quantile(lat, 0.99), meanUs, calls: n };
}

// Whole calls of B digits (cycling through the test split), repeated for at least `minMs`.
// `cpuUsage` (Node's process.cpuUsage, absent in browsers): CPU time / wall time ≈ 1 shows the
// runtime stayed on one thread.
async function timeBatch(m, B, minMs, xs, n, cpuUsage) {
  const starts = [];
  for (let s = 0; s + B <= n; s += B) starts.push(s);
  const call = (j) => maybeAwait(m.run(xs.subarray(starts[j % starts.length] * 784, (starts[j % starts.length] + B) * 784), B));
  for (let j = 0; j < 3; j++) await call(j);
  let calls = 0;
  const cpu0 = cpuUsage?.();
  const t0 = performance.now();
  while (calls < 3 || performance.now() - t0 < minMs) await call(calls++);
  const ms = performance.now() - t0;
  const cpu = cpuUsage?.(cpu0);
  return { imagesPerSecond: (calls * B * 1000) / ms, msPerCall: ms / calls, calls, cpuOverWall: cpu ? (cpu.user + cpu.system) / 1000 / ms : null };
}

// ROUNDS rounds, runtimes interleaved within each, and the better round per metric: the machine is
// shared, and a neighbour's burst should not decide a ratio. Disposes the models at the end.
export async function timeWarm(RUNTIMES, loaded, { xs, n }, { log = () => {}, cpuUsage } = {}) {
  const better = (a, b, key, lower) => (!a ? b : (lower ? b[key] < a[key] : b[key] > a[key]) ? b : a);
  const warm = {};
  const mdeployAsync = {};
  for (const name of MODELS) {
    warm[name] = Object.fromEntries(IDS.map((id) => [id, {}]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const id of IDS) {
        const m = loaded[`${id}/${name}`];
        const w = warm[name][id];
        const b1 = await timeBatch1(m.run, xs, n);
        w.batch1 = better(w.batch1, b1, 'medianUs', true);
        w.batch1p99 = better(w.batch1p99, b1, 'p99Us', true);
        w.batch1mean = better(w.batch1mean, b1, 'meanUs', true);
        w.batch64 = better(w.batch64, await timeBatch(m, 64, 1000, xs, n, cpuUsage), 'imagesPerSecond', false);
        w.batch1024 = better(w.batch1024, await timeBatch(m, 1024, 2000, xs, n, cpuUsage), 'imagesPerSecond', false);
        if (m.runAsync) mdeployAsync[name] = better(mdeployAsync[name], await timeBatch1(m.runAsync, xs, n), 'medianUs', true);
        log(`timed ${name} ${RUNTIMES[id].label}, round ${round + 1}: batch 1 ${b1.medianUs.toFixed(1)} µs, batch 64 ${w.batch64.imagesPerSecond.toFixed(0)}/s, batch 1024 ${w.batch1024.imagesPerSecond.toFixed(0)}/s (best so far)`);
      }
    }
  }
  for (const name of MODELS) for (const id of IDS) loaded[`${id}/${name}`].dispose();
  return { warm, mdeployAsync };
}
