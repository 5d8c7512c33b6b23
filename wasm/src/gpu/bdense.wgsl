// Kernel::BDense (core/runtime/QUANT.md, "Binary"): the input's sign bits (x >= 0 → 1) packed 32
// per u32 along k, XOR the weight's bits (wb: per output column, 32 rows per word, 1 = +1, zero
// past k), dot = k − 2·countOneBits (equal bits are a +1 product, different ones a −1), exact.
// Then y = act(alpha[o]·dot + bias[o]) in f32 with the CPU's two roundings (product, then sum).
// One invocation per output value.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = flat(wg, nwg, li);
  if (i >= p.n * p.out) { return; }
  let s = i / p.out;
  let o = i % p.out;
  let xs = s * p.k;
  let kw = (p.k + 31u) / 32u;
  let wr = o * kw;
  var differ = 0u;
  for (var j = 0u; j < kw; j++) {
    let base = j * 32u;
    let m = min(32u, p.k - base);
    var a = 0u;
    for (var t = 0u; t < m; t++) {
      a = a | select(0u, 1u << t, x[xs + base + t] >= 0.0);
    }
    differ += countOneBits(a ^ wb[wr + j]);
  }
  // |dot| <= k <= 2^16: the i32 -> f32 conversion is exact.
  let dot = f32(i32(p.k) - 2 * i32(differ));
  // The product feeds a multiply by p.one (1.0, unknown to the compiler), never an add, so it is
  // rounded on its own: no compiler may fuse it with the bias into one fma, which would round
  // once where the CPU rounds twice. (A fused `prod·one + bias` is still exact: prod·1 = prod.)
  let prod = (alpha[o] * dot) * p.one;
  y[i] = act(prod + bias[o]);
}
