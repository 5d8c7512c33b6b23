// Module Web Worker for the browser suite: the package imported inside a worker, the way a page
// keeps inference off its main thread. Messages: { model, backend, from, count } → the batch's
// probabilities (as a transferable Float32Array), the backend used and the model's info().
import { Model } from '/index.js';

self.onmessage = async ({ data: { model, backend, from, count } }) => {
  try {
    const all = new Float32Array(await (await fetch('/split.bin')).arrayBuffer());
    const m = await Model.load(model, { backend, maxBatch: 256 });
    const r = await m.predictBatch(all.subarray(from * 784, (from + count) * 784), count);
    const single = await m.predict(all.subarray(from * 784, (from + 1) * 784));
    const probs = new Float32Array(r.probs);
    self.postMessage({ probs, backend: r.backend, singleLabel: single.label, kernel: m.info().kernel }, [probs.buffer]);
    m.dispose();
  } catch (e) {
    self.postMessage({ error: { code: e.code, message: e.message } });
  }
};
