#!/usr/bin/env node
// The demo page's server: dependency-free, bound to 127.0.0.1 (a secure context, so browsers
// expose navigator.gpu there). It serves
//   /            web/ (index.html, app.js, inference-worker.js, style.css)
//   /pkg/        the built npm package mdeploy-wasm (wasm/index.js, wasm/dist/, wasm/models/)
//   /predict, /v1/*, /v2/*   reverse-proxied to the function endpoint (`wasmtime serve`), so the
//                page talks to its own origin only; 502 JSON when no endpoint is configured or
//                it does not answer.
// Every response carries a Content-Security-Policy that forbids any other origin: the page
// cannot reach the network beyond this server even by mistake.
//
// Usage: node web/serve.mjs [--port 8080] [--host 127.0.0.1] [--endpoint http://127.0.0.1:8081]
// (env: MDEPLOY_WEB_PORT, MDEPLOY_ENDPOINT). Port 0 picks a free one. Prints the URL.
import { createServer, request as httpRequest } from 'node:http';
import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB_DIR = dirname(fileURLToPath(import.meta.url));
const WASM_DIR = resolve(WEB_DIR, '../wasm');

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.wasm': 'application/wasm', '.mdm': 'application/octet-stream',
  '.json': 'application/json', '.png': 'image/png', '.svg': 'image/svg+xml', '.ico': 'image/x-icon',
  '.d.ts': 'text/plain; charset=utf-8',
};

// 'wasm-unsafe-eval' lets WebAssembly compile without allowing JS eval; blob:/data: images are
// the canvas snapshots. Nothing else, no other origin.
const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'; " +
  "img-src 'self' data: blob:; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

// Cross-origin isolation (COOP + COEP) costs nothing for a same-origin page and gives the
// worker's performance.now() microsecond resolution instead of 100 µs: the models take less.
const COMMON = {
  'cache-control': 'no-store', 'content-security-policy': CSP, 'x-content-type-options': 'nosniff',
  'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp',
};

// Only what the package ships is exposed under /pkg/ (not its Rust sources or node_modules):
// the "files" of its package.json, read here so that a module the package adds (trust.js) is
// served without a second list to keep in step.
const PKG_FILES = new Set(['package.json', ...JSON.parse(readFileSync(join(WASM_DIR, 'package.json'), 'utf8')).files]);
const PROXIED = [/^\/predict$/, /^\/v1(\/|$)/, /^\/v2(\/|$)/];

function send(res, status, body, type = 'text/plain; charset=utf-8') {
  res.writeHead(status, { 'content-type': type, ...COMMON });
  res.end(body);
}

const sendJson = (res, status, obj) => send(res, status, JSON.stringify(obj), 'application/json');

/** Maps a request path to a file, or null when it is outside what may be served. */
function fileFor(path) {
  if (path.startsWith('/pkg/')) {
    const rel = path.slice('/pkg/'.length);
    if (!PKG_FILES.has(rel)) return null;
    return join(WASM_DIR, rel);
  }
  // The tests, their screenshots and the build scripts are not the page.
  if (path.startsWith('/test/') || path.startsWith('/scripts/')) return null;
  const file = normalize(join(WEB_DIR, path === '/' ? 'index.html' : path));
  if (!file.startsWith(WEB_DIR + sep) || file === join(WEB_DIR, 'serve.mjs')) return null;
  return file;
}

function typeOf(file) {
  return file.endsWith('.d.ts') ? TYPES['.d.ts'] : (TYPES[extname(file)] ?? 'application/octet-stream');
}

function proxy(req, res, endpoint) {
  if (!endpoint) {
    sendJson(res, 502, { error: 'endpoint unavailable: this server was started without --endpoint (npm start starts one)' });
    return;
  }
  const target = new URL(req.url, endpoint);
  const up = httpRequest(target, {
    method: req.method,
    headers: { ...req.headers, host: target.host },
    timeout: 30_000,
  }, (upRes) => {
    const headers = { ...upRes.headers, ...COMMON };
    res.writeHead(upRes.statusCode ?? 502, headers);
    upRes.pipe(res);
  });
  const fail = (why) => {
    if (res.headersSent) { res.destroy(); return; }
    sendJson(res, 502, { error: `endpoint unavailable: ${endpoint} ${why}` });
  };
  up.on('timeout', () => { up.destroy(); fail('did not answer within 30 s'); });
  up.on('error', (e) => fail(`(${e.code ?? e.message})`));
  req.pipe(up);
}

/**
 * Starts the server. `endpoint`: base URL of the function endpoint, or null (the proxy then
 * answers 502). Resolves to { url, port, close() }.
 */
export async function startServer({ port = 8080, host = '127.0.0.1', endpoint = null } = {}) {
  const server = createServer(async (req, res) => {
    let path;
    try {
      path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      send(res, 400, 'bad URL');
      return;
    }
    if (PROXIED.some((re) => re.test(path))) { proxy(req, res, endpoint); return; }
    if (req.method !== 'GET' && req.method !== 'HEAD') { send(res, 405, 'method not allowed'); return; }
    const file = fileFor(path);
    if (!file) { send(res, 404, `not found: ${path}`); return; }
    try {
      if (!(await stat(file)).isFile()) throw new Error('not a file');
      const body = await readFile(file);
      send(res, 200, req.method === 'HEAD' ? undefined : body, typeOf(file));
    } catch {
      const hint = path.startsWith('/pkg/') ? ' (build the package: bash wasm/scripts/build.sh, or npm start)' : '';
      send(res, 404, `not found: ${path}${hint}`);
    }
  });
  await new Promise((ok, ko) => { server.once('error', ko); server.listen(port, host, ok); });
  const actual = server.address().port;
  return {
    url: `http://${host}:${actual}/`,
    port: actual,
    close: () => new Promise((ok) => { server.closeAllConnections?.(); server.close(() => ok()); }),
  };
}

function parseArgs(argv) {
  const opts = { port: Number(process.env.MDEPLOY_WEB_PORT ?? 8080), host: '127.0.0.1', endpoint: process.env.MDEPLOY_ENDPOINT || null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--port') opts.port = Number(val());
    else if (a === '--host') opts.host = val();
    else if (a === '--endpoint') opts.endpoint = val() || null;
    else throw new Error(`unknown argument ${a}; usage: node web/serve.mjs [--port 8080] [--host 127.0.0.1] [--endpoint http://127.0.0.1:8081]`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error(`--port must be 0..65535, got ${opts.port}`);
  if (opts.endpoint) {
    try { new URL(opts.endpoint); } catch { throw new Error(`--endpoint must be a URL such as http://127.0.0.1:8081, got ${opts.endpoint}`); }
  }
  return opts;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`serve.mjs: ${e.message}`);
    process.exit(2);
  }
  try {
    await stat(join(WASM_DIR, 'dist/mdeploy_wasm_bg.wasm'));
  } catch {
    console.error('serve.mjs: wasm/dist/ is missing: build the package first (bash wasm/scripts/build.sh, or npm start)');
    process.exit(1);
  }
  const s = await startServer(opts).catch((e) => {
    console.error(`serve.mjs: cannot listen on ${opts.host}:${opts.port}: ${e.message} (pick another --port, or 0 for a free one)`);
    process.exit(1);
  });
  console.log(`demo page: ${s.url}${opts.endpoint ? `  (function endpoint proxied from ${opts.endpoint})` : '  (no function endpoint: the "served" column will say so)'}`);
  const stop = () => s.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
