# Runs the Worker locally with plain workerd (npm package `workerd`, a devDependency of the repo
# root), no wrangler, no account, no network:
#
#   npx workerd serve worker/cloudflare/workerd.capnp                         # http://127.0.0.1:8787
#   npx workerd serve worker/cloudflare/workerd.capnp --socket-addr http=127.0.0.1:9000
#
# Needs the package build first (`bash wasm/scripts/build.sh server`: dist/server/ and models/).
# Module names mirror the npm package's paths, so src/index.js imports the same specifiers here as
# under wrangler, which resolves them from node_modules.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "mdeploy", worker = .mdeployWorker) ],
  # Loopback only: this is a development server.
  sockets = [ (name = "http", address = "127.0.0.1:8787", http = (), service = "mdeploy") ],
);

const mdeployWorker :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "src/index.js"),
    (name = "models.js", esModule = embed "src/models.js"),
    (name = "mdeploy-wasm/server", esModule = embed "../../wasm/server.js"),
    (name = "mdeploy-wasm/trust.js", esModule = embed "../../wasm/trust.js"),
    (name = "mdeploy-wasm/dist/server/mdeploy_wasm_server.js", esModule = embed "../../wasm/dist/server/mdeploy_wasm_server.js"),
    (name = "mdeploy-wasm/dist/server/mdeploy_wasm_server_bg.wasm", wasm = embed "../../wasm/dist/server/mdeploy_wasm_server_bg.wasm"),
    # BEGIN models/defaults.json (scripts/gen-defaults.mjs writes these lines)
    (name = "mdeploy-wasm/models/mnist-mlp.mdm", data = embed "../../wasm/models/mnist-mlp.mdm"),
    (name = "mdeploy-wasm/models/mnist-cnn.mdm", data = embed "../../wasm/models/mnist-cnn.mdm"),
    (name = "mdeploy-wasm/models/mnist-resnet.mdm", data = embed "../../wasm/models/mnist-resnet.mdm"),
    (name = "mdeploy-wasm/models/mnist-mlp-sparse90.mdm", data = embed "../../wasm/models/mnist-mlp-sparse90.mdm"),
    (name = "mdeploy-wasm/models/mnist-mlp-student.mdm", data = embed "../../wasm/models/mnist-mlp-student.mdm"),
    (name = "mdeploy-wasm/models/mnist-mlp-int8.mdm", data = embed "../../wasm/models/mnist-mlp-int8.mdm"),
    (name = "mdeploy-wasm/models/mnist-cnn-int8.mdm", data = embed "../../wasm/models/mnist-cnn-int8.mdm"),
    (name = "mdeploy-wasm/models/mnist-mlp-int4.mdm", data = embed "../../wasm/models/mnist-mlp-int4.mdm"),
    (name = "mdeploy-wasm/models/mnist-mlp-int7.mdm", data = embed "../../wasm/models/mnist-mlp-int7.mdm"),
    (name = "mdeploy-wasm/models/mnist-mlp-binary.mdm", data = embed "../../wasm/models/mnist-mlp-binary.mdm"),
    # END models/defaults.json
  ],
  # Extra models beside the defaults: one data binding per .mdm file, named
  # MDEPLOY_MODEL_<model name> (src/index.js), e.g.
  #   (name = "MDEPLOY_MODEL_my-model", data = embed "../../path/to/my-model.mdm"),
  # tests/serverless/workerd.test.mjs adds the parity fixtures of models/test/ this way.
  bindings = [
  ],
  # Keep equal to wrangler.toml's compatibility_date.
  compatibilityDate = "2026-11-01",
);
