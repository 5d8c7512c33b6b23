//! onnxruntime through its C API, timed with the protocol of `ort_bench.py` and our criterion
//! bench, so that batch 1 carries no Python or Node per-call floor.
//!
//!     ORT_DYLIB_PATH=<libonnxruntime.so> ort-c-bench ONNX_DIR DIGITS.f32 OUT.json
//!
//! The library is loaded at run time (`ort`'s `load-dynamic`): run.sh points it at the one inside
//! the bench venv's onnxruntime wheel, so this column and the Python column run the same build.
//! DIGITS.f32 is the fixed split's 2,000 test digits as little-endian f32, [2000, 1, 28, 28]
//! (ort_bench.py writes it from mnist_digits.py, so all three witnesses read the same bytes).
//!
//! Session: one intra-op and one inter-op thread, sequential, all graph optimizations. Batch 1
//! cycles through the 2,000 digits with an input value and an output value built once and bound
//! through an IoBinding (the cheapest call the C API has: no per-call allocation or name lookup);
//! 0.5 s warm-up, then every call of a 3 s window (at most 200,000) timed on its own. Batch 1024:
//! the first 1,024 digits bound once, 2 warm-up calls, then calls for 3 s (at least 10), median;
//! also each call's thread CPU time (min, median), comparable with `examples/cnn_loop.rs` on a
//! loaded machine (one intra-op thread: onnxruntime computes on the calling thread).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ort::environment::Environment;
use ort::memory::MemoryInfo;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;
use serde_json::{json, Value};

const WARM: Duration = Duration::from_millis(500);
const WINDOW: Duration = Duration::from_secs(3);
const MAX_CALLS: usize = 200_000;
const PIXELS: usize = 28 * 28;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn session(env: &Environment, path: &Path) -> Res<Session> {
    Ok(Session::builder(env)?
        .with_intra_threads(1)?
        .with_inter_threads(1)?
        .with_parallel_execution(false)?
        .with_optimization_level(GraphOptimizationLevel::All)?
        .commit_from_file(path)
        .map_err(|e| format!("{}: {e}", path.display()))?)
}

/// Median, p99 (rank round((n - 1) q), as the Rust side and ort_bench.py) and the median of 100
/// consecutive chunk means (criterion's statistic; numpy.array_split's chunk sizes).
fn stats(times: &[f64]) -> Value {
    let mut a = times.to_vec();
    a.sort_by(f64::total_cmp);
    let pick = |q: f64| a[((a.len() - 1) as f64 * q).round() as usize];
    let n = times.len();
    let k = n.min(100);
    let (base, extra) = (n / k, n % k);
    let mut means = Vec::with_capacity(k);
    let mut at = 0;
    for c in 0..k {
        let len = base + usize::from(c < extra);
        means.push(times[at..at + len].iter().sum::<f64>() / len as f64);
        at += len;
    }
    means.sort_by(f64::total_cmp);
    let mid = if k % 2 == 1 {
        means[k / 2]
    } else {
        (means[k / 2 - 1] + means[k / 2]) / 2.0
    };
    json!({"median_ns": pick(0.5), "p99_ns": pick(0.99), "median_of_chunk_means_ns": mid, "calls": n})
}

fn per_call(mut call: impl FnMut(usize) -> Res<()>, n: usize) -> Res<Value> {
    let mut i = 0;
    let warm_end = Instant::now() + WARM;
    while Instant::now() < warm_end {
        call(i % n)?;
        i += 1;
    }
    let mut times = Vec::with_capacity(MAX_CALLS);
    let end = Instant::now() + WINDOW;
    while times.is_empty() || (times.len() < MAX_CALLS && Instant::now() < end) {
        let t = Instant::now();
        call(i % n)?;
        times.push(t.elapsed().as_nanos() as f64);
        i += 1;
    }
    Ok(stats(&times))
}

