// Kernel::Quantize of an intermediate value (the program input's runs on the CPU, engine.rs):
// y = s·(q − zp) with q = the CPU's clamp(round_half_even(x / s) + zp, 0, 255) (quant.rs), found
// without a division (WGSL's `/` is not correctly rounded): q is non-decreasing in x, so it is
// the number of thresholds thr[1..=255] at or below x, thr[j] = the smallest f32 whose code is
// >= j, computed on the CPU with the CPU's own quantize. Eight comparisons (a binary search).
// NaN (never a program input; WGSL does not promise to produce one) compares false everywhere;
// the CPU gives it zp, so it is caught by its bits. One invocation per value; may run in place.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = flat(wg, nwg, li);
  if (i >= p.n * p.len) { return; }
  let v = ld(i);
  var q = 0u;
  for (var b = 128u; b > 0u; b = b >> 1u) {
    if (q + b <= 255u && v >= thr[q + b]) { q += b; }
  }
  // NaN by its bits (a compiler may assume `v != v` is false).
  if ((bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u) { q = p.zp; }
  y[i] = f32(i32(q) - i32(p.zp)) * p.scale;
}
