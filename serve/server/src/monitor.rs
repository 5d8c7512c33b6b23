//! Prediction monitoring and input drift, per served model version (SERVER.md, "Monitoring").
//!
//! ```text
//!  Loaded::run (serve/, every route) ──Observer::observe──> Monitors: (model, version) -> VersionMonitor
//!     per row: class counter += 1 (atomic), confidence bucket += 1 (atomic),
//!              row_stats -> window (last WINDOW rows; one short mutex per request)
//!  GET /metrics, GET /v2/models/m[/versions/v]/monitor ──> counts read, PSI of the window
//!                                                           against the model's reference
//! ```
//!
//! The hot path only counts and copies five numbers per row; PSI is computed when someone asks.
//! Series are labelled with what the repository serves (model folder, version number, the model
//! file's class labels), never with what a client sent.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use mdeploy_core::monitor::{self, Reference};
use mdeploy_core::ModelInfo;
use serde_json::{json, Value};

/// Rows of the live window PSI is computed over: the last 500 samples of a version.
pub const WINDOW: usize = 500;
/// Below this many rows in the window the drift status is `insufficient_data`: PSI over a few
/// rows is mostly noise (10 bins need far more than 10 samples).
pub const MIN_ROWS: usize = 100;
/// Upper bounds of the confidence (top-1 probability) histogram; `+Inf` is implied.
pub const CONFIDENCE_BUCKETS: [f64; 10] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

/// The drift of a window: PSI per feature, the largest, and the rows it was computed over.
struct Drift {
    psi: Vec<(String, f64)>,
    max: f64,
    rows: usize,
}

/// What is known about one model version's traffic.
pub struct VersionMonitor {
    /// The model file's digest: new bytes under the same version start a new monitor.
    digest: String,
    labels: Vec<String>,
    classes: Vec<AtomicU64>,
    /// Cumulative-free counts per bucket of [`CONFIDENCE_BUCKETS`] (plus one for above 1.0,
    /// reachable only by a model whose outputs are not probabilities).
    confidence: [AtomicU64; 11],
    /// Sum of top-1 probabilities, in millionths (an atomic float would need a CAS loop).
    confidence_sum_micro: AtomicU64,
    rows: AtomicU64,
    reference: Result<Reference, String>,
    /// Where the reference came from: `"model"` (its file) or `"server"` (the server's fallback).
    reference_source: &'static str,
    window: Mutex<VecDeque<[f32; 5]>>,
}

impl VersionMonitor {
    fn new(info: &ModelInfo, fallback: Option<&Fallback>) -> VersionMonitor {
        let labels: Vec<String> = (0..info.output_len).map(|c| info.label(c)).collect();
        let (reference, reference_source) = match info.meta.provenance.extra.iter().find(|(k, _)| k == monitor::META_KEY) {
            Some((_, text)) => (Reference::parse(text), "model"),
            None => match fallback {
                Some(f) if f.row_len == info.input_len => (Ok(f.reference.clone()), "server"),
                _ => (
                    Err(format!(
                        "the model file has no input reference ({}) and the server has none for {}-value inputs; add one \
                         with `mdeploy monitor-ref MODEL --out MODEL`",
                        monitor::META_KEY,
                        info.input_len
                    )),
                    "none",
                ),
            },
        };
        VersionMonitor {
            digest: info.digest.clone(),
            classes: labels.iter().map(|_| AtomicU64::new(0)).collect(),
            labels,
            confidence: Default::default(),
            confidence_sum_micro: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            reference,
            reference_source,
            window: Mutex::new(VecDeque::with_capacity(WINDOW)),
        }
    }

    fn record(&self, input: &[f32], output: &[f32], n: usize) {
        if n == 0 || self.classes.is_empty() {
            return;
        }
        let (il, ol) = (input.len() / n, output.len() / n);
        let mut stats = Vec::with_capacity(n.min(WINDOW));
        for r in 0..n {
            let row = &output[r * ol..(r + 1) * ol];
            let (best, p) = top1(row);
            if let Some(c) = self.classes.get(best) {
                c.fetch_add(1, Relaxed);
            }
            let b = CONFIDENCE_BUCKETS.iter().position(|&le| (p as f64) <= le).unwrap_or(CONFIDENCE_BUCKETS.len());
            self.confidence[b].fetch_add(1, Relaxed);
            self.confidence_sum_micro.fetch_add((p.clamp(0.0, 1e6) as f64 * 1e6) as u64, Relaxed);
            // Only the last WINDOW rows of a large batch can stay in the window.
            if self.reference.is_ok() && r + WINDOW >= n {
                stats.push(monitor::row_stats(&input[r * il..(r + 1) * il]));
            }
        }
        self.rows.fetch_add(n as u64, Relaxed);
        if !stats.is_empty() {
            if let Ok(mut w) = self.window.lock() {
                for s in stats {
                    if w.len() == WINDOW {
                        w.pop_front();
                    }
                    w.push_back(s);
                }
            }
        }
    }

