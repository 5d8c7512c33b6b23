#!/usr/bin/env node
// The default models are listed once, in models/defaults.json. Places that cannot read that file
// when they run (a bundler needs each `new URL('./models/x.mdm', import.meta.url)` written out, a
// Worker needs each model as a static import, workerd.capnp, package.json and serve/deploy's
// Dockerfile are static) get the
// list written into them by this script, between `BEGIN models/defaults.json` / `END` markers.
//
//   node scripts/gen-defaults.mjs           rewrite those places from models/defaults.json
//   node scripts/gen-defaults.mjs --check   exit 1 (naming the files) if any is out of date
//   node scripts/gen-defaults.mjs --list    print `name file` per default model (for shell scripts)
//
// `npm test` runs --check (scripts/test.sh). Rust reads the JSON itself (serve/build.rs), and
// tests compare what each host lists with it, so adding a default model is: put its .mdm in
// models/, add one line to defaults.json, run this script.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function readDefaults(root = ROOT) {
  const path = join(root, 'models/defaults.json');
  const d = JSON.parse(readFileSync(path, 'utf8'));
  if (!Array.isArray(d.models) || d.models.length === 0) throw new Error(`${path}: "models" must be a non-empty list`);
  const names = new Set();
  for (const m of d.models) {
    if (!NAME.test(m.name ?? '')) throw new Error(`${path}: '${m.name}' is not a model name (a-z 0-9 . _ -, at most 64)`);
    if (names.has(m.name)) throw new Error(`${path}: '${m.name}' is listed twice`);
    if (typeof m.file !== 'string' || !m.file.endsWith('.mdm') || m.file.includes('..')) throw new Error(`${path}: '${m.name}': "file" must be a .mdm path under models/`);
    if (typeof m.accuracy !== 'number' || !(m.accuracy > 0 && m.accuracy <= 1)) throw new Error(`${path}: '${m.name}': "accuracy" must be its test accuracy in 0..1 (\`mdeploy info\` shows it)`);
    m.fileBytes = statSync(join(root, 'models', m.file)).size;
    names.add(m.name);
  }
  if (!names.has(d.default)) throw new Error(`${path}: the default '${d.default}' is not in "models"`);
  return d;
}

const BANNER = 'generated from models/defaults.json by scripts/gen-defaults.mjs: edit that file, then run the script';

/** Replaces the lines between the BEGIN and END marker lines of `text` with `body` (lines). */
function region(text, file, body) {
  const lines = text.split('\n');
  const begin = lines.findIndex((l) => l.includes('BEGIN models/defaults.json'));
  const end = lines.findIndex((l, i) => i > begin && l.includes('END models/defaults.json'));
  if (begin < 0 || end < 0) throw new Error(`${file}: the BEGIN/END models/defaults.json markers are missing`);
  return [...lines.slice(0, begin + 1), ...body, ...lines.slice(end)].join('\n');
}

const camel = (name) => name.replace(/[-._]+(.)/g, (_, c) => c.toUpperCase()).replace(/^[0-9]/, '_$&');

function outputs(d) {
  const names = d.models.map((m) => m.name);
  const out = new Map();
  out.set('wasm/index.js', (text, f) => region(text, f, [
    'const BUILTIN = {',
    ...names.map((n) => `  '${n}': () => new URL('./models/${n}.mdm', import.meta.url),`),
    '};',
    '/** Names of the models shipped in the package: `Model.load(\'mnist-cnn\')`. */',
    'export const builtinModels = Object.freeze(Object.keys(BUILTIN));',
    '/** Size and accuracy on the fixed MNIST test split of each built-in model, without loading it. */',
    'export const builtinCatalog = Object.freeze({',
    ...d.models.map((m) => `  '${m.name}': Object.freeze({ fileBytes: ${m.fileBytes}, testAccuracy: ${m.accuracy} }),`),
    '});',
    `const DEFAULT_MODEL = '${d.default}';`,
  ]));
  out.set('wasm/server.js', (text, f) => region(text, f, [
    'const defaultModels = () => ({',
    ...names.map((n) => `  '${n}': new URL('./models/${n}.mdm', import.meta.url),`),
    '});',
  ]));
  out.set('wasm/index.d.ts', (text, f) => region(text, f, [
    `export type BuiltinModel = ${names.map((n) => `'${n}'`).join(' | ')};`,
  ]));
  out.set('wasm/package.json', (text) => {
    const pkg = JSON.parse(text);
    const exp = {};
    for (const [k, v] of Object.entries(pkg.exports)) {
      if (k.startsWith('./models/')) continue;
      if (k === './package.json') for (const n of names) exp[`./models/${n}.mdm`] = `./models/${n}.mdm`;
      exp[k] = v;
    }
    pkg.exports = exp;
    const files = [];
    for (const f of pkg.files) {
      if (f.startsWith('models/')) continue;
      if (f === 'README.md') files.push(...names.map((n) => `models/${n}.mdm`));
      files.push(f);
    }
    pkg.files = files;
    return `${JSON.stringify(pkg, null, 2)}\n`;
  });
  out.set('worker/cloudflare/src/index.js', (text, f) => region(text, f, [
    ...d.models.map((m) => `import ${camel(m.name)} from 'mdeploy-wasm/models/${m.name}.mdm';`),
    `const DEFAULT_MODELS = { ${names.map((n) => `'${n}': ${camel(n)}`).join(', ')} };`,
  ]));
  out.set('worker/cloudflare/workerd.capnp', (text, f) => region(text, f,
    names.map((n) => `    (name = "mdeploy-wasm/models/${n}.mdm", data = embed "../../wasm/models/${n}.mdm"),`)));
  out.set('serve/deploy/Dockerfile', (text, f) => region(text, f,
    d.models.map((m) => `COPY models/${m.file} /models/${m.name}/1/model.mdm`)));
  return out;
}

function main() {
  if (process.argv.includes('--list')) {
    for (const m of readDefaults().models) console.log(m.name, m.file);
    return;
  }
  const check = process.argv.includes('--check');
  const d = readDefaults();
  const stale = [];
  for (const [file, make] of outputs(d)) {
    const path = join(ROOT, file);
    let old = '';
    try { old = readFileSync(path, 'utf8'); } catch { /* a new file */ }
    const text = make(old, file);
    if (text === old) continue;
    stale.push(file);
    if (!check) writeFileSync(path, text);
  }
  if (check && stale.length) {
    console.error(`gen-defaults: out of date with models/defaults.json: ${stale.join(', ')}; run \`node scripts/gen-defaults.mjs\``);
    process.exit(1);
  }
  console.error(`gen-defaults: ${stale.length ? (check ? '' : `rewrote ${stale.join(', ')}`) : 'up to date'}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
