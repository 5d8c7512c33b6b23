// Shared by the serverless hosts' suites (workerd, wasmtime, trust, embedded): real test digits,
// the native reference answers, request building, answer comparison and `wasmtime serve` start/stop.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, createServer } from 'node:net';
import { deflateSync } from 'node:zlib';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const TARGET = process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache/mdeploy/target');
export const MODELS_DIR = process.env.MDEPLOY_MODELS_DIR ?? join(ROOT, 'models');
/** Probabilities may differ in the last bits between kernels (AVX2 natively, simd128 in wasm). */
export const TOLERANCE = 1e-5;

// The digits, the parity models and the f64 reference are the npm package suites' (one place).
import { bitexactRef, checkF64, DEFAULT_MODELS, f64Ref, fnv1a, parityModels, testSplit, TEST_PER_DIGIT } from '../../wasm/test/support.mjs';
export { DEFAULT_MODELS, EMBEDDED_ORDER, mnistDir, TEST_PER_DIGIT } from '../../wasm/test/support.mjs';

/**
 * `perDigit` digits of each class from the fixed test split (the last 200 of each `<d>.json`),
 * spread evenly over it (test index `d·200 + ⌊k·200/perDigit⌋`, what
 * `core/testkit/examples/reference.rs --spread` covers): `{ xs: Float32Array[] (784 each), ys:
 * number[], indices: number[] }`.
 */
export function testDigits(perDigit = 20) {
  const split = testSplit();
  const indices = [];
  for (let d = 0; d < 10; d++) {
    for (let k = 0; k < perDigit; k++) indices.push(d * TEST_PER_DIGIT + Math.floor((k * TEST_PER_DIGIT) / perDigit));
  }
  return {
    xs: indices.map((i) => split.xs.slice(i * 784, (i + 1) * 784)),
    ys: indices.map((i) => split.ys[i]),
    indices,
  };
}

/**
 * Every model of models/parity.json through the host at `base`: the 200 digits of
 * `testDigits(20)` as one KServe v2 batch, checked against the independent f64 reference
 * (`MDEPLOY_F64_REF`, written by run.sh / run-workerd.sh with core/testkit's `reference --spread 20`).
 */
export async function kserveMatchesF64(t, base) {
  const ref = f64Ref();
  const { xs, indices } = testDigits(20);
  const data = xs.flatMap((x) => Array.from(x));
  for (const model of parityModels()) {
    const r = await send(base, json('POST', `/v2/models/${model}/infer`, { inputs: [{ name: 'input', shape: [xs.length, 1, 28, 28], datatype: 'FP32', data }] }));
    if (r.status !== 200) throw new Error(`${model}: KServe v2 infer answered ${r.status}: ${r.body}`);
    const probs = JSON.parse(r.body).outputs.find((o) => o.name === 'probabilities').data;
    const { worst, checked } = checkF64(`${model} KServe v2`, ref, model, probs, indices);
    t.diagnostic(`${model}: ${indices.length} digits, max |Δp| vs the f64 reference ${worst.toExponential(2)}, argmax checked on ${checked}`);
  }
}

/**
 * Bit-exactness through a host's HTTP API: every integer model of models/bitexact.json, all 2,000
 * test digits through KServe v2 infer with the binary tensor extension both ways (FP32 in, the
 * `probabilities` bytes out: no decimal printing in between), 250 digits a request (784 KB, well
 * under the 10 MiB body limit); the FNV-1a digest of the outputs must equal the one every native
 * kernel set gave (`MDEPLOY_BITEXACT`, written by examples/native_ref.rs in run.sh /
 * run-workerd.sh). Returns `{ model: digest }`.
 */
