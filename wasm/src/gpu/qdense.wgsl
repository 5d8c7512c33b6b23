// Kernel::QDense: y[s, o] = epilogue(sum_k q(x[s, k]) · w[k, o], o), exact i32 sums. w: int8
// packed 4 per u32 along k per column (engine.rs pack_i8). One invocation per output value.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = flat(wg, nwg, li);
  if (i >= p.n * p.out) { return; }
  let s = i / p.out;
  let o = i % p.out;
  let xs = s * p.k;
  let k4 = (p.k + 3u) / 4u;
  let wr = o * k4;
  var acc = 0;
  for (var j = 0u; j < k4; j++) {
    let word = w[wr + j];
    let base = j * 4u;
    for (var t = 0u; t < 4u && base + t < p.k; t++) {
      let wv = bitcast<i32>(word << (24u - 8u * t)) >> 24u;
      acc += code(x[xs + base + t]) * wv;
    }
  }
  y[i] = epilogue(acc, o);
}
