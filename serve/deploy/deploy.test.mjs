// serve/deploy: the Dockerfile and the KServe manifests agree with the project and each other.
// Docker and Kubernetes cannot run here (README.md beside this file); this catches drift between
// files: a default model added without its COPY line, a port changed in one place, a flag renamed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const read = (p) => readFileSync(join(root, p), 'utf8');
const dockerfile = read('serve/deploy/Dockerfile');
const runtime = read('serve/deploy/kserve/servingruntime.yaml');
const isvcRest = read('serve/deploy/kserve/inferenceservice.yaml');
const isvcGrpc = read('serve/deploy/kserve/inferenceservice-grpc.yaml');

// `key: value` lines of a YAML file (the manifests are plain block YAML: no anchors, no flow maps).
const values = (yaml, key) => [...yaml.matchAll(new RegExp(`^[ \\t]*-?[ \\t]*${key}:[ \\t]*"?([^"\\n]+?)"?[ \\t]*$`, 'gm'))].map((m) => m[1]);

test('the image holds exactly the default models, each as version 1', () => {
  const defaults = JSON.parse(read('models/defaults.json')).models;
  const copies = [...dockerfile.matchAll(/^COPY models\/(\S+) \/models\/([^/\s]+)\/1\/model\.mdm$/gm)].map((m) => [m[2], m[1]]);
  assert.deepEqual(copies.sort(), defaults.map((m) => [m.name, m.file]).sort());
});

test('the image listens where it says and its flags exist in mdeploy serve', () => {
  const entry = JSON.parse(dockerfile.match(/^ENTRYPOINT (.+)$/m)[1]);
  const cmd = JSON.parse(dockerfile.match(/^CMD (.+)$/m)[1]);
  assert.deepEqual(entry.slice(0, 2), ['/usr/local/bin/mdeploy', 'serve']);
  const ports = entry.filter((a) => /^0\.0\.0\.0:\d+$/.test(a)).map((a) => a.split(':')[1]);
  assert.deepEqual(dockerfile.match(/^EXPOSE (.+)$/m)[1].split(/\s+/), ports);
  const serve = read('cli/src/serve.rs');
  const flags = [...entry, ...cmd, ...runtime.matchAll(/^\s*- (--[a-z-]+)=/gm)].map((a) => (Array.isArray(a) ? a[1] : a)).filter((a) => a.startsWith('--'));
  assert.ok(flags.length >= 5, flags.join(' '));
  for (const f of flags) {
    const field = f.slice(2).replace(/-/g, '_');
    assert.match(serve, new RegExp(`\\b${field}: `), `mdeploy serve has no ${f}`);
  }
});

test('the ServingRuntime, its probes and the InferenceServices agree', () => {
  const args = Object.fromEntries([...runtime.matchAll(/^\s*- --([a-z-]+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
  assert.equal(args.repository, '/mnt/models', 'KServe puts storageUri at /mnt/models');
  const restPort = args.http.split(':')[1];
  const grpcPort = args.grpc.split(':')[1];
  assert.deepEqual(values(runtime, 'containerPort'), [restPort]);
  assert.deepEqual(values(runtime, 'port'), [restPort, restPort], 'both probes on the REST port');
  assert.deepEqual(values(runtime, 'path'), ['/v2/health/ready', '/v2/health/live']);
  assert.equal(values(runtime, 'prometheus.kserve.io/port')[0], restPort, '/metrics is on the REST port');
  assert.deepEqual(values(isvcGrpc, 'containerPort'), [grpcPort]);
  assert.deepEqual(values(isvcGrpc, 'name').slice(-1), ['h2c']);
  const runtimeName = values(runtime, 'name')[0];
  const format = values(runtime, 'name')[1];
  assert.match(runtime, /protocolVersions:\n\s+- v2\n\s+- grpc-v2\n/);
  for (const [isvc, protocol] of [[isvcRest, 'v2'], [isvcGrpc, 'grpc-v2']]) {
    assert.deepEqual(values(isvc, 'runtime'), [runtimeName]);
    assert.deepEqual(values(isvc, 'protocolVersion'), [protocol]);
    assert.equal(values(isvc, 'name')[1], format, 'modelFormat.name is the runtime\'s');
  }
});
