// The three runtimes behind one interface, so the bench times them the same way:
//   const m = await RUNTIMES[id].load('mnist-cnn');
//   m.run(floats, n) → Float32Array(n × 10) of probabilities, or a Promise of it (onnxruntime-web
//   only has an async run); m.dispose().
// Every run takes the user's Float32Array and returns a fresh result array, so each call includes
// the copy into the runtime's wasm memory and the copy out, as in an application.
// Packages are imported inside load(), so a cold start measures import → first prediction.
// This file runs in Node and in the browser: `env` supplies what differs (runtimes.mjs for Node,
// browser.html for Chromium):
//   env.importMdeploy(), env.importOrt(), env.importTfjs() → the packages' modules
//   env.tfjsSetup?(backendModule)  (browser: setWasmPaths)
//   env.readOut(file) → Promise<Uint8Array> of a file in bench/wasm/out/
export function makeRuntimes(env) {
  // maxBatch 256: what bench/wasm-node.mjs uses; larger batches run in chunks of 256.
  async function loadMdeploy(name) {
    const { Model } = await env.importMdeploy();
    const m = await Model.load(name, { maxBatch: 256 });
    return {
      run: (xs, n) => (n === 1 ? m.predictSync(xs).probs : m.predictBatchSync(xs, n).probs),
      // The documented Promise API, timed too (bench.mjs notes it) since onnxruntime-web is async-only.
      runAsync: async (xs) => (await m.predict(xs)).probs,
      dispose: () => m.dispose(),
    };
  }

  // onnxruntime-web, wasm execution provider only, one thread (no worker), SIMD (the only CPU build
  // 1.30 ships). Loads the ONNX graph `mdeploy export` writes (bench/wasm/export_models.py).
  async function loadOrt(name) {
    const ort = await env.importOrt();
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.proxy = false;
    const session = await ort.InferenceSession.create(await env.readOut(`${name}.onnx`), {
      executionProviders: ['wasm'],
      graphOptimizationLevel: 'all',
    });
    const [inName] = session.inputNames;
    const [outName] = session.outputNames;
    return {
      run: async (xs, n) => {
        const r = await session.run({ [inName]: new ort.Tensor('float32', xs, [n, 1, 28, 28]) });
        const data = r[outName].data;
        r[outName].dispose?.();
        return data;
      },
      dispose: () => session.release(),
    };
  }

  let tfReady;
  async function tfjs() {
    tfReady ??= (async () => {
      const [tf, backend] = await env.importTfjs();
      await env.tfjsSetup?.(backend);
      // One thread: the threaded build needs SharedArrayBuffer + workers; force the single-thread
      // SIMD build (SIMD stays auto-detected: Node ≥ 20 has it). Checked after ready() below.
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
      if (!(await tf.setBackend('wasm'))) throw new Error('tfjs: the wasm backend did not initialise');
      await tf.ready();
      if (!(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'))) throw new Error('tfjs: wasm SIMD not detected');
      return tf;
    })();
    return tfReady;
  }

  // tfjs-core ops from the weights written by export_tfjs.py (already NHWC/HWIO, Flatten rows
  // permuted). A ReLU right after a Conv2d or Dense is fused into it (tf.fused.*), as tfjs-layers
  // does, so the peer runs its fastest form of the same network.
  async function loadTfjs(name) {
    const tf = await tfjs();
    const meta = JSON.parse(new TextDecoder().decode(await env.readOut(`${name}.tfjs.json`)));
    const buf = await env.readOut(`${name}.tfjs.bin`);
    const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    const weights = [];
    const t = ({ shape, offset }) => {
      const v = tf.tensor(all.subarray(offset, offset + shape.reduce((a, b) => a * b, 1)), shape);
      weights.push(v);
      return v;
    };
    const ops = [];
    const L = meta.layers;
    for (let i = 0; i < L.length; i++) {
      const l = L[i];
      const relu = L[i + 1]?.kind === 'Relu';
      if (l.kind === 'Conv2d') {
        const filter = t(l.weight), bias = t(l.bias);
        const [ph, pw] = l.padding;
        const pad = ph === 0 && pw === 0 ? 'valid' : [[0, 0], [ph, ph], [pw, pw], [0, 0]];
        ops.push((x) => tf.fused.conv2d({ x, filter, bias, strides: l.stride, pad, activation: relu ? 'relu' : 'linear' }));
        if (relu) i++;
      } else if (l.kind === 'Dense') {
        const w = t(l.weight), bias = t(l.bias);
        ops.push((x) => tf.fused.matMul({ a: x, b: w, bias, activation: relu ? 'relu' : 'linear' }));
        if (relu) i++;
      } else if (l.kind === 'MaxPool2d') {
        ops.push((x) => tf.maxPool(x, l.kernel, l.stride, 'valid'));
      } else if (l.kind === 'Flatten') {
        ops.push((x) => tf.reshape(x, [x.shape[0], -1]));
      } else if (l.kind === 'Relu') {
        ops.push((x) => tf.relu(x));
      } else if (l.kind === 'Softmax') {
        ops.push((x) => tf.softmax(x));
      } else {
        throw new Error(`${name}: layer ${l.kind} not mapped to tfjs`);
      }
    }
    const [c, h, w] = meta.inputShape;
    if (c !== 1) throw new Error(`${name}: ${c} input channels; NCHW → NHWC of the input is only free for 1 channel`);
    return {
      run: (xs, n) => {
        const y = tf.tidy(() => ops.reduce((x, op) => op(x), tf.tensor4d(xs, [n, h, w, c])));
        const data = y.dataSync();
        y.dispose();
        return data;
      },
      dispose: () => weights.forEach((v) => v.dispose()),
    };
  }

  return {
    mdeploy: { label: 'mdeploy-wasm', load: loadMdeploy },
    ort: { label: 'onnxruntime-web', load: loadOrt },
    tfjs: { label: 'tfjs-wasm', load: loadTfjs },
  };
}
