// quant.rs's integer epilogue in 32-bit words, bit for bit (core/runtime/QUANT.md, "WebGPU").

const IMIN: i32 = -2147483647 - 1;
const IMAX: i32 = 2147483647;

// An on-grid input s·(q − zp) back to q: v·(1/s) is within 4e-5 of an integer, so no `/`.
fn code(v: f32) -> i32 {
  let t = round(clamp(v * p.inv, -512.0, 512.0));
  return clamp(i32(t) + i32(p.zp), 0, 255);
}

// a + b saturated (i32 + wraps): overflow iff both signs differ from the sum's.
fn sat_add(a: i32, b: i32) -> i32 {
  let s = a + b;
  if (((a ^ s) & (b ^ s)) < 0) { return select(IMIN, IMAX, a >= 0); }
  return s;
}

// srdhm(x, m) = floor((x·m + 2^30) / 2^31), m >= 0, the i64 product from 16-bit limbs.
fn srdhm(x: i32, m: i32) -> i32 {
  let bx = bitcast<u32>(x);
  let a = select(bx, 0u - bx, x < 0); // |x|; 2^31 for i32::MIN
  let b = bitcast<u32>(m);
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let p0 = a0 * b0;
  let p1 = a0 * b1;
  let p2 = a1 * b0;
  let p3 = a1 * b1;
  let mid = (p0 >> 16u) + (p1 & 0xffffu) + (p2 & 0xffffu);
  var lo = (mid << 16u) | (p0 & 0xffffu);
  var hi = p3 + (p1 >> 16u) + (p2 >> 16u) + (mid >> 16u);
  if (x < 0) {
    // Negate (hi, lo): the +1 carries into hi only when lo was 0.
    lo = ~lo + 1u;
    hi = ~hi + select(0u, 1u, lo == 0u);
  }
  let lo2 = lo + 0x40000000u;
  hi = hi + select(0u, 1u, lo2 < lo);
  // The quotient fits i32: bits 31..62 of the sum.
  return bitcast<i32>((hi << 1u) | (lo2 >> 31u));
}

// round(x / 2^r), ties away from zero, r in 0..=31 (quant.rs `rounding_rshift`).
fn rshift_round(x: i32, r: u32) -> i32 {
  let mask = bitcast<i32>((1u << r) - 1u);
  let rem = x & mask;
  let thr = (mask >> 1u) + select(0, 1, x < 0);
  return (x >> r) + select(0, 1, rem > thr);
}

// quant.rs `epilogue_row` for column c.
fn epilogue(acc: i32, c: u32) -> f32 {
  var x = sat_add(acc, bias[c]);
  if (p.mode == 1u) {
    // `x as f32` exactly: WGSL's i32 -> f32 need not round to nearest above 2^24.
    let v = (f32(x >> 16u) * 65536.0 + f32(x & 0xffff)) * dscale[c];
    return select(v, max(v, 0.0), p.relu != 0u);
  }
  let sh = shift[c];
  if (sh > 0) {
    let l = u32(sh);
    if (x > (IMAX >> l)) { x = IMAX; } else if (x < (IMIN >> l)) { x = IMIN; } else { x = x << l; }
  }
  let z = rshift_round(srdhm(x, mult[c]), u32(max(-sh, 0)));
  // = saturating z + zp, then [lo, 255] (zp in 0..=255).
  let q = clamp(clamp(z, -512, 512) + i32(p.ozp), i32(p.lo), 255);
  return f32(q - i32(p.ozp)) * p.oscale;
}
