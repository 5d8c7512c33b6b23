//! The int8 CNN's second convolution alone (12 × 12 × 16 codes in, 5 × 5 × 16 → 32, the 2 × 2
//! max pool fused: `KernelSet::qgemm_gather_max` with 64 rows in groups of 4, k = 400), one
//! sample per call, on every int8 kernel set in turn: the MINIMUM time per call over many
//! short rounds, interleaved set by set, so a loaded machine's interruptions drop out (the
//! whole-model `int8_sets` takes the minimum over 20 whole batches, which a shared core rarely
//! leaves alone). Checks that every set gives the same sums. Written to time an AMX form of
//! this conv against `vpdpbusd` (session 20, not kept: QUANT.md "Speed"); the two AVX-512 sets
//! now run the same conv code, so their two lines show the noise floor.
//!
//! `cargo run --release -p mdeploy-core --example qconv_sets [ROUNDS] [CALLS]` (default 400
//! rounds of 200 calls).

use mdeploy_core::kernels::qgemm::QMAX_MR;
use mdeploy_core::kernels::KernelSet;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(400);
    let calls: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let (h, w, c, kh, kw, n) = (12usize, 12usize, 16usize, 5usize, 5usize, 32usize);
    let (oh, ow) = (h - kh + 1, w - kw + 1);
    // A fixed pseudo-random input and weights (the kernels' time does not depend on values).
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let x: Vec<u8> = (0..h * w * c + 4).map(|_| next() as u8).collect();
    let k = kh * kw * c;
    let wts: Vec<i8> = (0..k * n).map(|_| (next() % 255) as i8).map(|v| v.max(-127)).collect();
    // Word g = (ky, j): ky · W · C + 4j (runtime/src/exec/qconv.rs).
    let offs: Vec<u32> = (0..k / 4).map(|g| ((g / (kw * c / 4)) * w * c + 4 * (g % (kw * c / 4))) as u32).collect();
    // Pool window p's four conv pixels, one window after the other.
    let base: Vec<u32> = (0..oh / 2 * ow / 2)
        .flat_map(|p| (0..4).map(move |q| (p / (ow / 2) * 2 + q / 2, p % (ow / 2) * 2 + q % 2)))
        .map(|(oy, ox)| ((oy * w + ox) * c) as u32)
        .collect();
    let mp = base.len() / 4;
    let mut sets: Vec<KernelSet> = KernelSet::available().into_iter().filter(|k| k.name() != "generic").collect();
    sets.dedup_by_key(|k| k.qmmm_name());
    let packed: Vec<_> = sets.iter().map(|ks| ks.qpack_b(k, n, &wts)).collect();
    // The documented A panel scratch (exec.rs, QScratch::reserve).
    let mut apanel = vec![0i32; QMAX_MR * k / 2];
    let mut out = vec![vec![0i32; mp * n]; sets.len()];
    let mut best = vec![f64::MAX; sets.len()];
    for _ in 0..rounds {
        for (i, ks) in sets.iter().enumerate() {
            let t = Instant::now();
            for _ in 0..calls {
                ks.qgemm_gather_max(&x, &base, 4, &offs, &packed[i], &mut out[i], n, &mut apanel);
            }
            best[i] = best[i].min(t.elapsed().as_secs_f64() * 1e9 / calls as f64);
        }
    }
    for (i, ks) in sets.iter().enumerate() {
        assert_eq!(out[i], out[0], "{} differs from {}", ks.qmmm_name(), sets[0].qmmm_name());
        println!("{:<48} {:>8.0} ns per conv (min of {rounds} rounds × {calls})", format!("{} {}", ks.name(), ks.qmmm_name()), best[i]);
    }
}
