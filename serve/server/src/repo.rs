//! The model repository on disk, in Triton's layout, and the generations served from it.
//!
//! ```text
//!  DIR/<model>/config.toml          optional: version policy, labels, max_batch
//!  DIR/<model>/<version>/model.mdm  version: a positive integer folder name
//! ```
//!
//! A [`Generation`] is one immutable view of what is served: every loaded version's bytes (each
//! read, digest-checked, planned and run once before it got here), labels and batch caps, plus a
//! pool of ready `mdeploy_serve::Server`s built from them. [`Repository`] holds the current one in
//! an `ArcSwap`: a request takes an `Arc` of it at the start and keeps it until it answers, a
//! (re)load builds the next generation off to the side and swaps it in whole. So a request never
//! sees half a reload, and requests in flight finish on the generation they started on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use mdeploy_core::format::{decrypt, peek_encrypted, read_with_options, verify_signature, DecryptionKey, PublicKey, ReadOptions};
use mdeploy_core::{LoadedModel, Plan, Trust};
use mdeploy_serve::{ModelEntry, Server};
use serde::Deserialize;

use crate::batch::{Batchers, DynamicBatching};
use crate::metrics::Metrics;

/// Largest `model.mdm` the repository reads (a file past it is refused, unread).
pub const MAX_MODEL_BYTES: u64 = 512 * 1024 * 1024;

/// Which versions of a model are served, as TF Serving and Triton name the policies.
#[derive(Clone, Debug, PartialEq)]
pub enum VersionPolicy {
    /// The `n` highest versions (Triton's default is `latest = 1`).
    Latest(usize),
    All,
    Specific(Vec<u64>),
}

/// `DIR/<model>/config.toml`, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub policy: VersionPolicy,
    /// label -> version.
    pub labels: BTreeMap<String, u64>,
    pub max_batch: Option<usize>,
    /// `[dynamic_batching]`: merge concurrent requests into batches of up to `max_batch`.
    pub dynamic_batching: Option<DynamicBatching>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig { policy: VersionPolicy::Latest(1), labels: BTreeMap::new(), max_batch: None, dynamic_batching: None }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    version_policy: Option<PolicyFile>,
    #[serde(default)]
    labels: BTreeMap<String, u64>,
    max_batch: Option<usize>,
    dynamic_batching: Option<BatchingFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchingFile {
    #[serde(default)]
    max_queue_delay_us: u64,
    #[serde(default)]
    preferred_batch_size: Vec<usize>,
}

/// Longest `max_queue_delay_us` taken (1 s): a longer one is surely a unit mistake.
const MAX_QUEUE_DELAY_US: u64 = 1_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    latest: Option<usize>,
    all: Option<bool>,
    specific: Option<Vec<u64>>,
}

impl ModelConfig {
    /// Parses a `config.toml`; the error says what to write instead.
    pub fn parse(text: &str) -> Result<ModelConfig, String> {
        let f: ConfigFile = toml::from_str(text).map_err(|e| format!("config.toml: {e}"))?;
        let policy = match f.version_policy {
            None => VersionPolicy::Latest(1),
            Some(p) => match (p.latest, p.all, p.specific) {
                (Some(0), None, None) => return Err("config.toml: version_policy.latest must be at least 1".into()),
                (Some(n), None, None) => VersionPolicy::Latest(n),
                (None, Some(true), None) => VersionPolicy::All,
                (None, None, Some(v)) if !v.is_empty() => VersionPolicy::Specific(v),
                _ => {
                    return Err("config.toml: version_policy takes exactly one of `latest = N`, `all = true`, \
                                `specific = [1, 3]` (non-empty)"
                        .into())
                }
            },
        };
        if f.max_batch == Some(0) {
            return Err("config.toml: max_batch must be at least 1 (leave it out for no cap)".into());
        }
        for label in f.labels.keys() {
            if label.is_empty() || label.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("config.toml: label '{label}' must be a name (stable, canary, ...), not a number"));
            }
        }
        let dynamic_batching = match f.dynamic_batching {
            None => None,
            Some(b) => {
                // Triton's rule too: the batcher needs a cap to batch up to.
                let Some(cap) = f.max_batch else {
                    return Err("config.toml: [dynamic_batching] needs max_batch (the most samples one batch may \
                                merge), e.g. max_batch = 32"
                        .into());
                };
                if b.max_queue_delay_us > MAX_QUEUE_DELAY_US {
                    return Err(format!(
                        "config.toml: dynamic_batching.max_queue_delay_us = {} is more than {MAX_QUEUE_DELAY_US} \
                         (1 s); it is in microseconds, e.g. 100",
                        b.max_queue_delay_us
                    ));
                }
                let mut preferred = b.preferred_batch_size;
                if let Some(bad) = preferred.iter().find(|&&p| p == 0 || p > cap) {
                    return Err(format!(
                        "config.toml: dynamic_batching.preferred_batch_size {bad} must be from 1 to max_batch ({cap})"
                    ));
                }
                preferred.sort_unstable();
                preferred.dedup();
                Some(DynamicBatching { max_queue_delay: Duration::from_micros(b.max_queue_delay_us), preferred })
            }
        };
        Ok(ModelConfig { policy, labels: f.labels, max_batch: f.max_batch, dynamic_batching })
    }

    /// The versions to serve out of those on disk (`on_disk` sorted ascending).
    pub fn select(&self, on_disk: &[u64]) -> Vec<u64> {
        match &self.policy {
            VersionPolicy::All => on_disk.to_vec(),
            VersionPolicy::Latest(n) => on_disk[on_disk.len().saturating_sub(*n)..].to_vec(),
            VersionPolicy::Specific(v) => on_disk.iter().copied().filter(|x| v.contains(x)).collect(),
        }
    }
}

