// Kernel::Pool on HWC activations with [top, left, bottom, right] padding. p.kind: 0 = max
// (padded cells never win), 1 = average over the cells inside the image, 2 = average counting
// the padding too (count_include_pad: the window clipped to the padded image, as ONNX and
// PyTorch do when a ceil-mode window runs past the padding). One invocation per output value.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = flat(wg, nwg, li);
  let per = p.oh * p.ow * p.c;
  if (i >= p.n * per) { return; }
  let s = i / per;
  let r = i % per;
  let ch = r % p.c;
  let px = r / p.c;
  let oy = px / p.ow;
  let ox = px % p.ow;
  let xs = s * p.h * p.w * p.c + ch;
  var m = 0.0;
  var sum = 0.0;
  var count = 0u;
  var padded = 0u;
  for (var ky = 0u; ky < p.kh; ky++) {
    let yy = i32(oy * p.sh + ky) - i32(p.pt);
    if (yy >= i32(p.h + p.pb)) { continue; }
    for (var kx = 0u; kx < p.kw; kx++) {
      let xx = i32(ox * p.sw + kx) - i32(p.pl);
      if (xx >= i32(p.w + p.pr)) { continue; }
      padded++;
      if (yy < 0 || yy >= i32(p.h) || xx < 0 || xx >= i32(p.w)) { continue; }
      let v = x[xs + (u32(yy) * p.w + u32(xx)) * p.c];
      // Start from a real element, not -inf: a max is then always an input value.
      if (count == 0u) { m = v; } else { m = max(m, v); }
      sum += v;
      count++;
    }
  }
  if (p.kind == 0u) {
    y[i] = m;
  } else if (p.kind == 1u) {
    y[i] = select(0.0, sum / f32(count), count > 0u);
  } else {
    y[i] = select(0.0, sum / f32(padded), padded > 0u);
  }
}
