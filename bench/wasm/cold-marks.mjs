// A copy of wasm/index.js with `globalThis.__mark?.(name)` calls at named lines, so the public
// path (`Model.load` → first prediction) can be timed from inside, step by step, while it runs
// exactly as shipped otherwise (cold-public.mjs in Node, cold-public-browser.mjs in Chromium).
// The copy is written beside index.js (its relative imports resolve) as a dot-file; an anchor
// that version of index.js lacks is skipped and listed in `unmarked`.
import { readFileSync, writeFileSync, unlinkSync } from 'node:fs';

export const WASM_DIR = new URL('../../wasm/', import.meta.url);

const ANCHORS = [
  ['before', "const trustModule = () => import('./trust.js');", 'indexEval.start'],
  ['after', 'static async load(source, options = {}) {', 'load.start'],
  ['before', ["const adapterP = backend === 'cpu' ? Promise.resolve(null) : requestAdapter();", "adapterP = backend === 'cpu' ? Promise.resolve(null) : requestAdapter();"], 'load.adapterCall'],
  ['after', ["const adapterP = backend === 'cpu' ? Promise.resolve(null) : requestAdapter();", "adapterP = backend === 'cpu' ? Promise.resolve(null) : requestAdapter();"], 'load.adapterCalled'],
  ['before', 'const bytesP = modelBytes(source);', 'load.runtimeStarted'],
  ['after', "const cpuP = runtimeFor('cpu');", 'load.runtimeStarted'],
  ['after', 'const bytesP = modelBytes(source);', 'load.modelRequested'],
  ['before', "adapterP = backend === 'cpu' ? Promise.resolve(null) : requestAdapter();", 'load.modelRequested'],
  ['after', 'async function startRuntime(kind, { variant, wasm: gpuWasm, cpuWasm }) {', 'runtime.start'],
  ['before', 'compiled = WebAssembly.compileStreaming(fetch(wasm));', 'runtime.fetchCall'],
  ['after', 'compiled = WebAssembly.compileStreaming(fetch(wasm));', 'runtime.fetchCalled'],
  ['before', 'const glue = await mod.glue();', 'glueImport.start'],
  ['after', 'const glue = await mod.glue();', 'glueImport.end'],
  ['after', "wasm = await loadBytes(wasm, 'the .wasm');", 'wasmRead.end'],
  ['before', '  // What init() reports, made on first ask', 'compileInstantiate.end'],
  ['before', 'const b = glue.buildInfo();', 'compileInstantiate.end'],
  ['after', 'const adapter = await adapterP;', 'load.adapterReady'],
  ['after', ['const { glue: g, info: { variant } } = await glueP;', 'const { glue: g, variant } = await glueP;'], 'load.runtimeReady'],
  ['after', 'let bytes = await bytesP;', 'load.bytesReady'],
  ['after', 'const hash = await (hashP ?? contentHash(bytes));', 'build.hashReady'],
  ['before', "// useGpu: 'webgpu', or 'auto' on an adapter it accepts.", 'build.engineReady'],
];
// Whole-line rewrites: marks inside promise chains (when a read, a hash, a compile finishes).
const REWRITES = [
  ['const bytesP = modelBytes(source);',
    'const bytesP = modelBytes(source); bytesP.then(() => globalThis.__mark?.("modelRead.end"), () => {});'],
  ["      bytesP = modelBytes(source);\n      adapterP = backend === 'cpu'",
    "      bytesP = modelBytes(source); bytesP.then(() => globalThis.__mark?.('modelRead.end'), () => {});\n      adapterP = backend === 'cpu'"],
  ['const hashP = policy === null && !callerBytes ? bytesP.then(contentHash) : null;',
    'const hashP = policy === null && !callerBytes ? bytesP.then(contentHash) : null; hashP?.then(() => globalThis.__mark?.("hash.end"), () => {});'],
  ['compiled = WebAssembly.compileStreaming(fetch(wasm));',
    'compiled = WebAssembly.compileStreaming(fetch(wasm)); compiled.then(() => globalThis.__mark?.("streamingCompile.end"), () => {});'],
  ["nodeWasm = loadBytes(wasm, 'the .wasm').then((b) => WebAssembly.compile(b).catch(() => b));",
    "nodeWasm = loadBytes(wasm, 'the .wasm').then((b) => { globalThis.__mark?.('wasmRead.end'); return WebAssembly.compile(b).catch(() => b); }).then((m) => { globalThis.__mark?.('compile.end'); return m; });"],
];

/** Writes the marked copy of `indexFile` (beside wasm/index.js); returns its file name and a remover. */
export function writeMarkedIndex(indexFile = 'index.js', tag = String(process.pid)) {
  let src = readFileSync(new URL(indexFile, WASM_DIR), 'utf8');
  // REWRITES first: they match text across lines that the marks below would split.
  for (const [line, marked] of REWRITES) src = src.replace(line, marked);
  const unmarked = [];
  const placed = new Set();
  // A mark may have several entries (index.js versions): the first whose anchor exists is used.
  for (const [where, anchors, mark] of ANCHORS) {
    if (placed.has(mark)) continue;
    // An anchor may have other spellings (index.js versions): the first one found is used.
    const anchor = [anchors].flat().find((a) => src.includes(a));
    const i = anchor === undefined ? -1 : src.indexOf(anchor);
    if (i < 0) continue;
    placed.add(mark);
    const at = where === 'after' ? src.indexOf('\n', i) + 1 : src.lastIndexOf('\n', i) + 1;
    src = `${src.slice(0, at)}globalThis.__mark?.(${JSON.stringify(mark)});\n${src.slice(at)}`;
  }
  for (const [, , mark] of ANCHORS) if (!placed.has(mark) && !unmarked.includes(mark)) unmarked.push(mark);
  const file = `.index-marked-${tag}.js`;
  writeFileSync(new URL(file, WASM_DIR), src);
  return { file, unmarked, remove: () => { try { unlinkSync(new URL(file, WASM_DIR)); } catch {} } };
}
