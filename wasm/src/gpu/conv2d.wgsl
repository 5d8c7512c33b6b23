// 2-D convolution, NCHW activations, W: [out_c, in_c, kh, kw], symmetric zero padding, then
// bias and an optional fused ReLU. One invocation per output value (s, oc, oy, ox): direct
// convolution, no im2col buffer (the models are small; correctness first, see DESIGN.md).
struct P {
  n: u32, ic: u32, ih: u32, iw: u32,
  oc: u32, oh: u32, ow: u32, kh: u32,
  kw: u32, sh: u32, sw: u32, ph: u32,
  pw: u32, relu: u32, _a: u32, _b: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<uniform> p: P;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * 64u + li;
  let per = p.oc * p.oh * p.ow;
  if (i >= p.n * per) { return; }
  let s = i / per;
  let r = i % per;
  let c = r / (p.oh * p.ow);
  let oy = (r / p.ow) % p.oh;
  let ox = r % p.ow;
  var acc = 0.0;
  for (var ci = 0u; ci < p.ic; ci++) {
    let xbase = (s * p.ic + ci) * p.ih * p.iw;
    let wbase = (c * p.ic + ci) * p.kh * p.kw;
    for (var ky = 0u; ky < p.kh; ky++) {
      // Signed: the padding puts the first rows/columns above/left of the image.
      let yy = i32(oy * p.sh + ky) - i32(p.ph);
      if (yy < 0 || yy >= i32(p.ih)) { continue; }
      for (var kx = 0u; kx < p.kw; kx++) {
        let xx = i32(ox * p.sw + kx) - i32(p.pw);
        if (xx < 0 || xx >= i32(p.iw)) { continue; }
        acc = fma(x[xbase + u32(yy) * p.iw + u32(xx)], w[wbase + ky * p.kw + kx], acc);
      }
    }
  }
  acc += b[c];
  if (p.relu != 0u) { acc = max(acc, 0.0); }
  y[i] = acc;
}
