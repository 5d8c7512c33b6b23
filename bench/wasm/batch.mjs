// A batch of real MNIST test digits for the Node benches: up to 200 per class from the end of
// each class's file (the test split's digits), classes in order, n × 784 floats.
import { readFile } from 'node:fs/promises';
import { mnistDir } from '../../wasm/test/support.mjs';

export async function digitBatch(n) {
  const xs = new Float32Array(n * 784);
  for (let d = 0, at = 0; d < 10 && at < n; d++) {
    const { data } = JSON.parse(await readFile(`${mnistDir()}/${d}.json`, 'utf8'));
    const take = Math.min(200, n - at);
    xs.set(data.slice(data.length - 200 * 784, data.length - (200 - take) * 784), at * 784);
    at += take;
  }
  return xs;
}