fn batch1(sess: &mut Session, digits: &[f32]) -> Res<Value> {
    let input = sess.inputs()[0].name().to_string();
    let output = sess.outputs()[0].name().to_string();
    let n = digits.len() / PIXELS;
    let xs = (0..n)
        .map(|i| {
            Tensor::from_array((
                [1usize, 1, 28, 28],
                digits[i * PIXELS..(i + 1) * PIXELS].to_vec(),
            ))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut binding = sess.create_binding()?;
    binding.bind_output_to_device(&output, &MemoryInfo::default())?;
    let r = per_call(
        |i| {
            binding.bind_input(&input, &xs[i])?;
            sess.run_binding(&binding)?;
            Ok(())
        },
        n,
    )?;
    let mut r = r;
    r["api"] = json!("IoBinding + RunWithBinding (C API)");
    Ok(r)
}

fn batch1024(sess: &mut Session, digits: &[f32]) -> Res<Value> {
    let input = sess.inputs()[0].name().to_string();
    let output = sess.outputs()[0].name().to_string();
    let x = Tensor::from_array(([1024usize, 1, 28, 28], digits[..1024 * PIXELS].to_vec()))?;
    let mut binding = sess.create_binding()?;
    binding.bind_input(&input, &x)?;
    binding.bind_output_to_device(&output, &MemoryInfo::default())?;
    for _ in 0..2 {
        sess.run_binding(&binding)?;
    }
    let cpu0 = cpu_time_ns();
    let wall0 = Instant::now();
    let end = wall0 + WINDOW;
    let mut times = Vec::new();
    // This thread's CPU time per call too: with one intra-op thread onnxruntime runs on the
    // caller, so on a loaded machine this compares with our examples' thread CPU time
    // (`cnn_loop`), which leaves out the time slices other processes took.
    let mut cpu = Vec::new();
    while times.len() < 10 || Instant::now() < end {
        let (t, c) = (Instant::now(), thread_time_ns());
        sess.run_binding(&binding)?;
        times.push(t.elapsed().as_nanos() as f64);
        cpu.push(thread_time_ns() - c);
    }
    cpu.sort_by(f64::total_cmp);
    // Process CPU time / wall time of the window: about 1 shows onnxruntime ran on one thread.
    let cpu_per_wall = (cpu_time_ns() - cpu0) / wall0.elapsed().as_nanos() as f64;
    times.sort_by(f64::total_cmp);
    let m = times.len();
    let med = if m % 2 == 1 {
        times[m / 2]
    } else {
        (times[m / 2 - 1] + times[m / 2]) / 2.0
    };
    Ok(
        json!({"median_ns": med, "images_per_s": 1024.0 / (med * 1e-9), "calls": m, "cpu_per_wall": cpu_per_wall,
               "thread_cpu_min_ns": cpu[0], "thread_cpu_median_ns": cpu[m / 2]}),
    )
}

/// This thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), nanoseconds.
fn thread_time_ns() -> f64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `t` is a valid timespec (two 64-bit fields on 64-bit Linux); the call only writes it.
    if unsafe { clock_gettime(3, &mut t) } != 0 {
        return f64::NAN;
    }
    t.sec as f64 * 1e9 + t.nsec as f64
}

/// This process's user + system CPU time, from /proc/self/stat (clock ticks of 10 ms on Linux):
/// coarse, but over a 3 s window it tells one busy thread from two.
fn cpu_time_ns() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) * 1e7
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, onnx_dir, digits_path, out] = args.as_slice() else {
        return Err(
            "usage: ORT_DYLIB_PATH=<libonnxruntime.so> ort-c-bench ONNX_DIR DIGITS.f32 OUT.json"
                .into(),
        );
    };
    let lib = std::env::var("ORT_DYLIB_PATH").map_err(|_| {
        "set ORT_DYLIB_PATH to the libonnxruntime.so to time (run.sh uses the bench venv's)"
    })?;
    let env = ort::init_from(&lib)?.with_name("ort-c-bench").build()?;
    let bytes = std::fs::read(digits_path).map_err(|e| format!("{digits_path}: {e}"))?;
    if bytes.len() != 2000 * PIXELS * 4 {
        return Err(format!(
            "{digits_path}: {} bytes, expected 2,000 digits of 784 f32 ({})",
            bytes.len(),
            2000 * PIXELS * 4
        )
        .into());
    }
    let digits: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let dir = PathBuf::from(onnx_dir);
    let mut models = serde_json::Map::new();
    for name in ["mlp", "cnn"] {
        let mut sess = session(&env, &dir.join(format!("mnist-{name}.onnx")))?;
        let b1 = batch1(&mut sess, &digits)?;
        let bb = batch1024(&mut sess, &digits)?;
        eprintln!(
            "onnxruntime C API {name}: batch 1 median {:.1} µs, p99 {:.1} µs; batch 1024 {:.0} img/s (CPU/wall {:.2}; thread CPU per image min {:.2} median {:.2} µs)",
            b1["median_ns"].as_f64().unwrap_or(f64::NAN) / 1e3,
            b1["p99_ns"].as_f64().unwrap_or(f64::NAN) / 1e3,
            bb["images_per_s"].as_f64().unwrap_or(f64::NAN),
            bb["cpu_per_wall"].as_f64().unwrap_or(f64::NAN),
            bb["thread_cpu_min_ns"].as_f64().unwrap_or(f64::NAN) / 1024e3,
            bb["thread_cpu_median_ns"].as_f64().unwrap_or(f64::NAN) / 1024e3,
        );
        models.insert(name.into(), json!({"batch1": b1, "batch1024": bb}));
    }
    // The cost of a call that does nothing (one Identity on [1, 10]) through the same path.
    let mut floor = session(&env, &dir.join("identity-floor.onnx"))?;
    let x = Tensor::from_array(([1usize, 10], vec![0f32; 10]))?;
    let mut binding = floor.create_binding()?;
    binding.bind_output_to_device("y", &MemoryInfo::default())?;
    let fl = per_call(
        |_| {
            binding.bind_input("x", &x)?;
            floor.run_binding(&binding)?;
            Ok(())
        },
        1,
    )?;
    eprintln!(
        "onnxruntime C API call floor (Identity graph): median {:.1} µs",
        fl["median_ns"].as_f64().unwrap_or(f64::NAN) / 1e3
    );
    let result = json!({"onnxruntime": lib, "models": models, "call_floor": fl});
    std::fs::write(out, serde_json::to_string_pretty(&result)? + "\n")
        .map_err(|e| format!("{out}: {e}"))?;
    Ok(())
}