export async function kserveBitExact(t, base) {
  const ref = bitexactRef();
  const { xs, n } = testSplit();
  const CHUNK = 250;
  const got = {};
  for (const [model, want] of Object.entries(ref)) {
    const out = new Float32Array(n * 10);
    for (let from = 0; from < n; from += CHUNK) {
      const count = Math.min(CHUNK, n - from);
      const header = new TextEncoder().encode(JSON.stringify({
        inputs: [{ name: 'input', shape: [count, 1, 28, 28], datatype: 'FP32', parameters: { binary_data_size: count * 784 * 4 } }],
        outputs: [{ name: 'probabilities', parameters: { binary_data: true } }],
      }));
      const tensor = new Uint8Array(xs.buffer, xs.byteOffset + from * 784 * 4, count * 784 * 4);
      const body = new Uint8Array(header.length + tensor.length);
      body.set(header);
      body.set(tensor, header.length);
      const res = await fetch(`${base}/v2/models/${model}/infer`, {
        method: 'POST', body, headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
      });
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (res.status !== 200) throw new Error(`${model}: KServe v2 binary infer answered ${res.status}: ${new TextDecoder().decode(bytes).slice(0, 300)}`);
      const jsonLen = Number(res.headers.get('inference-header-content-length'));
      const answer = JSON.parse(new TextDecoder().decode(bytes.subarray(0, jsonLen)));
      const o = answer.outputs.find((x) => x.name === 'probabilities');
      if (o?.parameters?.binary_data_size !== count * 10 * 4) throw new Error(`${model}: expected ${count * 10 * 4} binary output bytes, the answer says ${JSON.stringify(answer).slice(0, 300)}`);
      const raw = bytes.slice(jsonLen, jsonLen + count * 40);
      const dv = new DataView(raw.buffer);
      for (let i = 0; i < count * 10; i++) out[from * 10 + i] = dv.getFloat32(i * 4, true);
    }
    got[model] = fnv1a(out);
    t.diagnostic(`${model}: ${n} digits, output digest ${got[model]}, native ${want.digest}`);
    if (got[model] !== want.digest) throw new Error(`${model}: the host's output bits differ from native (digest ${got[model]} vs ${want.digest} on every native kernel set)`);
  }
  return got;
}

/** 784 floats in 0..1 → 784 grey bytes (ink high), the raw-bytes body of POST /predict. */
export function toBytes(x) {
  return Uint8Array.from(x, (v) => Math.round(Math.min(1, Math.max(0, v)) * 255));
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  Buffer.from(data).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
/** A greyscale 8-bit PNG (for POST /predict), encoded here so no image library is needed. */
export function pngGray(width, height, pixels) {
  const raw = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) Buffer.from(pixels.subarray(y * width, (y + 1) * width)).copy(raw, y * (width + 1) + 1);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  return new Uint8Array(Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]));
}

/** A request as plain data: `{ method, path, contentType, body: Uint8Array, expect?: status }`. */
export function req(method, path, body = '', contentType = null, expect = undefined) {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  return { method, path, contentType, body: bytes, expect };
}
export const json = (method, path, value, expect) =>
  req(method, path, typeof value === 'string' ? value : JSON.stringify(value), 'application/json', expect);

/** Sends one request to `base` (e.g. http://127.0.0.1:PORT) → `{ status, contentType, headers, body }`. */
export async function send(base, r) {
  const init = { method: r.method, headers: {} };
  if (r.contentType !== null) init.headers['content-type'] = r.contentType;
  if (r.method !== 'GET' && r.method !== 'HEAD') init.body = r.body;
  const res = await fetch(base + r.path, init);
  const body = await res.text();
  return { status: res.status, contentType: (res.headers.get('content-type') ?? '').split(';')[0], headers: res.headers, body };
}

/**
 * The same requests answered by mdeploy_serve::Server compiled natively
 * (wasm/server/examples/native_answers.rs), serving `models` ({ name: path }) as version "1".
 */
// The Worker's default models, in its order (models/defaults.json, written into worker/cloudflare/src/index.js).
export const WORKER_MODELS = Object.fromEntries(DEFAULT_MODELS.map((m) => [m, join(MODELS_DIR, `${m}.mdm`)]));

