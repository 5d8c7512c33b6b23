// Kernel::Softmax over each sample's len values: exp(x - max) / sum exp(x - max) (the max keeps
// exp finite). One invocation per sample: the rows are short (10 classes for MNIST). May run
// in place (ld reads y then): each value is read before it is overwritten.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let s = flat(wg, nwg, li);
  if (s >= p.n) { return; }
  let o = s * p.len;
  var m = ld(o);
  for (var j = 1u; j < p.len; j++) { m = max(m, ld(o + j)); }
  var sum = 0.0;
  for (var j = 0u; j < p.len; j++) {
    let e = exp(ld(o + j) - m);
    y[o + j] = e;
    sum += e;
  }
  let inv = 1.0 / sum;
  for (var j = 0u; j < p.len; j++) { y[o + j] = y[o + j] * inv; }
}
