// The three runtimes in Node (see runtimes-core.mjs for the shared interface and the models).
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { makeRuntimes } from './runtimes-core.mjs';

export const OUT = fileURLToPath(new URL('./out/', import.meta.url));
// MDEPLOY_BENCH_INDEX: another entry file beside wasm/index.js (A/B of a change to it, same dist/).
const MDEPLOY = new URL(`../../wasm/${process.env.MDEPLOY_BENCH_INDEX ?? 'index.js'}`, import.meta.url).href;

export const RUNTIMES = makeRuntimes({
  importMdeploy: () => import(MDEPLOY),
  importOrt: () => import('onnxruntime-web'),
  importTfjs: () => Promise.all([import('@tensorflow/tfjs-core'), import('@tensorflow/tfjs-backend-wasm')]),
  readOut: async (file) => new Uint8Array(await readFile(`${OUT}${file}`)),
});

export function pkgVersion(spec) {
  const url = spec === 'mdeploy-wasm' ? new URL('../../wasm/package.json', import.meta.url) : new URL(`./node_modules/${spec}/package.json`, import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')).version;
}
