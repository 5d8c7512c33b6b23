import { fileURLToPath } from 'node:url';

// The app lives inside the package's own folder, so `mdeploy-wasm` is aliased to the package
// entry (an installed app resolves it from node_modules; the asset handling is the same).
export default {
  root: fileURLToPath(new URL('.', import.meta.url)),
  logLevel: 'warn',
  resolve: { alias: { 'mdeploy-wasm': fileURLToPath(new URL('../../index.js', import.meta.url)) } },
  build: { outDir: process.env.MDEPLOY_VITE_OUT, emptyOutDir: true, target: 'es2022' },
};