/// What identifies a file's contents cheaply between polls: size and modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp { len: m.len(), modified: m.modified().ok() })
}

/// One version that passed every check and serves.
#[derive(Clone)]
struct Ready {
    bytes: Arc<[u8]>,
    stamp: Stamp,
    path: PathBuf,
}

/// What the repository knows of one model folder.
#[derive(Clone, Default)]
struct ModelState {
    config: ModelConfig,
    config_stamp: Option<Stamp>,
    ready: BTreeMap<u64, Ready>,
    /// Versions the policy wants that did not load, with the reason (and the stamp that failed,
    /// so a poll does not retry the same bytes every time).
    failed: BTreeMap<u64, (String, Option<Stamp>)>,
    /// Why the last config.toml was refused (the one before keeps applying), if it was.
    config_error: Option<String>,
    /// Why the model as a whole has a problem (bad config, no versions), if so.
    error: Option<String>,
}

/// One immutable snapshot of what is served.
pub struct Generation {
    pub id: u64,
    /// (model, version) pairs served, each model's versions highest first.
    pub served: Vec<(String, u64)>,
    entries: Vec<ModelEntry>,
    labels: Vec<(String, String, u64)>,
    max_batch: Vec<(String, usize)>,
    pool: Mutex<Vec<Server>>,
    /// Sees every run of this generation's servers (prediction monitoring, input drift).
    observer: Option<Arc<dyn mdeploy_serve::Observer>>,
    /// The batch queues of the versions whose config has `[dynamic_batching]` (`batch.rs`).
    batchers: Arc<Batchers>,
}

impl Generation {
    fn build(
        id: u64,
        states: &BTreeMap<String, ModelState>,
        observer: Option<Arc<dyn mdeploy_serve::Observer>>,
        metrics: Option<&Arc<Metrics>>,
    ) -> Generation {
        let mut batchers = Batchers::new();
        let mut served = Vec::new();
        let mut entries = Vec::new();
        let mut labels = Vec::new();
        let mut max_batch = Vec::new();
        for (name, st) in states {
            // Highest first: `mdeploy_serve::Server::find` takes the first version of a name when
            // none is asked for, and Triton and TF Serving both answer with the highest.
            for (v, r) in st.ready.iter().rev() {
                served.push((name.clone(), *v));
                let mut e = ModelEntry::new(name.clone(), v.to_string(), r.bytes.to_vec())
                    .with_source(r.path.display().to_string());
                // The digest was verified when these bytes entered the repository (`check`).
                e.trusted = true;
                entries.push(e);
                if let (Some(cfg), Some(cap), Some(metrics)) = (&st.config.dynamic_batching, st.config.max_batch, metrics) {
                    if let Err(e) = batchers.add(name, *v, &r.bytes, cap, cfg, metrics.clone()) {
                        log!("mdeploy serve: {name} version {v} runs without dynamic batching: {e}");
                    }
                }
            }
            for (label, v) in &st.config.labels {
                if st.ready.contains_key(v) {
                    labels.push((name.clone(), label.clone(), *v));
                }
            }
            if let Some(n) = st.config.max_batch {
                max_batch.push((name.clone(), n));
            }
        }
        let batchers = Arc::new(batchers);
        Generation { id, served, entries, labels, max_batch, pool: Mutex::new(Vec::new()), observer, batchers }
    }

