//! `mdeploy report MODEL... --out DIR`: one table (markdown) and one accuracy-against-size chart
//! (SVG, drawn with `plotters`) for any set of models.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use mdeploy_core::{format, Plan};
use plotters::prelude::*;

use crate::{data, model_file};

#[derive(clap::Args, Debug)]
#[command(after_help = "For every model: parameters, non-zero weights (pruned models store fewer), file bytes,
gzip -9 bytes, accuracy on the 2,000 test digits of the fixed split, and native latency through
the inference plan on this machine (one thread, the fastest of repeated runs at batch 1 and at
batch 1024; a busy machine gives slower numbers: compare models within one report). Writes DIR/report.md
and DIR/accuracy-vs-size.svg (accuracy against gzip bytes).

Wasm latency comes from a file (--wasm-latency): the same measurement by the example
core/examples/latency.rs built for wasm32-wasip1 with simd128 and run in Node (V8) through
node:wasi, one JSON object per line with the model's digest (as `mdeploy info` shows it), batch1_us and batch1024_ms:

  RUSTFLAGS='-C target-feature=+simd128' cargo build --release -p mdeploy-core --example latency \
      --target wasm32-wasip1
  node bench/wasm/wasi-run.mjs $CARGO_TARGET_DIR/wasm32-wasip1/release/examples/latency.wasm \
      $PWD/models/mnist-mlp.mdm ... > wasm-latency.jsonl

Models are matched by that digest; a model without a line shows \"not measured\".

