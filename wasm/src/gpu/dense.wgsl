// Dense layer: y[s, o] = b[o] + Σ_k x[s, k] · W[k, o] (W is [in, out], the core's layout),
// then ReLU when the model has one right after (fused: one pass instead of two).
// One invocation per output value; consecutive invocations read consecutive W columns, so the
// weight loads of a workgroup are contiguous.
struct P { n: u32, fin: u32, fout: u32, relu: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<uniform> p: P;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  // 2-D dispatch (x ≤ 65535 workgroups per dimension): flatten it back.
  let i = (wg.y * nwg.x + wg.x) * 64u + li;
  if (i >= p.n * p.fout) { return; }
  let s = i / p.fout;
  let o = i % p.fout;
  var acc = 0.0;
  let xs = s * p.fin;
  for (var k = 0u; k < p.fin; k++) {
    acc = fma(x[xs + k], w[k * p.fout + o], acc);
  }
  acc += b[o];
  if (p.relu != 0u) { acc = max(acc, 0.0); }
  y[i] = acc;
}
