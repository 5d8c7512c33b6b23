// A user's app as Vite bundles it: the package imported by name, its .wasm and .mdm assets found
// through `new URL('./…', import.meta.url)` and emitted by the bundler. test/vite.test.mjs builds
// this, serves dist/ and checks the answers on real digits posted to window.mdeployRun.
import { Model } from 'mdeploy-wasm';

window.mdeployRun = async (xs, n) => {
  const m = await Model.load('mnist-cnn', { backend: 'cpu' });
  const r = await m.predictBatch(new Float32Array(xs), n);
  const out = { probs: Array.from(r.probs), backend: r.backend };
  m.dispose();
  return out;
};
window.mdeployReady = true;