    /// A `Server` over this generation: one from the pool, or a new one (read + planned now).
    pub fn take_server(&self) -> Server {
        if let Some(s) = self.pool.lock().ok().and_then(|mut p| p.pop()) {
            return s;
        }
        let mut s = Server::new(self.entries.clone());
        if let Some(o) = &self.observer {
            s.set_observer(o.clone());
        }
        if !self.batchers.is_empty() {
            s.set_executor(self.batchers.clone());
        }
        for (m, l, v) in &self.labels {
            // Only labels of served versions reach here, so this cannot be refused.
            let _ = s.set_label(m, l, &v.to_string());
        }
        for (m, n) in &self.max_batch {
            s.set_max_batch(m, *n);
        }
        // Every entry was checked before it got into the generation; a failure here would show
        // as the model's 500 on its requests.
        let _ = s.preload();
        s
    }

    pub fn give_back(&self, s: Server) {
        if let Ok(mut p) = self.pool.lock() {
            p.push(s);
        }
    }

    /// The served version a request's `version` (a number, a label or none) means, if any.
    pub fn resolve(&self, model: &str, version: Option<&str>) -> Option<u64> {
        match version {
            None | Some("") => self.served.iter().find(|(m, _)| m == model).map(|(_, v)| *v),
            Some(v) => {
                if let Some((_, _, t)) = self.labels.iter().find(|(m, l, _)| m == model && l == v) {
                    return Some(*t);
                }
                let v: u64 = v.parse().ok()?;
                self.served.iter().any(|(m, x)| m == model && *x == v).then_some(v)
            }
        }
    }

    /// Whether `model` `version` runs in dynamic batches.
    pub fn batched(&self, model: &str, version: u64) -> bool {
        self.batchers.batches(model, version)
    }

    pub fn has_model(&self, model: &str) -> bool {
        self.served.iter().any(|(m, _)| m == model)
    }
}

/// One row of the repository index (Triton's `POST /v2/repository/index`).
#[derive(serde::Serialize, Debug, Clone, PartialEq)]
pub struct IndexRow {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// The repository: the folder, what was loaded from it, and the generation being served.
pub struct Repository {
    dir: PathBuf,
    current: ArcSwap<Generation>,
    /// Serialises (re)loads; readers never take it.
    state: Mutex<RepoState>,
    metrics: Arc<Metrics>,
    /// `mdeploy serve --trust-dir`: only versions signed by one of these keys load (an unsigned
    /// or tampered new version is refused like a corrupt one, so the signed version before it
    /// keeps serving). `None`: no policy.
    trusted: Option<Vec<PublicKey>>,
    /// `mdeploy serve --decryption-key`: encrypted versions are decrypted with it in memory (the
    /// key is wiped when the repository is dropped; no plaintext is written anywhere). A version
    /// encrypted for another key is refused like a corrupt one. `None`: encrypted versions are
    /// refused (`DECRYPT_FAILED`, naming the key id they need).
    decryption_key: Option<DecryptionKey>,
}

#[derive(Default)]
struct RepoState {
    models: BTreeMap<String, ModelState>,
    /// Unloaded through the API: the watcher leaves them alone until an explicit load.
    unloaded: BTreeSet<String>,
    next_id: u64,
}

impl Repository {
    /// Opens `dir` and loads every model in it (a model that fails is reported, not fatal).
    pub fn open(dir: &Path, metrics: Arc<Metrics>) -> Result<Repository, String> {
        Repository::open_with(dir, metrics, None)
    }

    /// [`Repository::open`] under a trust policy (see the `trusted` field).
    pub fn open_with(dir: &Path, metrics: Arc<Metrics>, trusted: Option<Vec<PublicKey>>) -> Result<Repository, String> {
        Repository::open_with_keys(dir, metrics, trusted, None)
    }

