// Kernel::QConv2d (one group), the integer twin of conv2d.wgsl. A padded cell is the input's
// zero point, as in the CPU's im2col. wt: int8 packed 4 per u32 along r = (ky·kw + kx)·c + ci.
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
  let xs = s * p.h * p.w * p.c;
  let wr = o * ((p.kh * p.kw * p.c + 3u) / 4u);
  let zp = clamp(i32(p.zp), 0, 255);
  var acc = 0;
  for (var ky = 0u; ky < p.kh; ky++) {
    let yy = i32(oy * p.sh + ky * p.dh) - i32(p.pt);
    for (var kx = 0u; kx < p.kw; kx++) {
      let xx = i32(ox * p.sw + kx * p.dw) - i32(p.pl);
      let inside = yy >= 0 && yy < i32(p.h) && xx >= 0 && xx < i32(p.w);
      let xb = xs + (u32(max(yy, 0)) * p.w + u32(max(xx, 0))) * p.c;
      let rb = (ky * p.kw + kx) * p.c;
      for (var ci = 0u; ci < p.c; ci++) {
        let rr = rb + ci;
        let wv = bitcast<i32>(wt[wr + rr / 4u] << (24u - 8u * (rr % 4u))) >> 24u;
        var q = zp;
        if (inside) { q = code(x[xb + ci]); }
        acc += q * wv;
      }
    }
  }
  y[i] = epilogue(acc, o);
}
