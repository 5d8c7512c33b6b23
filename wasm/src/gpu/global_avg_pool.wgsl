// Kernel::GlobalAvgPool: HWC [hw, c] -> [c], the mean over the pixels. One invocation per
// (sample, channel); neighbouring invocations read neighbouring channels of one pixel.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = flat(wg, nwg, li);
  if (i >= p.n * p.c) { return; }
  let s = i / p.c;
  let ch = i % p.c;
  let xs = s * p.hw * p.c + ch;
  var sum = 0.0;
  for (var px = 0u; px < p.hw; px++) {
    sum += x[xs + px * p.c];
  }
  y[i] = sum / f32(p.hw);
}
