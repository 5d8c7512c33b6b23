// Shared by the demo's browser tests: playwright-core and Chromium exactly as the package's own
// browser suites use them. playwright-core is a dev dependency of wasm/ (installed by
// scripts/bootstrap.sh: `npm ci` in wasm/), so it is resolved from there rather than added to
// the root package a second time.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = resolve(WEB_DIR, '..');
export { CHROMIUM, CHROMIUM_QUIET } from '../../wasm/test/support.mjs';

const requireFromWasm = createRequire(resolve(ROOT, 'wasm/package.json'));
let pw;
try {
  pw = requireFromWasm('playwright-core');
} catch (e) {
  throw new Error(`playwright-core not found in wasm/node_modules: run scripts/bootstrap.sh (or \`npm ci\` in wasm/) (${e.message})`);
}
export const { chromium } = pw;

/** The built package the page imports: fails with the fix when it is missing. */
export function assertPackageBuilt() {
  const wasm = resolve(ROOT, 'wasm/dist/mdeploy_wasm_bg.wasm');
  if (!existsSync(wasm)) throw new Error(`${wasm} missing: build the package first (bash wasm/scripts/build.sh; web/test/run.sh does it)`);
}
