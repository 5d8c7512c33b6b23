// Kernel::Conv2d on HWC activations, grouped (depthwise: groups = c), strided, dilated, with
// [top, left] zero padding (bottom/right padding only shows in oh/ow). Group g reads input
// channels g*cg.. and writes output channels g*ocg..; its weights are the [(ky, kx, ci) x ocg]
// matrix, row-major, groups one after another. One invocation per output value: direct
// convolution (correctness first; the models are small, see DESIGN.md).
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = flat(wg, nwg, li);
  let per = p.oh * p.ow * p.oc;
  if (i >= p.n * per) { return; }
  let s = i / per;
  let r = i % per;
  let o = r % p.oc;
  let px = r / p.oc;
  let oy = px / p.ow;
  let ox = px % p.ow;
  let cg = p.c / p.groups;
  let ocg = p.oc / p.groups;
  let g = o / ocg;
  let og = o % ocg;
  let xs = s * p.h * p.w * p.c + g * cg;
  let wg0 = g * p.kh * p.kw * cg * ocg + og;
  var acc = 0.0;
  for (var ky = 0u; ky < p.kh; ky++) {
    // Signed: the padding puts the first rows/columns above/left of the image.
    let yy = i32(oy * p.sh + ky * p.dh) - i32(p.pt);
    if (yy < 0 || yy >= i32(p.h)) { continue; }
    for (var kx = 0u; kx < p.kw; kx++) {
      let xx = i32(ox * p.sw + kx * p.dw) - i32(p.pl);
      if (xx < 0 || xx >= i32(p.w)) { continue; }
      let xb = xs + (u32(yy) * p.w + u32(xx)) * p.c;
      let wb = wg0 + (ky * p.kw + kx) * cg * ocg;
      for (var ci = 0u; ci < cg; ci++) {
        acc = fma(x[xb + ci], wt[wb + ci * ocg], acc);
      }
    }
  }
  y[i] = act(acc + b[o]);
}
