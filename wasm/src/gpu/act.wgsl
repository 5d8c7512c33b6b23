// Kernel::Act: y = act(x) elementwise; may run in place (ld reads y then, see kernels.rs).
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = flat(wg, nwg, li);
  if (i >= p.n * p.len) { return; }
  y[i] = act(ld(i));
}
