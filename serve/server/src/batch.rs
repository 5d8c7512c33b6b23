//! Dynamic batching, as Triton's `dynamic_batching` does it: the model runs of concurrent
//! requests for one model version are merged into one `Plan::run` of up to `max_batch` samples,
//! gathered for at most `max_queue_delay_us`, then split back.
//!
//! ```text
//!  request threads (spawn_blocking)                       one thread per batched (model, version)
//!  handle() ─ parse, check ─ Loaded::run ─ Executor::run ─ Job ─> queue ─> gather ≤ max_batch samples
//!            (per request)                     │ waits                     within the delay
//!                                              │                         ─> one Plan::run (merged)
//!  answer built from its own rows <─── reply ──┴──────────────────────── <─ split back per job
//! ```
//!
//! Each request is parsed, decoded and checked by the pure function on its own thread before it
//! reaches the queue, so a request with a bad input is answered alone and never joins a batch;
//! outputs, datatypes and the answer are its own. After decoding every input is `n × input_len`
//! f32 values in the model's layout (UINT8 scaled, `[n, 784]` and `[n, 1, 28, 28]` alike), so any
//! two requests for one version can merge. The batch thread's plan runs one sample per chunk,
//! like the `Server`'s own, so a sample's answer does not depend on its batch-mates and is byte
//! for byte the unbatched one (a plan with larger chunks would use the packed GEMM, whose sums
//! round differently: measured on the CNN and MLP, about 2 of 3 output values differ in their
//! last bits). What merging saves is per request: one thread wakes per batch, one plan is hot.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mdeploy_core::{Error as CoreError, LoadedModel, Plan, Trust};

use crate::metrics::Metrics;

/// `[dynamic_batching]` of `config.toml`, with Triton's names.
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicBatching {
    /// How long the first request of a batch waits for others.
    pub max_queue_delay: Duration,
    /// Batch sizes to send as soon as they are reached (ascending); empty: only `max_batch`.
    pub preferred: Vec<usize>,
}

