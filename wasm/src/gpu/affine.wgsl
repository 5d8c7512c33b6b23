// Kernel::Affine: per-channel y = act(x * scale[ch] + shift[ch]) over HWC (flat: hw = 1), a
// BatchNorm with no producer to fold into. One invocation per value; may run in place.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = flat(wg, nwg, li);
  if (i >= p.n * p.hw * p.c) { return; }
  let ch = i % p.c;
  y[i] = act(fma(ld(i), scale[ch], shift[ch]));
}
