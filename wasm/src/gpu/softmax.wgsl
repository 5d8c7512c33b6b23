// Softmax over each sample's flat vector: exp(x - max) / Σ exp(x - max) (the max keeps exp
// finite). One invocation per sample: the rows are short (10 classes for MNIST).
struct P { n: u32, len: u32, _a: u32, _b: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: P;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let s = (wg.y * nwg.x + wg.x) * 64u + li;
  if (s >= p.n) { return; }
  let o = s * p.len;
  var m = x[o];
  for (var j = 1u; j < p.len; j++) { m = max(m, x[o + j]); }
  var sum = 0.0;
  for (var j = 0u; j < p.len; j++) {
    let e = exp(x[o + j] - m);
    y[o + j] = e;
    sum += e;
  }
  let inv = 1.0 / sum;
  for (var j = 0u; j < p.len; j++) { y[o + j] = y[o + j] * inv; }
}
