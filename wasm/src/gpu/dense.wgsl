// Kernel::Dense: y[s, o] = act(b[o] + sum_k x[s, k] * w[k, o]), w row-major [k, out].
// One invocation per output value; consecutive invocations read consecutive w columns, so a
// workgroup's weight loads are contiguous.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = flat(wg, nwg, li);
  if (i >= p.n * p.out) { return; }
  let s = i / p.out;
  let o = i % p.out;
  let xs = s * p.k;
  var acc = 0.0;
  for (var k = 0u; k < p.k; k++) {
    acc = fma(x[xs + k], w[k * p.out + o], acc);
  }
  y[i] = act(acc + b[o]);
}
