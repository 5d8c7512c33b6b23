// Kernel::Affine: per-channel y = act(x * scale[ch] + shift[ch]) over HWC (flat: hw = 1), a
// BatchNorm with no producer to fold into. One invocation per value; may run in place.
// Rounded as the CPU rounds (product, then sum): the product feeds a multiply by p.one (1.0,
// unknown to the compiler), never the add, so it cannot be fused with the shift into one fma.
// The binary models' bits depend on it (a BatchNorm before a Sign and before a Quantize).
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = flat(wg, nwg, li);
  if (i >= p.n * p.hw * p.c) { return; }
  let ch = i % p.c;
  y[i] = act((ld(i) * scale[ch]) * p.one + shift[ch]);
}