Examples:
  mdeploy report models/mnist-mlp.mdm models/mnist-mlp-sparse90.mdm models/mnist-mlp-student.mdm --out report
  mdeploy report models/*.mdm --out /tmp/r --json")]
pub struct ReportArgs {
    /// The models (.mdm files).
    #[arg(required = true)]
    pub models: Vec<String>,
    /// Folder for report.md and accuracy-vs-size.svg (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Folder with the mnist package's 0.json..9.json (see `mdeploy train --help`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Also print the rows as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Wasm latencies measured in Node (JSON lines from core/examples/latency.rs, see below).
    #[arg(long)]
    pub wasm_latency: Option<PathBuf>,
}

struct Row {
    name: String,
    file: String,
    params: usize,
    nonzeros: usize,
    weights: usize,
    bytes: usize,
    gzip: usize,
    accuracy: f32,
    batch1_us: f64,
    batch1024_ms: f64,
    /// (batch 1 µs, batch 1024 ms) in wasm, when the --wasm-latency file has this model.
    wasm: Option<(f64, f64)>,
}

/// The `--wasm-latency` file: model digest (hex) -> (batch 1 µs, batch 1024 ms, what ran it).
fn read_wasm_latency(path: &std::path::Path) -> Result<Vec<(String, f64, f64, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--wasm-latency {}: cannot read: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| l.trim_start().starts_with('{')) {
        let bad = |what: &str| {
            format!(
                "--wasm-latency {} line {}: {what}; expected {{\"digest\": \"<hex>\", \"batch1_us\": <number>, \"batch1024_ms\": <number>, \"kernels\": \"...\"}} \
                 as printed by core/examples/latency.rs",
                path.display(),
                n + 1
            )
        };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(&format!("not JSON ({e})")))?;
        let num = |k: &str| v.get(k).and_then(|x| x.as_f64()).filter(|x| x.is_finite() && *x > 0.0);
        let sha = v.get("digest").and_then(|x| x.as_str()).ok_or_else(|| bad("no digest"))?;
        let (b1, b1024) = (num("batch1_us").ok_or_else(|| bad("no positive batch1_us"))?, num("batch1024_ms").ok_or_else(|| bad("no positive batch1024_ms"))?);
        let kernels = v.get("kernels").and_then(|x| x.as_str()).unwrap_or("?").to_string();
        out.push((sha.to_ascii_lowercase(), b1, b1024, kernels));
    }
    Ok(out)
}

fn gzip_len(bytes: &[u8]) -> Result<usize, String> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).map_err(|e| e.to_string())?;
    Ok(enc.finish().map_err(|e| e.to_string())?.len())
}

/// The fastest of `reps` runs of `f`, in seconds: on a shared machine other jobs only ever add
/// time, so the minimum is the steadiest estimate of what the model costs (a median of 7
/// swung between 2.2 and 6.2 ms for the same model under load).
fn min_secs(reps: usize, mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        f()?;
        t.push(t0.elapsed().as_secs_f64());
    }
    Ok(t.into_iter().fold(f64::INFINITY, f64::min))
}

pub fn run(args: &ReportArgs) -> Result<(), String> {
    std::fs::create_dir_all(&args.out).map_err(|e| format!("--out {}: cannot create: {e}", args.out.display()))?;
    let split = data::load_split(&data::mnist_dir(args.data.as_deref())?)?;
    let wasm = args.wasm_latency.as_deref().map(read_wasm_latency).transpose()?;
    let mut rows = Vec::new();
    for file in &args.models {
        let bytes = model_file::read_bytes(file)?;
        let model = format::read(&bytes).map_err(|e| format!("{file}: {e}"))?;
        if !crate::prune::is_mnist(&model) {
            return Err(format!("{file}: not an MNIST classifier (784 inputs, 10 outputs); the report scores on MNIST"));
        }
        let layers = mdeploy_core::train::prune::layer_sparsity(&model).map_err(|e| format!("{file}: {e}"))?;
        let accuracy = crate::eval::score(&model, &split.test, 256)?.accuracy();
        let x1 = &split.test.images[..784];
        let x1024 = &split.test.images[..1024 * 784];
        let mut plan = Plan::new(&model, 1024).map_err(|e| e.to_string())?;
        let mut out = vec![0.0; 1024 * 10];
        // Warm-up, then the fastest of 301 single digits and of 15 batches of 1024.
        plan.run(x1024, 1024, &mut out).map_err(|e| e.to_string())?;
        let b1 = min_secs(301, || plan.run(x1, 1, &mut out[..10]).map_err(|e| e.to_string()))?;
        let b1024 = min_secs(15, || plan.run(x1024, 1024, &mut out).map_err(|e| e.to_string()))?;
        let sha = format::digest_hex(&bytes).map_err(|e| format!("{file}: {e}"))?.to_ascii_lowercase();
        let wasm = wasm.as_ref().and_then(|w| w.iter().find(|(s, ..)| *s == sha)).map(|&(_, b1, b1024, _)| (b1, b1024));
        rows.push(Row {
            name: model.meta.name.clone(),
            file: file.clone(),
            params: model.param_count(),
            nonzeros: layers.iter().map(|l| l.nonzeros).sum(),
            weights: layers.iter().map(|l| l.total).sum(),
            bytes: bytes.len(),
            gzip: gzip_len(&bytes)?,
            accuracy,
            batch1_us: b1 * 1e6,
            batch1024_ms: b1024 * 1e3,
            wasm,
        });
    }

    let mut md = String::from(
        "| model | file | parameters | non-zero weights | file bytes | gzip -9 bytes | accuracy (fixed split) | native batch 1 | native batch 1024 | wasm batch 1 | wasm batch 1024 |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &rows {
        let (w1, w1024) = match r.wasm {
            Some((b1, b1024)) => (format!("{b1:.1} µs"), format!("{b1024:.2} ms")),
            None => ("not measured".into(), "not measured".into()),
        };
        md += &format!(
            "| {} | `{}` | {} | {} / {} | {} | {} | {:.2} % | {:.1} µs | {:.2} ms | {w1} | {w1024} |\n",
            r.name, r.file, r.params, r.nonzeros, r.weights, r.bytes, r.gzip, r.accuracy * 100.0, r.batch1_us, r.batch1024_ms
        );
    }
    let wasm_note = match (&args.wasm_latency, &wasm) {
        (Some(p), Some(w)) => {
            let mut sets: Vec<&str> = w.iter().map(|(.., k)| k.as_str()).collect();
            sets.sort_unstable();
            sets.dedup();
            format!(
                "Wasm latency: from `{}` (core/examples/latency.rs, the same measurement, built for wasm32-wasip1 and run in \
                 Node's V8 through node:wasi; kernel set {}): the core plan the npm package's CPU engine runs, not timed \
                 through the package's JavaScript API.",
                p.display(),
                sets.join(", ")
            )
        }
        _ => "Wasm (Node) latency: not measured (pass --wasm-latency; see `mdeploy report --help`).".to_string(),
    };
    md += "\nLatency: the inference plan (`mdeploy_core::Plan`, one thread, this machine's best kernel set), \
           fastest of 301 runs at batch 1 and of 15 at batch 1024, after one warm-up batch; measured by `mdeploy report`, \
           not a benchmark (the benchmarks are in bench/). ";
    md += &wasm_note;
    md += "\n\n![accuracy against size](accuracy-vs-size.svg)\n";
    let md_path = args.out.join("report.md");
    std::fs::write(&md_path, &md).map_err(|e| format!("{}: {e}", md_path.display()))?;

    let svg_path = args.out.join("accuracy-vs-size.svg");
    chart(&rows, &svg_path).map_err(|e| format!("{}: cannot draw the chart: {e}", svg_path.display()))?;

    if args.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name, "file": r.file, "params": r.params, "nonzeros": r.nonzeros, "weights": r.weights,
                    "bytes": r.bytes, "gzip_bytes": r.gzip, "accuracy": crate::eval::round6(r.accuracy),
                    "batch1_us": r.batch1_us, "batch1024_ms": r.batch1024_ms,
                    "wasm_batch1_us": r.wasm.map(|w| w.0), "wasm_batch1024_ms": r.wasm.map(|w| w.1),
                })
            })
            .collect();
        println!("{}", serde_json::Value::from(v));
    } else {
        print!("{md}");
        println!("wrote {} and {}", md_path.display(), svg_path.display());
    }
    Ok(())
}

/// Accuracy (%) against gzip kilobytes, one labelled point per model.
fn chart(rows: &[Row], path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let kb: Vec<f64> = rows.iter().map(|r| r.gzip as f64 / 1000.0).collect();
    let acc: Vec<f64> = rows.iter().map(|r| r.accuracy as f64 * 100.0).collect();
    let x_max = kb.iter().cloned().fold(1.0, f64::max) * 1.15;
    let (lo, hi) = acc.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (y_lo, y_hi) = ((lo - 1.0).floor().max(0.0), (hi + 0.5).ceil().min(100.0));
    let mut c = ChartBuilder::on(&root)
        .caption("accuracy on the fixed split against gzip size", ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, y_lo..y_hi)?;
    c.configure_mesh().x_desc("gzip -9 size (kB)").y_desc("test accuracy (%)").draw()?;
    c.draw_series(kb.iter().zip(&acc).zip(rows).map(|((&x, &y), r)| {
        EmptyElement::at((x, y))
            + Circle::new((0, 0), 5, BLUE.filled())
            + Text::new(r.name.clone(), (8, -6), ("sans-serif", 13))
    }))?;
    root.present()?;
    Ok(())
}