    /// PSI per feature of the current window, then the largest, with the window's size;
    /// `Err` when there is no reference.
    fn drift(&self) -> Result<Drift, &str> {
        let reference = self.reference.as_ref().map_err(String::as_str)?;
        let rows: Vec<[f32; 5]> = match self.window.lock() {
            Ok(w) => w.iter().copied().collect(),
            Err(_) => Vec::new(),
        };
        let psi = reference.psi(&rows);
        let max = psi.iter().map(|(_, p)| *p).fold(0.0, f64::max);
        Ok(Drift { psi, max, rows: rows.len() })
    }

    fn json(&self, model: &str, version: &str) -> Value {
        let classes: Vec<Value> =
            self.labels.iter().zip(&self.classes).map(|(l, c)| json!({ "class": l, "count": c.load(Relaxed) })).collect();
        let mut cumulative = 0;
        let buckets: Vec<Value> = CONFIDENCE_BUCKETS
            .iter()
            .zip(&self.confidence)
            .map(|(le, c)| {
                cumulative += c.load(Relaxed);
                json!({ "le": le, "count": cumulative })
            })
            .collect();
        let rows = self.rows.load(Relaxed);
        let sum = self.confidence_sum_micro.load(Relaxed) as f64 / 1e6;
        let drift = match self.drift() {
            Err(reason) => json!({ "status": "no_reference", "reason": reason }),
            Ok(Drift { psi, max, rows: n }) => {
                let features: serde_json::Map<String, Value> = psi.into_iter().map(|(f, p)| (f, json!(p))).collect();
                let status = if n < MIN_ROWS { "insufficient_data" } else { monitor::status(max) };
                json!({
                    "status": status,
                    "reference": self.reference_source,
                    "psi": features,
                    "max_psi": max,
                    "window_rows": n,
                    "window_size": WINDOW,
                    "min_rows": MIN_ROWS,
                    "thresholds": { "moderate": monitor::MODERATE, "significant": monitor::SIGNIFICANT },
                })
            }
        };
        json!({
            "model_name": model,
            "model_version": version,
            "predictions": rows,
            "classes": classes,
            "confidence": {
                "buckets": buckets,
                "count": rows,
                "sum": sum,
                "mean": if rows > 0 { sum / rows as f64 } else { 0.0 },
            },
            "drift": drift,
        })
    }
}

/// The top class (first on ties, NaN never wins) and its value.
fn top1(row: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &v) in row.iter().enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    if best.1.is_finite() {
        best
    } else {
        (best.0, 0.0)
    }
}

/// Every served version's monitor. Shared by all generations, so counts survive a reload that
/// keeps a version's bytes; a version whose bytes change starts afresh.
#[derive(Default)]
pub struct Monitors {
    versions: RwLock<HashMap<(String, String), Arc<VersionMonitor>>>,
    fallback: Option<Fallback>,
}

/// The reference for models whose file carries none, computed by the host at start (e.g. from
/// the MNIST training split): it describes the inputs, not the model, so it serves every model
/// trained on that data. Used only for models whose input has `row_len` values.
#[derive(Clone, Debug)]
pub struct Fallback {
    pub reference: Reference,
    pub row_len: usize,
}

impl Monitors {
    /// Monitors with a reference for models that carry none.
    pub fn with_fallback(fallback: Option<Fallback>) -> Monitors {
        Monitors { versions: RwLock::default(), fallback }
    }

    fn get(&self, model: &str, version: &str) -> Option<Arc<VersionMonitor>> {
        let m = self.versions.read().ok()?;
        m.get(&(model.to_string(), version.to_string())).cloned()
    }

