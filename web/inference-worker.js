// The demo's inference, in a module Web Worker: preprocessing and the model run here, so the
// main thread only draws and never stutters. Messages are handled one at a time, in order.
//
// in:  { type: 'load', model, backend, bytes? }    → { type: 'loaded', model, backend, ... } | { type: 'error', model, ... }
//      (`bytes`: a user's own .mdm, named `model` = 'file:<name>'; otherwise `model` is a built-in name)
//      { type: 'predict', seq, width, height, data } → { type: 'result', seq, label, probs, seen, ... } | { type: 'error', seq, ... }
// out at start: { type: 'hello', models, catalog, runtime } (the package's built-in model names, with each
//      one's size and test accuracy, so the page's model switcher lists whatever the package ships).
import { Model, builtinCatalog, builtinModels, init, preprocess } from '/pkg/index.js';

let current = null; // { model: Model, name, requested, describe }

const post = (msg, transfer = []) => self.postMessage(msg, transfer);

function adapterName(a) {
  if (!a) return '';
  const parts = [a.description, a.vendor && a.architecture ? `${a.vendor} ${a.architecture}` : (a.vendor || a.architecture)]
    .filter(Boolean);
  return parts[0] ?? 'unnamed adapter';
}

/**
 * Says in words where this model runs and why, for the page's "backend" line. `noGpu` is the
 * NO_WEBGPU message when 'webgpu' was asked for and the worker fell back to the CPU.
 */
function describe(model, requested, noGpu) {
  const info = model.info();
  const cpu = `CPU SIMD (${info.cpuKernel}, ${info.variant === 'relaxed' ? 'relaxed SIMD' : 'SIMD128'})`;
  const a = info.adapter;
  if (model.backend === 'webgpu') {
    return { where: 'webgpu', text: `WebGPU: ${adapterName(a)}${a?.isFallbackAdapter ? ' (software fallback adapter)' : ''}`, fallback: false };
  }
  if (noGpu) return { where: 'cpu', text: `${cpu}: no WebGPU here, fell back to the CPU`, fallback: true };
  if (requested === 'auto') {
    if (!a) return { where: 'cpu', text: `${cpu}: no WebGPU in this browser, fell back to the CPU`, fallback: true };
    if (a.isFallbackAdapter) return { where: 'cpu', text: `${cpu}: the WebGPU adapter (${adapterName(a)}) is a software emulation, slower than the CPU`, fallback: true };
  }
  return { where: 'cpu', text: cpu, fallback: false };
}

async function load({ model: name, backend, bytes }) {
  const t0 = performance.now();
  const source = bytes ? new Uint8Array(bytes) : name;
  let model;
  let noGpu = null;
  try {
    model = await Model.load(source, { backend });
  } catch (e) {
    // Asked for WebGPU where there is none: say so and keep the page working on the CPU.
    if (e.code !== 'NO_WEBGPU') throw e;
    noGpu = e.message;
    model = await Model.load(source, { backend: 'cpu' });
  }
  // The pad makes 28×28 digits: a model that takes anything else cannot read them.
  const inputLen = model.info().inputShape.reduce((a, b) => a * b, 1);
  if (inputLen !== 784) {
    const shape = model.info().inputShape;
    model.dispose();
    throw Object.assign(new Error(`this model takes inputs of shape [${shape}], but the pad makes 28×28 digits (784 values): use an MNIST model`), { code: 'BAD_INPUT' });
  }
  current?.model.dispose();
  const d = describe(model, backend, noGpu);
  current = { model, name, requested: backend, describe: d };
  const info = model.info();
  post({
    type: 'loaded', model: name, requested: backend, backend: model.backend, backendText: d.text, fallback: d.fallback,
    noGpu, adapter: info.adapter, kernel: info.kernel, params: info.params, accuracy: info.provenance.testAccuracy,
    loadMs: performance.now() - t0,
  });
}

async function predict({ seq, width, height, data }) {
  if (!current) throw Object.assign(new Error('no model loaded yet'), { code: 'DISPOSED' });
  const t0 = performance.now();
  // The package's MNIST recipe, run once here so the page can show exactly what the model saw.
  const seen = await preprocess({ width, height, data });
  const r = await current.model.predict(seen);
  const total = performance.now() - t0;
  // The same 28×28 as bytes (ink high): what the "served" column can send to the endpoint.
  const bytes = new Uint8Array(784);
  for (let i = 0; i < 784; i++) bytes[i] = Math.round(Math.min(1, Math.max(0, seen[i])) * 255);
  const probs = new Float32Array(r.probs);
  post({
    type: 'result', seq, model: current.name, label: r.label, probs, seen, bytes, backend: r.backend,
    backendText: r.backend === 'webgpu' ? current.describe.text : (current.model.backend === 'webgpu'
      ? `CPU SIMD (this single sample; 'auto' keeps the GPU for batches)` : current.describe.text),
    ms: r.ms, totalMs: total,
  }, [probs.buffer, seen.buffer, bytes.buffer]);
}

let queue = Promise.resolve();
self.onmessage = ({ data: msg }) => {
  queue = queue.then(async () => {
    try {
      if (msg.type === 'load') await load(msg);
      else if (msg.type === 'predict') await predict(msg);
      else throw new Error(`unknown message type ${msg.type}`);
    } catch (e) {
      post({ type: 'error', for: msg.type, seq: msg.seq, model: msg.model, code: e.code ?? 'ERROR', message: e.message });
    }
  });
};

(async () => {
  try {
    const runtime = await init();
    post({ type: 'hello', models: [...builtinModels], catalog: builtinCatalog, runtime });
  } catch (e) {
    post({ type: 'error', for: 'init', code: e.code ?? 'ERROR', message: e.message });
  }
})();
