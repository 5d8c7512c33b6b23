// Kernel::Sign: y = +1 where x >= 0 (−0 included), −1 elsewhere (negatives and NaN), as the CPU
// executor writes it. One invocation per value; may run in place.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = flat(wg, nwg, li);
  if (i >= p.n * p.len) { return; }
  y[i] = select(-1.0, 1.0, ld(i) >= 0.0);
}
