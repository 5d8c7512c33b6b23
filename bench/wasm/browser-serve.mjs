// The repository on 127.0.0.1 and one fresh headless Chromium per page load, shared by
// browser.mjs (peers, warm and cold rows) and cold-breakdown-browser.mjs (start-up steps).
// Pages POST their result to /__result; visit() resolves with it.
// The page is served cross-origin isolated (COOP/COEP) so performance.now() is as fine as
// Chromium allows (5 µs).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm' };

/** Starts the server; `digits` is the MNIST folder served under /__digits/ (or null). */
export async function serveRepo(digits = null) {
  const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
  if (!existsSync(CHROMIUM)) {
    console.error(`bench/wasm: no Chromium at ${CHROMIUM}: set CHROMIUM to a Chromium/Chrome binary`);
    process.exit(2);
  }
  let pending = null;
  const server = createServer((req, res) => {
    const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cache-Control': 'no-store' };
    const url = new URL(req.url, 'http://x');
    if (req.method === 'POST' && url.pathname === '/__result') {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        res.writeHead(204, headers).end();
        pending?.(JSON.parse(body));
      });
      return;
    }
    let file;
    if (url.pathname === '/__empty.mjs') {
      res.writeHead(200, { ...headers, 'Content-Type': 'text/javascript' }).end('export default {};');
      return;
    } else if (url.pathname.startsWith('/__digits/') && digits !== null) {
      file = join(digits, url.pathname.slice('/__digits/'.length).replace(/[^0-9a-z.]/g, ''));
    } else {
      file = normalize(join(ROOT, decodeURIComponent(url.pathname)));
      if (!file.startsWith(ROOT)) return res.writeHead(403, headers).end();
    }
    try {
      const data = readFileSync(file);
      res.writeHead(200, { ...headers, 'Content-Type': MIME[extname(file)] ?? 'application/octet-stream' }).end(data);
    } catch {
      res.writeHead(404, headers).end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${server.address().port}`;

  // One fresh headless Chromium (own profile: no HTTP or code cache) per page load.
  // `page` is a path under the repository with its query; `extraArgs` are more Chromium flags.
  async function visit(page, timeoutMs, extraArgs = []) {
    const profile = mkdtempSync(join(tmpdir(), 'mdeploy-bench-chromium-'));
    // --disable-gpu also hides WebGPU's SwiftShader adapter: left out when a page asks for WebGPU.
    const gpu = extraArgs.includes('--enable-unsafe-webgpu') ? [] : ['--disable-gpu'];
    const child = spawn(CHROMIUM, ['--headless=new', '--no-sandbox', ...gpu, '--no-first-run', '--disable-extensions',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic',
      ...extraArgs, `--user-data-dir=${profile}`, `${origin}${page}`], { stdio: 'ignore', detached: true });
    try {
      return await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`bench/wasm: no result from ${page} within ${timeoutMs / 1000} s`)), timeoutMs);
        pending = (r) => { clearTimeout(timer); r.error ? reject(new Error(`page (${page}): ${r.error}`)) : resolve(r); };
        child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`chromium exited (${code}) before ${page} reported`)); });
      });
    } finally {
      pending = null;
      child.removeAllListeners('exit');
      // Wait for Chromium to exit (up to 5 s) before deleting its profile: on a loaded machine it
      // was still writing there 300 ms after SIGTERM and rmSync failed with ENOTEMPTY.
      const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve()
        : new Promise((r) => child.once('exit', r));
      try { process.kill(-child.pid, 'SIGTERM'); } catch {}
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    }
  }
  return { visit, close: () => server.close() };
}