thread_local! {
    // The request's deadline and how long it waited in a batch queue travel on the request's own
    // blocking thread, from `Call::run` to `Executor::run` and back: the pure function between
    // them knows nothing of deadlines or queues.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static QUEUED: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// Sets the deadline of the request about to run on this thread and clears its queue time.
pub(crate) fn begin(deadline: Option<Instant>) {
    DEADLINE.with(|d| d.set(deadline));
    QUEUED.with(|q| q.set(Duration::ZERO));
}

/// How long the request that just ran on this thread waited in a batch queue.
pub(crate) fn queued() -> Duration {
    QUEUED.with(Cell::get)
}

struct Job {
    input: Vec<f32>,
    n: usize,
    deadline: Option<Instant>,
    enqueued: Instant,
    reply: SyncSender<(Result<Vec<f32>, CoreError>, Duration)>,
}

/// The batch queues of one generation, one per batched version. Dropping it (with the
/// generation and its servers) closes the queues, and each thread ends after its last batch.
pub struct Batchers {
    queues: HashMap<(String, String), Sender<Job>>,
}

impl Batchers {
    pub fn new() -> Batchers {
        Batchers { queues: HashMap::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Whether `model` `version` runs through a batch queue.
    pub fn batches(&self, model: &str, version: u64) -> bool {
        self.queues.contains_key(&(model.to_string(), version.to_string()))
    }

    /// Starts the batch thread of `model` `version` over `bytes` (already verified by the
    /// repository). On failure the version runs unbatched and the reason is returned.
    pub fn add(
        &mut self,
        model: &str,
        version: u64,
        bytes: &[u8],
        max_batch: usize,
        cfg: &DynamicBatching,
        metrics: Arc<Metrics>,
    ) -> Result<(), String> {
        let LoadedModel { model: m, .. } = LoadedModel::read(bytes, Trust::DigestChecked).map_err(|e| e.message)?;
        // One sample per chunk, as the `Server`'s plan: see the module note.
        let plan = Plan::new(&m, 1).map_err(|e| e.message)?;
        let (tx, rx) = mpsc::channel();
        let worker = Worker {
            plan,
            rx,
            max_batch: max_batch.max(1),
            cfg: cfg.clone(),
            metrics,
            model: model.to_string(),
            version,
            carry: None,
        };
        std::thread::Builder::new()
            .name(format!("batch {model}/{version}"))
            .spawn(move || worker.serve())
            .map_err(|e| format!("cannot start its batch thread: {e}"))?;
        self.queues.insert((model.to_string(), version.to_string()), tx);
        Ok(())
    }
}

impl Default for Batchers {
    fn default() -> Self {
        Batchers::new()
    }
}

impl mdeploy_serve::Executor for Batchers {
    fn run(&self, model: &str, version: &str, input: &[f32], n: usize) -> Option<Result<Vec<f32>, CoreError>> {
        let tx = self.queues.get(&(model.to_string(), version.to_string()))?;
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Job { input: input.to_vec(), n, deadline: DEADLINE.with(Cell::get), enqueued: Instant::now(), reply };
        // A queue whose thread is gone (it cannot be, short of a panic) declines: the request's
        // own `Server` runs it instead.
        tx.send(job).ok()?;
        let (out, waited) = answer.recv().ok()?;
        QUEUED.with(|q| q.set(waited));
        Some(out)
    }
}

struct Worker {
    plan: Plan,
    rx: Receiver<Job>,
    max_batch: usize,
    cfg: DynamicBatching,
    metrics: Arc<Metrics>,
    model: String,
    version: u64,
    /// A job that did not fit the last batch: it opens the next one.
    carry: Option<Job>,
}

impl Worker {
    fn serve(mut self) {
        while let Some(batch) = self.gather() {
            self.execute(batch);
        }
    }

    /// The next batch: the first job, then whatever arrives within the delay, until `max_batch`
    /// samples, or a preferred size with nothing more waiting. `None` once the queue is closed
    /// and empty.
    fn gather(&mut self) -> Option<Vec<Job>> {
        let first = match self.carry.take() {
            Some(j) => j,
            None => self.rx.recv().ok()?,
        };
        let until = first.enqueued + self.cfg.max_queue_delay;
        let mut total = first.n;
        let mut jobs = vec![first];
        let top_preferred = self.cfg.preferred.last().copied().unwrap_or(self.max_batch).min(self.max_batch);
        while total < top_preferred {
            // Take what is already waiting first; wait only when nothing is.
            let next = match self.rx.try_recv() {
                Ok(j) => Some(j),
                Err(_) if self.cfg.preferred.contains(&total) => None,
                Err(_) => {
                    let now = Instant::now();
                    if now >= until {
                        None
                    } else {
                        match self.rx.recv_timeout(until - now) {
                            Ok(j) => Some(j),
                            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
                        }
                    }
                }
            };
            let Some(j) = next else { break };
            if total + j.n > self.max_batch {
                self.carry = Some(j);
                break;
            }
            total += j.n;
            jobs.push(j);
        }
        Some(jobs)
    }

    fn execute(&mut self, jobs: Vec<Job>) {
        let start = Instant::now();
        // A request whose deadline passed while queued is not run (its client was answered
        // DEADLINE_EXCEEDED already).
        let (live, late): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.deadline.is_none_or(|d| start < d));
        for j in late {
            let waited = start - j.enqueued;
            let _ = j.reply.send((Err(CoreError::bad_input("the request's deadline passed while it was queued")), waited));
        }
        if live.is_empty() {
            return;
        }
        let (il, ol) = (self.plan.input_len(), self.plan.output_len());
        let total: usize = live.iter().map(|j| j.n).sum();
        let mut merged = Vec::with_capacity(total * il);
        for j in &live {
            merged.extend_from_slice(&j.input);
        }
        let mut out = vec![0.0f32; total * ol];
        match self.plan.run(&merged, total, &mut out) {
            Ok(()) => {
                self.metrics.executed(&self.model, self.version);
                let mut at = 0;
                for j in live {
                    let rows = out[at * ol..(at + j.n) * ol].to_vec();
                    at += j.n;
                    let _ = j.reply.send((Ok(rows), start - j.enqueued));
                }
            }
            Err(_) => {
                // The pure function checked every input before it queued it, so this is not
                // expected; if it happens, each request runs alone and gets its own answer or
                // error, so one bad request never fails its batch-mates.
                for j in live {
                    let mut o = vec![0.0f32; j.n.saturating_mul(ol)];
                    let r = self.plan.run(&j.input, j.n, &mut o).map(|()| o);
                    if r.is_ok() {
                        self.metrics.executed(&self.model, self.version);
                    }
                    let _ = j.reply.send((r, start - j.enqueued));
                }
            }
        }
    }
}
