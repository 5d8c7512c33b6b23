// A tiny static server for the browser suite: serves the built package (wasm/ as the web root:
// index.js, dist/, models/, test/browser/page.html) and the fixed MNIST test split as raw
// little-endian f32 at /split.bin, on 127.0.0.1 and a random free port. 127.0.0.1 is a secure
// context, so browsers expose navigator.gpu there.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';

const TYPES = {
  '.js': 'text/javascript', '.mjs': 'text/javascript', '.html': 'text/html', '.wasm': 'application/wasm',
  '.mdm': 'application/octet-stream', '.json': 'application/json',
};

// Options: `wasmType`, the Content-Type for .wasm files (a misconfigured server in a test);
// `seen(path)`, called for every request; `delayMs(path)`, how long to hold a file's answer (a
// slow download, so a test can see what the page requests meanwhile).
export async function serve(root, splitXs, { wasmType = TYPES['.wasm'], seen = () => {}, delayMs = () => 0 } = {}) {
  const split = Buffer.from(splitXs.buffer, splitXs.byteOffset, splitXs.byteLength);
  const types = { ...TYPES, '.wasm': wasmType };
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    seen(path);
    if (path === '/split.bin') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(split);
      return;
    }
    const file = normalize(join(root, path === '/' ? 'test/browser/page.html' : path));
    if (!file.startsWith(root + sep)) { res.writeHead(403).end(); return; }
    try {
      const body = await readFile(file);
      const wait = delayMs(path);
      if (wait > 0) await new Promise((ok) => setTimeout(ok, wait));
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end(`not found: ${path}`);
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((ok) => server.close(ok)) };
}
