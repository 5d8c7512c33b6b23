//! `GET /metrics`: Prometheus text, with Triton's metric names, labelled by model and version.
//!
//! Label values come only from the repository (folder names, version numbers), never from what a
//! client sent, so a client cannot grow the number of series: a request for a model that is not
//! served is not counted per model.

use std::sync::Arc;
use std::time::Duration;

use crate::monitor::Monitors;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    success: IntCounterVec,
    failure: IntCounterVec,
    count: IntCounterVec,
    exec_count: IntCounterVec,
    request_us: IntCounterVec,
    queue_us: IntCounterVec,
    compute_us: IntCounterVec,
    latency: HistogramVec,
    load_failures: IntCounterVec,
    ready: IntGaugeVec,
    pending: IntGaugeVec,
    /// Prediction monitoring and input drift (`monitor.rs`), written after the metrics above.
    pub monitors: Arc<Monitors>,
}

/// What one inference request cost, for [`Metrics::observe`].
pub struct Timing {
    /// From the request's arrival to its answer.
    pub total: Duration,
    /// Waiting for a worker thread and a server instance.
    pub queue: Duration,
    /// Inside the model's route (parse, run, answer), less any time queued for a batch.
    pub compute: Duration,
    /// The model ran in a dynamic batch, whose execution the batch thread counted
    /// ([`Metrics::executed`]); otherwise the request counts as one execution of its own.
    pub batched: bool,
}

const LABELS: &[&str] = &["model", "version"];

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::with_monitors(Monitors::default())
    }

    /// Metrics whose prediction and drift monitors are `monitors` (e.g. with a fallback reference).
    pub fn with_monitors(monitors: Monitors) -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
            registry.register(Box::new(c.clone())).expect("metric registered once");
            c
        };
        let success = counter("nv_inference_request_success", "Number of successful inference requests", LABELS);
        let failure = counter("nv_inference_request_failure", "Number of failed inference requests", LABELS);
        let count = counter("nv_inference_count", "Number of inferences performed (a batch of n counts n)", LABELS);
        let exec_count = counter("nv_inference_exec_count", "Number of model executions (batches run)", LABELS);
        let request_us =
            counter("nv_inference_request_duration_us", "Cumulative inference request duration in microseconds", LABELS);
        let queue_us = counter("nv_inference_queue_duration_us", "Cumulative time requests spent queued in microseconds", LABELS);
        let compute_us = counter(
            "nv_inference_compute_infer_duration_us",
            "Cumulative time spent computing inferences in microseconds",
            LABELS,
        );
        let load_failures = counter(
            "mdeploy_model_load_failures_total",
            "Model files refused by the repository (corrupt, unreadable, not runnable, bad config.toml)",
            LABELS,
        );
        let latency = HistogramVec::new(
            HistogramOpts::new("mdeploy_inference_request_duration_seconds", "Inference request latency (arrival to answer)")
                // 50 µs .. 2.5 s: an MNIST request natively takes tens of microseconds to milliseconds.
                .buckets(vec![5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5]),
            LABELS,
        )
        .expect("static metric definition");
        registry.register(Box::new(latency.clone())).expect("metric registered once");
        let ready = IntGaugeVec::new(Opts::new("mdeploy_model_ready", "1 for every model version being served"), LABELS)
            .expect("static metric definition");
        registry.register(Box::new(ready.clone())).expect("metric registered once");
        let pending = IntGaugeVec::new(
            Opts::new("nv_inference_pending_request_count", "Inference requests received and not yet answered"),
            LABELS,
        )
        .expect("static metric definition");
        registry.register(Box::new(pending.clone())).expect("metric registered once");
        Metrics { registry, success, failure, count, exec_count, request_us, queue_us, compute_us, latency, load_failures, ready, pending, monitors: Arc::new(monitors) }
    }

    /// One inference request for a served `model` `version`: `batch` samples if it succeeded.
    pub fn observe(&self, model: &str, version: u64, ok: Option<usize>, t: &Timing) {
        let v = version.to_string();
        let l = [model, v.as_str()];
        match ok {
            Some(batch) => {
                self.success.with_label_values(&l).inc();
                self.count.with_label_values(&l).inc_by(batch as u64);
                if !t.batched {
                    self.exec_count.with_label_values(&l).inc();
                }
            }
            None => self.failure.with_label_values(&l).inc(),
        }
        self.request_us.with_label_values(&l).inc_by(t.total.as_micros() as u64);
        self.queue_us.with_label_values(&l).inc_by(t.queue.as_micros() as u64);
        self.compute_us.with_label_values(&l).inc_by(t.compute.as_micros() as u64);
        self.latency.with_label_values(&l).observe(t.total.as_secs_f64());
    }

    /// One model execution of a dynamic batch (however many requests it merged).
    pub fn executed(&self, model: &str, version: u64) {
        self.exec_count.with_label_values(&[model, version.to_string().as_str()]).inc();
    }

    /// One more (`+1`) or one fewer (`-1`) request of `model` `version` in progress.
    pub fn pending(&self, model: &str, version: u64, delta: i64) {
        self.pending.with_label_values(&[model, version.to_string().as_str()]).add(delta);
    }

    /// A model file or config the repository refused (`version` empty for a config).
    pub fn load_failure(&self, model: &str, version: &str) {
        self.load_failures.with_label_values(&[model, version]).inc();
    }

    /// The versions now served (replaces the previous set).
    pub fn set_ready(&self, served: &[(String, u64)]) {
        self.monitors.retain(served);
        self.ready.reset();
        for (m, v) in served {
            self.ready.with_label_values(&[m.as_str(), v.to_string().as_str()]).set(1);
        }
    }

    /// The text exposition format (`text/plain; version=0.0.4`).
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families (ours are static).
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out.extend_from_slice(self.monitors.render().as_bytes());
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