    /// Forgets versions no longer served (called when a generation is published).
    pub fn retain(&self, served: &[(String, u64)]) {
        if let Ok(mut m) = self.versions.write() {
            m.retain(|(name, v), _| served.iter().any(|(s, sv)| s == name && sv.to_string() == *v));
        }
    }

    /// The monitor of a served version as JSON (all zeros before its first request).
    pub fn json(&self, model: &str, version: u64) -> Value {
        let v = version.to_string();
        match self.get(model, &v) {
            Some(m) => m.json(model, &v),
            None => json!({
                "model_name": model,
                "model_version": v,
                "predictions": 0,
                "classes": [],
                "confidence": { "buckets": [], "count": 0, "sum": 0.0, "mean": 0.0 },
                "drift": { "status": "insufficient_data", "reason": "no request has reached this version yet" },
            }),
        }
    }

    /// Prometheus text for every monitored version (appended to `/metrics`).
    pub fn render(&self) -> String {
        let Ok(map) = self.versions.read() else { return String::new() };
        let mut keys: Vec<&(String, String)> = map.keys().collect();
        keys.sort();
        let mut out = String::new();
        out.push_str("# HELP mdeploy_prediction_class_total Predictions per top-1 class\n");
        out.push_str("# TYPE mdeploy_prediction_class_total counter\n");
        for k in &keys {
            let m = &map[*k];
            for (l, c) in m.labels.iter().zip(&m.classes) {
                let _ = writeln!(out, "mdeploy_prediction_class_total{{{},class=\"{}\"}} {}", mv(k), esc(l), c.load(Relaxed));
            }
        }
        out.push_str("# HELP mdeploy_prediction_confidence Top-1 probability of each prediction\n");
        out.push_str("# TYPE mdeploy_prediction_confidence histogram\n");
        for k in &keys {
            let m = &map[*k];
            let mut cumulative = 0;
            for (le, c) in CONFIDENCE_BUCKETS.iter().zip(&m.confidence) {
                cumulative += c.load(Relaxed);
                let _ = writeln!(out, "mdeploy_prediction_confidence_bucket{{{},le=\"{le}\"}} {cumulative}", mv(k));
            }
            let rows = m.rows.load(Relaxed);
            let sum = m.confidence_sum_micro.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "mdeploy_prediction_confidence_bucket{{{},le=\"+Inf\"}} {rows}", mv(k));
            let _ = writeln!(out, "mdeploy_prediction_confidence_sum{{{}}} {sum}", mv(k));
            let _ = writeln!(out, "mdeploy_prediction_confidence_count{{{}}} {rows}", mv(k));
        }
        out.push_str("# HELP mdeploy_input_drift_psi PSI of the last input rows against the model's reference, per feature and max\n");
        out.push_str("# TYPE mdeploy_input_drift_psi gauge\n");
        let mut windows = String::new();
        for k in &keys {
            if let Ok(Drift { psi, max, rows: n }) = map[*k].drift() {
                for (f, p) in psi {
                    let _ = writeln!(out, "mdeploy_input_drift_psi{{{},feature=\"{f}\"}} {p}", mv(k));
                }
                let _ = writeln!(out, "mdeploy_input_drift_psi{{{},feature=\"max\"}} {max}", mv(k));
                let _ = writeln!(windows, "mdeploy_input_drift_window_rows{{{}}} {n}", mv(k));
            }
        }
        out.push_str("# HELP mdeploy_input_drift_window_rows Input rows in the drift window (PSI is noise below 100)\n");
        out.push_str("# TYPE mdeploy_input_drift_window_rows gauge\n");
        out.push_str(&windows);
        out
    }
}

fn mv(k: &(String, String)) -> String {
    format!("model=\"{}\",version=\"{}\"", esc(&k.0), esc(&k.1))
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl mdeploy_serve::Observer for Monitors {
    fn observe(&self, model: &str, version: &str, info: &ModelInfo, input: &[f32], output: &[f32], n: usize) {
        let m = match self.get(model, version) {
            Some(m) if m.digest == info.digest => m,
            _ => {
                let Ok(mut map) = self.versions.write() else { return };
                let e = map.entry((model.to_string(), version.to_string())).or_insert_with(|| Arc::new(VersionMonitor::new(info, self.fallback.as_ref())));
                if e.digest != info.digest {
                    *e = Arc::new(VersionMonitor::new(info, self.fallback.as_ref()));
                }
                e.clone()
            }
        };
        m.record(input, output, n);
    }
}