export function nativeAnswers(requests, models = WORKER_MODELS) {
  const dir = mkdtempSync(join(tmpdir(), 'mdeploy-native-'));
  try {
    const inPath = join(dir, 'requests.json');
    const outPath = join(dir, 'answers.json');
    writeFileSync(inPath, JSON.stringify(requests.map((r) => ({
      method: r.method, path: r.path, contentType: r.contentType, bodyHex: Buffer.from(r.body).toString('hex'),
    }))));
    execFileSync('cargo', ['run', '--release', '-q', '-p', 'mdeploy-wasm-server', '--example', 'native_answers', '--',
      inPath, outPath, ...Object.entries(models).map(([n, p]) => `${n}=${p}`)], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    return JSON.parse(readFileSync(outPath, 'utf8'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Throws unless `got` and `want` are the same JSON value, numbers within `tol` (labels, names,
 * shapes, error codes and messages must match exactly: they are strings or integers).
 */
export function assertClose(got, want, tol = TOLERANCE, where = '$') {
  if (typeof want === 'number') {
    if (typeof got !== 'number') throw new Error(`${where}: expected a number ${want}, got ${JSON.stringify(got)}`);
    if (Number.isInteger(want) && Math.abs(want) > 1) {
      if (got !== want) throw new Error(`${where}: expected ${want}, got ${got}`);
    } else if (!(Math.abs(got - want) <= tol)) {
      throw new Error(`${where}: ${got} differs from ${want} by more than ${tol}`);
    }
    return;
  }
  if (Array.isArray(want)) {
    if (!Array.isArray(got) || got.length !== want.length) throw new Error(`${where}: expected an array of ${want.length}, got ${JSON.stringify(got)?.slice(0, 200)}`);
    want.forEach((w, i) => assertClose(got[i], w, tol, `${where}[${i}]`));
    return;
  }
  if (want !== null && typeof want === 'object') {
    if (got === null || typeof got !== 'object' || Array.isArray(got)) throw new Error(`${where}: expected an object, got ${JSON.stringify(got)?.slice(0, 200)}`);
    const gk = Object.keys(got).sort();
    const wk = Object.keys(want).sort();
    if (gk.join() !== wk.join()) throw new Error(`${where}: keys ${gk.join(',')} differ from ${wk.join(',')}`);
    for (const k of wk) assertClose(got[k], want[k], tol, `${where}.${k}`);
    return;
  }
  if (got !== want) throw new Error(`${where}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
}

/**
 * A host's answer equals the native one: status, content type, and body (JSON: numbers within
 * tol). `GET /v2`'s `kernel` names the host's kernel set (e.g. x86_64-avx2 natively, wasm-simd128
 * in wasm), so it is the one field allowed to differ; `hostKernel` says what it must be instead.
 */
export function assertSameAnswer(got, want, label, hostKernel = 'wasm-simd128') {
  if (got.status !== want.status) throw new Error(`${label}: status ${got.status} but natively ${want.status} (${got.body.slice(0, 300)})`);
  if (got.contentType !== want.contentType) throw new Error(`${label}: content type ${got.contentType} but natively ${want.contentType}`);
  if (want.contentType === 'application/json') {
    try {
      const g = JSON.parse(got.body);
      const w = JSON.parse(want.body);
      if (w !== null && typeof w === 'object' && typeof w.kernel === 'string') {
        if (g.kernel !== hostKernel) throw new Error(`kernel ${JSON.stringify(g.kernel)}, expected ${hostKernel}`);
        g.kernel = w.kernel;
      }
      assertClose(g, w);
    } catch (e) {
      throw new Error(`${label}: ${e.message}`);
    }
  } else if (got.body !== want.body) {
    throw new Error(`${label}: body differs from the native answer`);
  }
}

/**
 * POSTs a body of which only the first `send` bytes are written, over a raw socket, then waits for
 * the answer. This is how a test shows that a server refused a body without reading all of it:
 * with `contentLength` above the limit and `send` = 0, it must answer from the header alone; with
 * `chunked` (no Content-Length) and `send` just past the limit, it must answer although the
 * upload has not ended. Writing more than the server reads would make it close the connection
 * with unread data, i.e. a TCP reset that can destroy its answer before the client reads it (what
 * fetch() then reports as a failed request).
 * → `{ status, contentType, body }`; rejects if no answer comes within `timeoutMs`.
 */
export function rawPost(base, path, { contentLength = null, chunked = false, send = 0, timeoutMs = 10_000 } = {}) {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(port), hostname);
    let got = Buffer.alloc(0);
    let done = false;
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    function finish(err) {
      if (done) return;
      const text = got.toString('latin1');
      const head = text.indexOf('\r\n\r\n');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      const cl = head < 0 ? null : /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, head));
      const body = head < 0 ? null : got.subarray(head + 4);
      const complete = m !== null && body !== null && (cl === null ? err !== null : body.length >= Number(cl[1]));
      if (!complete && err === null) return; // wait for the rest
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (!complete) return reject(new Error(`no complete HTTP answer (${err.message}); got ${JSON.stringify(text.slice(0, 200))}`));
      const ct = /\r\ncontent-type: *([^;\r]+)/i.exec(text.slice(0, head));
      resolve({ status: Number(m[1]), contentType: ct === null ? '' : ct[1].trim(), body: body.toString('utf8') });
    }
    sock.on('data', (d) => { got = Buffer.concat([got, d]); finish(null); });
    sock.on('error', (e) => finish(e));
    sock.on('close', () => finish(new Error('connection closed')));
    sock.on('connect', () => {
      sock.write(`POST ${path} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/octet-stream\r\n` +
        (chunked ? 'Transfer-Encoding: chunked\r\n' : `Content-Length: ${contentLength}\r\n`) + '\r\n');
      const piece = Buffer.alloc(1 << 20);
      let sent = 0;
      const pump = () => {
        while (!done && sent < send) {
          const part = piece.subarray(0, Math.min(piece.length, send - sent));
          sent += part.length;
          const ok = chunked ? sock.write(Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')])) : sock.write(part);
          if (!ok) return void sock.once('drain', pump);
        }
      };
      pump();
    });
  });
}

/** A free loopback port (bound, read and released: the caller binds it next). */
export const freePort = () => new Promise((resolve, reject) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  s.on('error', reject);
});

/**
 * Starts the stock `wasmtime serve` on the component `wasm` on a free loopback port, with
 * `extraArgs` before the component (e.g. a mounted model folder); resolves once `healthPath`
 * answers 200, and fails with the server's output if it exits first or is not ready in 60 s.
 * Returns `{ proc, url, log() }`; stop it with `stopServe(proc)`.
 */
export async function startServe(wasm, extraArgs = [], { onLog, healthPath = '/v2/health/live' } = {}) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const p = spawn('wasmtime', ['serve', '-Scli', '--addr', `127.0.0.1:${port}`, ...extraArgs, wasm], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const onData = (d) => { log += d; onLog?.(d); };
  p.stdout.on('data', onData);
  p.stderr.on('data', onData);
  const t0 = Date.now();
  for (;;) {
    if (p.exitCode !== null) throw new Error(`wasmtime serve exited (${p.exitCode}):\n${log}`);
    try {
      if ((await fetch(`${url}${healthPath}`)).status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() - t0 > 60_000) {
      await stopServe(p);
      throw new Error(`wasmtime serve not ready after 60 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc: p, url, log: () => log };
}

/** SIGTERM to a `startServe` process, resolved once it has exited. */
export async function stopServe(p) {
  if (p && p.exitCode === null) {
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await gone;
  }
}