    /// [`Repository::open_with`], also decrypting encrypted versions with `decryption_key`
    /// (see the `decryption_key` field). The trust policy is checked first, on the encrypted
    /// file as it is (encrypt-then-sign, MDM_FORMAT.md).
    pub fn open_with_keys(
        dir: &Path,
        metrics: Arc<Metrics>,
        trusted: Option<Vec<PublicKey>>,
        decryption_key: Option<DecryptionKey>,
    ) -> Result<Repository, String> {
        if !dir.is_dir() {
            return Err(format!(
                "model repository {} is not a folder; lay it out as DIR/<model>/<version>/model.mdm",
                dir.display()
            ));
        }
        let repo = Repository {
            dir: dir.to_path_buf(),
            current: ArcSwap::from_pointee(Generation::build(0, &BTreeMap::new(), None, None)),
            state: Mutex::new(RepoState { next_id: 1, ..RepoState::default() }),
            metrics,
            trusted,
            decryption_key,
        };
        repo.poll();
        Ok(repo)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The generation to serve a request from (keep the `Arc` until the answer is written).
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RepoState> {
        // A panic while holding the lock leaves the old generation serving; carry on with the state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks at every model folder and (re)loads what changed; the watcher calls this. Returns
    /// whether a new generation was swapped in.
    pub fn poll(&self) -> bool {
        let mut st = self.lock();
        let names = model_folders(&self.dir);
        let mut changed = false;
        // Folders that disappeared stop being served.
        let gone: Vec<String> = st.models.keys().filter(|n| !names.contains(*n)).cloned().collect();
        for n in gone {
            log!("mdeploy serve: model '{n}' left the repository; no longer served");
            st.models.remove(&n);
            changed = true;
        }
        for name in names {
            if st.unloaded.contains(&name) {
                continue;
            }
            changed |= self.refresh(&mut st, &name);
        }
        if changed {
            self.publish(&mut st);
        }
        changed
    }

    /// Triton's `POST /v2/repository/models/{m}/load`: (re)reads the model now, even if it was
    /// unloaded. `Err` when the model has no folder or nothing of it can serve.
    pub fn load(&self, name: &str) -> Result<(), String> {
        if !valid_name(name) || !self.dir.join(name).is_dir() {
            return Err(format!("no model folder '{}' in the repository {}", crate::clip(name), self.dir.display()));
        }
        let mut st = self.lock();
        st.unloaded.remove(name);
        // An explicit load re-reads even what failed before with the same stamp.
        if let Some(m) = st.models.get_mut(name) {
            m.failed.clear();
            m.config_stamp = None;
        }
        self.refresh(&mut st, name);
        self.publish(&mut st);
        let m = st.models.get(name);
        match m {
            Some(m) if m.failed.is_empty() && m.error.is_none() && !m.ready.is_empty() => Ok(()),
            Some(m) => Err(describe_failure(name, m)),
            None => Err(format!("model '{name}' could not be loaded")),
        }
    }

    /// Triton's `POST /v2/repository/models/{m}/unload`: stops serving it (requests in flight finish).
    pub fn unload(&self, name: &str) -> Result<(), String> {
        let mut st = self.lock();
        if st.models.remove(name).is_none() {
            return Err(format!("model '{}' is not loaded", crate::clip(name)));
        }
        st.unloaded.insert(name.to_string());
        self.publish(&mut st);
        Ok(())
    }

    /// Every model folder with its state, and every version the policy wants.
    pub fn index(&self) -> Vec<IndexRow> {
        let st = self.lock();
        let mut rows = Vec::new();
        for name in model_folders(&self.dir) {
            let row = |version: String, state, reason: String| IndexRow { name: name.clone(), version, state, reason };
            if st.unloaded.contains(&name) {
                rows.push(row(String::new(), "UNAVAILABLE", "unloaded".into()));
                continue;
            }
            let Some(m) = st.models.get(&name) else {
                rows.push(row(String::new(), "UNAVAILABLE", "not loaded yet".into()));
                continue;
            };
            if let Some(e) = &m.error {
                rows.push(row(String::new(), "UNAVAILABLE", e.clone()));
            }
            for v in m.ready.keys() {
                rows.push(row(v.to_string(), "READY", String::new()));
            }
            for (v, (why, _)) in &m.failed {
                if !m.ready.contains_key(v) {
                    rows.push(row(v.to_string(), "UNAVAILABLE", why.clone()));
                }
            }
        }
        rows
    }

    /// Re-reads one model folder into `st`; whether anything served changed.
    fn refresh(&self, st: &mut RepoState, name: &str) -> bool {
        let folder = self.dir.join(name);
        let mut m = st.models.get(name).cloned().unwrap_or_default();
        let before: Vec<(u64, Stamp)> = m.ready.iter().map(|(v, r)| (*v, r.stamp)).collect();
        let before_cfg = m.config.clone();

        let cfg_path = folder.join("config.toml");
        let cfg_stamp = stamp(&cfg_path);
        if cfg_stamp != m.config_stamp || m.config_stamp.is_none() {
            m.config_stamp = cfg_stamp;
            let parsed = match cfg_stamp {
                None => Ok(ModelConfig::default()),
                Some(_) => std::fs::read_to_string(&cfg_path)
                    .map_err(|e| format!("{}: {e}", cfg_path.display()))
                    .and_then(|t| ModelConfig::parse(&t).map_err(|e| format!("{}: {e}", folder.display()))),
            };
            match parsed {
                Ok(c) => {
                    m.config = c;
                    m.config_error = None;
                }
                Err(e) => {
                    // The old config (and its versions) keep serving; the error is shown in the index.
                    log!("mdeploy serve: {e}; keeping the previous configuration of '{name}'");
                    self.metrics.load_failure(name, "");
                    m.config_error = Some(e);
                }
            }
        }

        let on_disk = version_folders(&folder);
        // Versions whose current bytes already failed are not candidates: the policy picks among
        // the rest, so a corrupt newest version leaves the one before it serving (TF Serving's
        // availability-preserving policy) and is not retried until its file changes.
        let mut candidates: Vec<u64> = on_disk
            .iter()
            .copied()
            .filter(|v| {
                let s = stamp(&folder.join(v.to_string()).join("model.mdm"));
                s.is_some() && (m.ready.contains_key(v) || !m.failed.get(v).is_some_and(|(_, fs)| *fs == s))
            })
            .collect();
        let wanted = loop {
            let wanted = m.config.select(&candidates);
            let mut refused = None;
            for v in &wanted {
                let path = folder.join(v.to_string()).join("model.mdm");
                let Some(s) = stamp(&path) else { continue };
                if m.ready.get(v).is_some_and(|r| r.stamp == s) {
                    continue;
                }
                // New bytes of a serving version that were refused already: the old bytes serve on.
                if m.failed.get(v).is_some_and(|(_, fs)| *fs == Some(s)) {
                    continue;
                }
                match check(&path, s, self.trusted.as_deref(), self.decryption_key.as_ref()) {
                    Ok(bytes) => {
                        m.failed.remove(v);
                        m.ready.insert(*v, Ready { bytes, stamp: s, path });
                    }
                    Err(why) => {
                        let keeps = if m.ready.contains_key(v) { "; the version loaded before keeps serving" } else { "" };
                        log!("mdeploy serve: refused {}: {why}{keeps}", path.display());
                        self.metrics.load_failure(name, &v.to_string());
                        m.failed.insert(*v, (why, Some(s)));
                        if !m.ready.contains_key(v) {
                            // Not serving at all: drop it from the candidates and pick again.
                            refused = Some(*v);
                            break;
                        }
                        // Serving with older bytes: those keep serving.
                    }
                }
            }
            match refused {
                Some(v) => candidates.retain(|c| *c != v),
                None => break wanted,
            }
        };
        // Versions no longer wanted (policy moved on, folder removed) stop serving.
        m.ready.retain(|v, _| wanted.contains(v));
        m.failed.retain(|v, _| on_disk.contains(v));
        m.error = m.config_error.clone();
        if wanted.is_empty() && m.error.is_none() && !on_disk.is_empty() && candidates.is_empty() {
            m.error = Some(format!("every version of {} on disk was refused (the versions' reasons say why)", folder.display()));
        } else if wanted.is_empty() && m.error.is_none() {
            m.error = Some(format!(
                "{} has no version folder the version policy selects (versions on disk: {:?}); add {}/1/model.mdm",
                folder.display(),
                on_disk,
                folder.display()
            ));
        }
        let after: Vec<(u64, Stamp)> = m.ready.iter().map(|(v, r)| (*v, r.stamp)).collect();
        let changed = before != after || before_cfg != m.config || !st.models.contains_key(name);
        st.models.insert(name.to_string(), m);
        changed
    }

    /// Builds the next generation from `st`, warms one server on it, and swaps it in.
    fn publish(&self, st: &mut RepoState) {
        let g = Generation::build(st.next_id, &st.models, Some(self.metrics.monitors.clone()), Some(&self.metrics));
        st.next_id += 1;
        // Warm: one server ready in the pool before the first request (the plans are built now,
        // not on the first request after the swap).
        let s = g.take_server();
        g.give_back(s);
        self.metrics.set_ready(&g.served);
        self.current.store(Arc::new(g));
    }
}

/// Reads, verifies (digest included), plans and runs once the model at `path`.
/// An encrypted version comes back decrypted: the plain `.mdm` bytes, in memory only.
fn check(path: &Path, s: Stamp, trusted: Option<&[PublicKey]>, key: Option<&DecryptionKey>) -> Result<Arc<[u8]>, String> {
    if s.len > MAX_MODEL_BYTES {
        return Err(format!("{} bytes is more than the {} MiB a model may have", s.len, MAX_MODEL_BYTES >> 20));
    }
    let mut bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    if let Some(keys) = trusted {
        // verify_signature: header, digest and signature only, so an encrypted file is checked
        // against the policy before anything is decrypted.
        verify_signature(&bytes, keys).map_err(|e| format!("{}: {}", e.code(), e.message))?;
    }
    if peek_encrypted(&bytes).map_err(|e| format!("{}: {}", e.code(), e.message))?.is_some() {
        let Some(key) = key else {
            // The reader's own refusal names the key id the file needs.
            let opts = ReadOptions::default();
            return Err(match read_with_options(&bytes, &opts) {
                Err(e) => format!("{}: {}; start mdeploy serve with --decryption-key KEY.enckey", e.code(), e.message),
                Ok(_) => "an encrypted model loaded without a key".to_string(),
            });
        };
        bytes = decrypt(&bytes, key).map_err(|e| format!("{}: {}", e.code(), e.message))?;
    }
    let LoadedModel { model, .. } = LoadedModel::read(&bytes, Trust::Verify).map_err(|e| e.message)?;
    let mut plan = Plan::new(&model, 1).map_err(|e| e.message)?;
    // Warm-up: one sample of zeros through the whole plan, so a model that reads but cannot
    // run is refused here rather than on traffic.
    let input = vec![0.0f32; plan.input_len()];
    let mut out = vec![0.0f32; plan.output_len()];
    plan.run(&input, 1, &mut out).map_err(|e| format!("the warm-up run failed: {}", e.message))?;
    Ok(Arc::from(bytes))
}

fn describe_failure(name: &str, m: &ModelState) -> String {
    let mut parts = Vec::new();
    if let Some(e) = &m.error {
        parts.push(e.clone());
    }
    for (v, (why, _)) in &m.failed {
        parts.push(format!("version {v}: {why}"));
    }
    if m.ready.is_empty() {
        format!("model '{name}' has no version that loads: {}", parts.join("; "))
    } else {
        let serving: Vec<String> = m.ready.keys().map(u64::to_string).collect();
        format!("model '{name}' did not load completely: {}; still serving version {}", parts.join("; "), serving.join(", "))
    }
}

/// Model names are folder names; only these characters, so they are safe in paths and labels.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn model_folders(dir: &Path) -> BTreeSet<String> {
    let Ok(rd) = std::fs::read_dir(dir) else { return BTreeSet::new() };
    rd.flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| valid_name(n))
        .collect()
}

fn version_folders(folder: &Path) -> Vec<u64> {
    let Ok(rd) = std::fs::read_dir(folder) else { return Vec::new() };
    let mut v: Vec<u64> = rd
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        // Triton: version folders are positive integers; anything else is ignored.
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0'))
        .filter_map(|n| n.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_policies_and_errors() {
        let c = ModelConfig::parse("version_policy = { latest = 2 }\nmax_batch = 8\n[labels]\nstable = 1\ncanary = 2\n").unwrap();
        assert_eq!(c.policy, VersionPolicy::Latest(2));
        assert_eq!(c.select(&[1, 2, 3]), vec![2, 3]);
        assert_eq!(c.max_batch, Some(8));
        assert_eq!(c.labels.get("canary"), Some(&2));
        let all = ModelConfig::parse("version_policy = { all = true }").unwrap();
        assert_eq!(all.select(&[1, 2, 3]), vec![1, 2, 3]);
        let sp = ModelConfig::parse("version_policy = { specific = [1, 3, 9] }").unwrap();
        assert_eq!(sp.select(&[1, 2, 3]), vec![1, 3]);
        assert_eq!(ModelConfig::default().select(&[1, 2, 5]), vec![5]);
        for bad in [
            "version_policy = { latest = 0 }",
            "version_policy = { latest = 1, all = true }",
            "version_policy = { specific = [] }",
            "max_batch = 0",
            "[labels]\n\"7\" = 1",
            "unknown = 1",
            "version_policy = ",
        ] {
            let e = ModelConfig::parse(bad).expect_err(bad);
            assert!(e.starts_with("config.toml"), "{bad}: {e}");
        }
    }
}
