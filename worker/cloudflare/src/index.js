// The mdeploy model server as a Cloudflare Worker (module syntax). Every route is answered by
// mdeploy-wasm/server, i.e. the Rust crate mdeploy-serve in wasm: the same code as the wasi:http
// component, so both hosts give the same answers. README.md: running it locally with workerd,
// deploying with wrangler, limits, adding models.
//
// The Workers way to get wasm and data in: as modules. The .wasm comes in as a compiled
// WebAssembly.Module (Workers refuse to compile wasm bytes at run time), the models as
// ArrayBuffers (Data modules); wrangler.toml's rules and workerd.capnp's module list say so.
import { createServer } from 'mdeploy-wasm/server';
import wasm from 'mdeploy-wasm/dist/server/mdeploy_wasm_server_bg.wasm';
import { decryptionKeyFromBindings, modelsFromBindings, trustedKeysFromBindings } from './models.js';
// BEGIN models/defaults.json (scripts/gen-defaults.mjs writes these lines)
import mnistMlp from 'mdeploy-wasm/models/mnist-mlp.mdm';
import mnistCnn from 'mdeploy-wasm/models/mnist-cnn.mdm';
import mnistResnet from 'mdeploy-wasm/models/mnist-resnet.mdm';
import mnistMlpSparse90 from 'mdeploy-wasm/models/mnist-mlp-sparse90.mdm';
import mnistMlpStudent from 'mdeploy-wasm/models/mnist-mlp-student.mdm';
import mnistMlpInt8 from 'mdeploy-wasm/models/mnist-mlp-int8.mdm';
import mnistCnnInt8 from 'mdeploy-wasm/models/mnist-cnn-int8.mdm';
import mnistMlpInt4 from 'mdeploy-wasm/models/mnist-mlp-int4.mdm';
import mnistMlpInt7 from 'mdeploy-wasm/models/mnist-mlp-int7.mdm';
import mnistMlpBinary from 'mdeploy-wasm/models/mnist-mlp-binary.mdm';
const DEFAULT_MODELS = { 'mnist-mlp': mnistMlp, 'mnist-cnn': mnistCnn, 'mnist-resnet': mnistResnet, 'mnist-mlp-sparse90': mnistMlpSparse90, 'mnist-mlp-student': mnistMlpStudent, 'mnist-mlp-int8': mnistMlpInt8, 'mnist-cnn-int8': mnistCnnInt8, 'mnist-mlp-int4': mnistMlpInt4, 'mnist-mlp-int7': mnistMlpInt7, 'mnist-mlp-binary': mnistMlpBinary };
// END models/defaults.json

// Built once per isolate, on its first request (the bindings arrive with the request): later
// requests only run the model (weights packed once). Extra models: models.js.
let server = null;

// A trust policy (the MDEPLOY_TRUSTED_KEYS text binding, README.md "Trust policy"): only signed
// models are served, each verified before the server is built (mdeploy-wasm/server's trustedKeys),
// so the unsigned default models are left out and a bound model that does not verify makes
// every request answer 500 UNTRUSTED naming it.
export default {
  fetch(request, env) {
    if (server === null) {
      const trustedKeys = trustedKeysFromBindings(env);
      const defaults = trustedKeys === undefined ? DEFAULT_MODELS : {};
      // An encrypted bound model is decrypted in memory with the MDEPLOY_DECRYPTION_KEY secret
      // (models.js); the defaults are not encrypted and ignore it.
      const decryptionKey = decryptionKeyFromBindings(env);
      server = createServer({ wasm, models: modelsFromBindings(defaults, env), trustedKeys, decryptionKey });
    }
    return server.fetch(request);
  },
};
