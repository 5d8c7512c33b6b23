// Max pooling, NCHW, no padding (windows always lie inside the input: the core's shape rule),
// with an optional fused ReLU (max then clamp equals clamp then max). One invocation per output.
struct P {
  n: u32, c: u32, ih: u32, iw: u32,
  oh: u32, ow: u32, kh: u32, kw: u32,
  sh: u32, sw: u32, relu: u32, _a: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: P;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.y * nwg.x + wg.x) * 64u + li;
  let per = p.c * p.oh * p.ow;
  if (i >= p.n * per) { return; }
  let plane = i / (p.oh * p.ow); // s * c + channel
  let oy = (i / p.ow) % p.oh;
  let ox = i % p.ow;
  let base = plane * p.ih * p.iw;
  // Start from a real element, not -inf: the output is then always an input value.
  var m = x[base + (oy * p.sh) * p.iw + ox * p.sw];
  for (var ky = 0u; ky < p.kh; ky++) {
    for (var kx = 0u; kx < p.kw; kx++) {
      m = max(m, x[base + (oy * p.sh + ky) * p.iw + ox * p.sw + kx]);
    }
  }
  if (p.relu != 0u) { m = max(m, 0.0); }
  y[i] = m;
}
