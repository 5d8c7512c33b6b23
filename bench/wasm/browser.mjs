// mdeploy-wasm vs onnxruntime-web vs tfjs-wasm in headless Chromium (optional; run.sh runs it
// when a Chromium is found). Serves the repository on 127.0.0.1, opens browser.html in a fresh
// headless Chromium per measurement, and reads the result the page POSTs back.
//   CHROMIUM=/usr/bin/chromium node bench/wasm/browser.mjs      → markdown on stdout, out/browser.json
// The page is served cross-origin isolated (COOP/COEP) so performance.now() is as fine as Chromium
// allows (5 µs); the runtimes are still asked for one thread each.
import { writeFileSync } from 'node:fs';
import { mnistDir } from '../../wasm/test/support.mjs';
import { serveRepo } from './browser-serve.mjs';
import { IDS, MODELS, ROUNDS, quantile } from './measure.mjs';
import { OUT, pkgVersion } from './runtimes.mjs';

const LABEL = { mdeploy: 'mdeploy-wasm', ort: 'onnxruntime-web', tfjs: 'tfjs-wasm' };
const server = await serveRepo(mnistDir());
const PAGE = '/bench/wasm/browser.html';
const visit = (query, timeoutMs) => server.visit(`${PAGE}?${query}`, timeoutMs);

try {
  const w = await visit('mode=warm', 600_000);
  if (w.parityFailed) {
    writeFileSync(`${OUT}browser-parity.json`, JSON.stringify(w, null, 2));
    console.error(w.logs.join('\n'));
    console.error(`browser.mjs: parity FAILED in Chromium (details in ${OUT}browser-parity.json); no speed reported`);
    process.exitCode = 1;
  } else {
    for (const l of w.logs) console.error(`chromium: ${l}`);
    const cold = {};
    for (const name of MODELS) {
      cold[name] = Object.fromEntries(IDS.map((id) => [id, []]));
      for (let r = 0; r < 5; r++) for (const id of IDS) cold[name][id].push((await visit(`mode=cold&rt=${id}&model=${name}`, 60_000)).importToFirstPrediction);
      for (const id of IDS) cold[name][id] = quantile(cold[name][id].sort((a, b) => a - b), 0.5);
    }
    writeFileSync(`${OUT}browser.json`, JSON.stringify({ ...w, cold }, null, 2));

    const fmt = (v, d = 0) => v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
    const rat = (x) => `${x >= 10 ? fmt(x, 0) : x.toFixed(2)}×`;
    const lines = [`| model | metric | mdeploy-wasm ${pkgVersion('mdeploy-wasm')} | onnxruntime-web ${pkgVersion('onnxruntime-web')} | × | tfjs-wasm ${pkgVersion('@tensorflow/tfjs-backend-wasm')} | × |`, '|---|---|---:|---:|---:|---:|---:|'];
    const row = (M, metric, get, d, lower) => {
      const v = Object.fromEntries(IDS.map((id) => [id, get(id)]));
      const r = (id) => rat(lower ? v[id] / v.mdeploy : v.mdeploy / v[id]);
      lines.push(`| ${M} | ${metric} | ${fmt(v.mdeploy, d)} | ${fmt(v.ort, d)} | ${r('ort')} | ${fmt(v.tfjs, d)} | ${r('tfjs')} |`);
    };
    for (const name of MODELS) {
      const M = name === 'mnist-mlp' ? 'MLP' : 'CNN';
      const x = (id) => w.warm[name][id];
      row(M, 'batch 1, median (µs)', (id) => x(id).batch1.medianUs, 1, true);
      row(M, 'batch 1, p99 (µs)', (id) => x(id).batch1p99.p99Us, 1, true);
      row(M, 'batch 1, mean (µs)', (id) => x(id).batch1mean.meanUs, 1, true);
      row(M, 'batch 64 (images/s)', (id) => x(id).batch64.imagesPerSecond, 0, false);
      row(M, 'batch 1024 (images/s)', (id) => x(id).batch1024.imagesPerSecond, 0, false);
      row(M, 'cold start, fresh browser, import → 1st prediction, median of 5 (ms)', (id) => cold[name][id], 1, true);
    }
    console.log(`${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, headless ${w.userAgent.match(/(?:Headless)?Chrome\/[\d.]+/)?.[0]}, crossOriginIsolated ${w.crossOriginIsolated}, timer step ${w.timerProbeUs.toFixed(1)} µs, mdeploy-wasm variant ${w.mdeployVariant}`);
    console.log('');
    console.log(lines.join('\n'));
    console.log('');
    console.log(`Parity in Chromium (vs mdeploy-wasm, 1e-4): ${MODELS.map((name) => `${name} ` + ['ort', 'tfjs'].map((id) => `${LABEL[id]} max |Δp| ${w.parity[name][id].maxAbsDiff.toExponential(1)}, argmax ${w.parity[name][id].argmaxAgree}/2000`).join(', ')).join('; ')}. Warm rows: better of ${ROUNDS} interleaved rounds. mdeploy-wasm Promise API batch 1 median: ${MODELS.map((name) => `${fmt(w.mdeployAsync[name].medianUs, 1)} µs (${name})`).join(', ')}.`);
  }
} finally {
  server.close();
}
