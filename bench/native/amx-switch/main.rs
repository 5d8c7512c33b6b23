//! Session 20's micro-benchmark of the AMX tile on this machine (QUANT.md, "Speed": why the
//! gathered int8 conv stayed on `vpdpbusd`). Standalone, no crate:
//!
//!   rustc --edition 2021 -O -C target-feature=+avx512f,+avx512bw,+avx512vnni main.rs -o /tmp/amx-switch && /tmp/amx-switch
//!
//! Prints the minimum over 200 rounds (of 2,000 calls each) of one 32-row block pair of the
//! CNN's second conv as the AMX conv ran it: 6 k-steps × 4 `tdpbusd` (two 16-row A tiles ×
//! two B panels), A rows at strides 400 / 448 / 384 / 64 bytes; with 224 64-byte stores (the
//! panel copy) before; with the tiles zeroed and stored; and after 4,800 `vpdpbusd` (the
//! switch from vector to tile code), against those `vpdpbusd` alone. Linux x86_64 with
//! AMX-INT8 only (it asks the kernel for the tile state first).
use std::arch::asm;
use std::time::Instant;
#[repr(C, align(64))] struct Cfg([u8;64]);
#[repr(C, align(64))] struct Buf([u8; 65536]);
#[inline(never)]
unsafe fn run(p: *const u8, sa: usize, m: usize, zero_store: bool, q: *mut u8, cfg: Option<*const u8>) {
    for _ in 0..m {
        if zero_store && cfg.is_none() && sa != 400 && sa != 64 { for r in 0..32 { for j in 0..7 { asm!("vmovdqu8 [{d}]{{{k}}}, zmm1", d = in(reg) (if sa == 448 { p as *mut u8 } else { q.add(2048) }).add(r*448 + j*64), k = in(kreg) 0xffffffffffffu64, out("zmm1") _); } } }
        if sa == 64 && zero_store { for _ in 0..600 { asm!("vpdpbusd zmm0, zmm1, zmm2","vpdpbusd zmm3, zmm1, zmm2","vpdpbusd zmm4, zmm1, zmm2","vpdpbusd zmm5, zmm1, zmm2","vpdpbusd zmm6, zmm1, zmm2","vpdpbusd zmm7, zmm1, zmm2","vpdpbusd zmm8, zmm1, zmm2","vpdpbusd zmm9, zmm1, zmm2", out("zmm0") _, out("zmm3") _, out("zmm4") _, out("zmm5") _, out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _); } }
        if sa == 64 && zero_store && q.is_null() { continue; }
        if let Some(c) = cfg { asm!("ldtilecfg [{c}]", c = in(reg) c); }
        if zero_store { asm!("tilezero tmm0", "tilezero tmm3","tilezero tmm6","tilezero tmm7"); }
        for k in 0..6 { asm!("tileloadd tmm1, [{a} + {s}*1]","tileloadd tmm2, [{b} + {t}*1]","tileloadd tmm4, [{c} + {t}*1]","tileloadd tmm5, [{d} + {s}*1]", "tdpbusd tmm0, tmm1, tmm2","tdpbusd tmm3, tmm1, tmm4","tdpbusd tmm6, tmm5, tmm2","tdpbusd tmm7, tmm5, tmm4", a = in(reg) p.add(k*64), b = in(reg) p.add(16384+k*1024), c = in(reg) p.add(24576+k*1024), d = in(reg) p.add(k*64+16*sa), s = in(reg) sa, t = in(reg) 64usize); }
        if zero_store { asm!("tilestored [{p} + {s}*1], tmm0", "tilestored [{p} + {s}*1], tmm3","tilestored [{p} + {s}*1], tmm6","tilestored [{p} + {s}*1], tmm7", p = in(reg) q, s = in(reg) 64usize); }
        if cfg.is_some() { asm!("tilerelease"); }
    }
}
fn main() {
    let ret: isize;
    unsafe { asm!("syscall", inlateout("rax") 158isize => ret, in("rdi") 0x1023usize, in("rsi") 18usize, lateout("rcx") _, lateout("r11") _, options(nostack)); }
    assert_eq!(ret, 0);
    let mut c = [0u8;64]; c[0]=1; for t in 0..8 { c[16+2*t]=64; c[48+t]=16; }
    let cfg = Cfg(c);
    let mut buf = Box::new(Buf([1u8; 65536]));
    let p = buf.0.as_ptr(); let q = unsafe { buf.0.as_mut_ptr().add(49152) };
    let m = 2000usize;
    unsafe { asm!("ldtilecfg [{c}]", c = in(reg) cfg.0.as_ptr()); }
    let mut best = vec![f64::MAX; 9];
    for _ in 0..200 {
        for (i, (sa, zs)) in [(400usize, false), (448, false), (384, false), (64, false), (448, true), (384, true), (400, true), (64, true)].into_iter().enumerate() {
            if i == 7 { let t = Instant::now(); unsafe { run(p, 64, m, true, std::ptr::null_mut(), None) }; best[8] = best[8].min(t.elapsed().as_secs_f64() * 1e9 / m as f64); }
            let t = Instant::now();
            unsafe { run(p, sa, m, zs, q, None) };
            best[i] = best[i].min(t.elapsed().as_secs_f64() * 1e9 / m as f64);
        }
    }
    for (i, l) in ["stride 400", "stride 448", "stride 384", "stride 64", "448: gather into A region first", "384: gather elsewhere first", "400 zero+store", "4800 vpdpbusd then 24 tdpbusd"].iter().enumerate() { println!("{l}: min {:.1} ns per 24 tdpbusd", best[i]); }
    println!("4800 vpdpbusd alone: {:.1} ns", best[8]);
    unsafe { asm!("tilerelease"); }
}
