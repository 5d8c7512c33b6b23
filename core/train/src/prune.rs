//! Magnitude pruning: which weights to drop, a gradual schedule, and the smallest storage.
//!
//! ```text
//!  Model ──densify──▶ f32 weights ──masks(criterion, structure, scope)──▶ 0/1 per weight
//!     one shot:  apply the masks (optionally fine-tune with a MaskHook holding them)
//!     gradual:   PruneHook: every `frequency` steps in [begin, end], masks for
//!                PolynomialDecay::sparsity_at(step), held by its MaskHook in between
//!  ──store_sparse──▶ each weight as dense f32, CSR or bitmask, whichever is smallest
//! ```
//!
//! Only the weights of `Dense` and `Conv2d` nodes are pruned (tensor slot 0); biases and
//! BatchNorm stay dense. A weight is seen as the matrix the format's CSR uses: rows = axis 0,
//! columns = all other axes flattened. So a `Dense` weight `[in, out]` has one row per input,
//! a `Conv2d` weight `[out, in/groups, kh, kw]` one row per output channel.
//!
//! * `Structure::Block { rows, cols }` groups that matrix into `rows × cols` tiles (partial
//!   tiles at the edges); a tile is kept or dropped whole, scored by its mean |w|.
//! * `Structure::NOfM { n, m }` keeps the `n` largest |w| of every `m` consecutive weights
//!   along the **input** (reduction) axis: down a column of a `Dense` weight (m inputs of one
//!   output), along a row of a `Conv2d` weight (m taps of one output channel). Its sparsity is
//!   `1 − n/m` by construction, so it takes no threshold, target or schedule.

use crate::error::{Error, Result};
use crate::graph::Op;
use crate::model::{Model, Tensor, TensorData};
use crate::{MaskHook, ParamGrads, StepHook};

/// Which weights form a unit that is kept or dropped together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Structure {
    Unstructured,
    /// Tiles of `rows × cols` of the weight's matrix view (see the module docs).
    Block { rows: usize, cols: usize },
    /// `n` kept out of every `m` consecutive weights along the input axis (2:4 = 50 %).
    NOfM { n: usize, m: usize },
}

impl Structure {
    /// Parses `unstructured`, `block:RxC` (e.g. `block:4x1`) or `n:m` (e.g. `2:4`).
    pub fn parse(s: &str) -> Result<Structure> {
        let bad = || {
            Error::bad_input(format!(
                "structure {s:?}: expected `unstructured`, `block:RxC` (e.g. block:1x4) or `n:m` (e.g. 2:4)"
            ))
        };
        if s == "unstructured" {
            return Ok(Structure::Unstructured);
        }
        if let Some(rc) = s.strip_prefix("block:") {
            let (r, c) = rc.split_once(['x', 'X']).ok_or_else(bad)?;
            let (rows, cols) = (r.parse().map_err(|_| bad())?, c.parse().map_err(|_| bad())?);
            if rows == 0 || cols == 0 || rows > 1 << 16 || cols > 1 << 16 {
                return Err(Error::bad_input(format!("structure {s:?}: block sides must be in 1..=65536")));
            }
            return Ok(Structure::Block { rows, cols });
        }
        let (n, m) = s.split_once(':').ok_or_else(bad)?;
        let (n, m): (usize, usize) = (n.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if n == 0 || n >= m || m > 1 << 16 {
            return Err(Error::bad_input(format!(
                "structure {s:?}: n:m needs 0 < n < m (e.g. 2:4 keeps 2 of every 4)"
            )));
        }
        Ok(Structure::NOfM { n, m })
    }

    pub fn describe(&self) -> String {
        match self {
            Structure::Unstructured => "unstructured".into(),
            Structure::Block { rows, cols } => format!("block:{rows}x{cols}"),
            Structure::NOfM { n, m } => format!("{n}:{m}"),
        }
    }
}

/// What decides which units go.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Criterion {
    /// Keep a unit whose mean |w| is above `T` (for single weights: keep |w| > T).
    Threshold(f32),
    /// Drop this fraction (0..1) of the weights, smallest mean |w| first.
    Sparsity(f32),
    /// Only for [`Structure::NOfM`]: its sparsity is fixed by n and m.
    NOfM,
}

/// Whether a sparsity target counts all pruned layers together or each one alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One ranking over every prunable weight of the model (small layers may lose more).
    Global,
    /// Every layer reaches the target on its own.
    PerLayer,
}

/// TensorFlow Model Optimization's `PolynomialDecay`: sparsity goes from `initial` at
/// `begin_step` to `final_` at `end_step` as `final + (initial − final)·(1 − p)^power`,
/// `p = (step − begin) / (end − begin)` clipped to [0, 1]; masks are recomputed at
/// `begin_step` and every `frequency` steps after it up to `end_step`, and at `end_step`
/// itself (TF-MOT skips it when `end − begin` is not a multiple of the frequency, and then never
/// reaches its final sparsity; here the final target is always met).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PolynomialDecay {
    pub initial_sparsity: f32,
    pub final_sparsity: f32,
    pub begin_step: u64,
    pub end_step: u64,
    pub power: f32,
    pub frequency: u64,
}

impl PolynomialDecay {
    /// TF-MOT's defaults: power 3, every 100 steps.
    pub fn new(initial: f32, final_: f32, begin_step: u64, end_step: u64) -> PolynomialDecay {
        PolynomialDecay {
            initial_sparsity: initial,
            final_sparsity: final_,
            begin_step,
            end_step,
            power: 3.0,
            frequency: 100,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let ok = |s: f32| (0.0..1.0).contains(&s);
        if !ok(self.initial_sparsity) || !ok(self.final_sparsity) {
            return Err(Error::bad_input(format!(
                "schedule: sparsities {} and {} must be in [0, 1)",
                self.initial_sparsity, self.final_sparsity
            )));
        }
        if self.final_sparsity < self.initial_sparsity {
            return Err(Error::bad_input(format!(
                "schedule: the final sparsity {} is below the initial {}: pruned weights never come back",
                self.final_sparsity, self.initial_sparsity
            )));
        }
        if self.end_step <= self.begin_step {
            return Err(Error::bad_input(format!(
                "schedule: end step {} must be after begin step {}",
                self.end_step, self.begin_step
            )));
        }
        if self.frequency == 0 {
            return Err(Error::bad_input("schedule: frequency must be at least 1 step"));
        }
        if !(self.power.is_finite() && self.power > 0.0) {
            return Err(Error::bad_input(format!("schedule: power {} must be > 0", self.power)));
        }
        Ok(())
    }

    /// The target sparsity at `step` (0-based count of optimizer steps done).
    pub fn sparsity_at(&self, step: u64) -> f32 {
        let span = (self.end_step - self.begin_step) as f64;
        let p = ((step as f64 - self.begin_step as f64) / span).clamp(0.0, 1.0);
        let (i, f) = (self.initial_sparsity as f64, self.final_sparsity as f64);
        (f + (i - f) * (1.0 - p).powf(self.power as f64)) as f32
    }

    /// Whether the masks are recomputed at `step`.
    #[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` needs Rust 1.87; the MSRV is 1.85
    pub fn prunes_at(&self, step: u64) -> bool {
        step >= self.begin_step
            && step <= self.end_step
            && ((step - self.begin_step) % self.frequency == 0 || step == self.end_step)
    }

    pub fn describe(&self) -> String {
        format!(
            "polynomial decay {} -> {} over steps {}..{}, power {}, every {} steps",
            self.initial_sparsity,
            self.final_sparsity,
            self.begin_step,
            self.end_step,
            self.power,
            self.frequency
        )
    }
}

/// Nodes whose weight (tensor slot 0) is pruned: every `Dense` and `Conv2d`.
pub fn prunable_nodes(model: &Model) -> Vec<usize> {
    model
        .graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.op, Op::Dense { .. } | Op::Conv2d { .. }))
        .map(|(i, _)| i)
        .collect()
}

/// Turns every tensor of the model into plain f32 (dequantizes, densifies sparse storage), as
/// training and masking need; checks the values are finite.
pub fn densify(model: &mut Model) -> Result<()> {
    for i in 0..model.graph.nodes.len() {
        let what = model.graph.describe_node(i);
        for t in model.graph.nodes[i].op.tensors_mut() {
            if !matches!(t.data, TensorData::F32(_)) {
                let v = t.to_f32_dense().map_err(|e| Error {
                    kind: e.kind,
                    message: format!("{what}: {}", e.message),
                })?;
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(Error::bad_model(format!("{what}: expands to NaN or infinite values")));
                }
                t.data = TensorData::F32(v);
            }
        }
    }
    Ok(())
}

fn weight(model: &Model, i: usize) -> Result<&Tensor> {
    match &model.graph.nodes[i].op {
        Op::Dense { weight, .. } | Op::Conv2d { weight, .. } => Ok(weight),
        op => Err(Error::bad_input(format!("node {i} ({}) has no weight to prune", op.name()))),
    }
}

/// `(rows, cols)` of the CSR view of a shape: axis 0 by the rest.
fn matrix(shape: &[usize]) -> (usize, usize) {
    let rows = shape.first().copied().unwrap_or(1);
    (rows, shape.iter().skip(1).product::<usize>())
}

/// The unit (group) of every element for block/unstructured pruning, and the group count.
fn groups(shape: &[usize], structure: Structure) -> (Vec<u32>, usize) {
    let (rows, cols) = matrix(shape);
    match structure {
        Structure::Block { rows: br, cols: bc } => {
            let (gr, gc) = (rows.div_ceil(br), cols.div_ceil(bc));
            let mut g = Vec::with_capacity(rows * cols);
            for r in 0..rows {
                for c in 0..cols {
                    g.push(((r / br) * gc + c / bc) as u32);
                }
            }
            (g, gr * gc)
        }
        _ => ((0..(rows * cols) as u32).collect(), rows * cols),
    }
}

/// One unit's rank: mean |w| over its elements.
struct Unit {
    score: f32,
    layer: usize,
    group: u32,
    size: usize,
}

/// Masks (`masks[node]`, 0/1 per weight entry; `None` for nodes not pruned) for `criterion`,
/// from the current magnitudes. The weights must be f32 ([`densify`] first).
pub fn compute_masks(
    model: &Model,
    criterion: Criterion,
    structure: Structure,
    scope: Scope,
) -> Result<Vec<Option<Vec<f32>>>> {
    let nodes = prunable_nodes(model);
    if nodes.is_empty() {
        return Err(Error::bad_input(
            "the model has no Dense or Conv2d weights to prune",
        ));
    }
    let mut masks: Vec<Option<Vec<f32>>> = vec![None; model.graph.nodes.len()];
    match (criterion, structure) {
        (Criterion::NOfM, Structure::NOfM { n, m }) => {
            for &i in &nodes {
                masks[i] = Some(n_of_m_mask(model, i, n, m)?);
            }
            return Ok(masks);
        }
        (Criterion::NOfM, _) | (_, Structure::NOfM { .. }) => {
            return Err(Error::bad_input(
                "n:m structure fixes the sparsity at 1 - n/m: give it without a threshold, sparsity target or schedule",
            ));
        }
        _ => {}
    }
    if let Criterion::Sparsity(s) = criterion {
        if !(0.0..1.0).contains(&s) {
            return Err(Error::bad_input(format!("sparsity {s} must be in [0, 1)")));
        }
    }
    if let Criterion::Threshold(t) = criterion {
        if !(t.is_finite() && t >= 0.0) {
            return Err(Error::bad_input(format!("threshold {t} must be a finite number >= 0")));
        }
    }
    // Per layer: each layer's units ranked alone; global: one ranking.
    let mut pools: Vec<Vec<Unit>> = Vec::new();
    let mut group_maps = Vec::new();
    for (layer, &i) in nodes.iter().enumerate() {
        let w = weight(model, i)?;
        let v = w
            .as_f32()
            .ok_or_else(|| Error::unsupported("pruning needs f32 weights (densify first)"))?;
        let (g, count) = groups(&w.shape, structure);
        let mut sum = vec![0.0f64; count];
        let mut size = vec![0usize; count];
        for (&gi, &x) in g.iter().zip(v) {
            sum[gi as usize] += x.abs() as f64;
            size[gi as usize] += 1;
        }
        let units = (0..count).map(|gi| Unit {
            score: (sum[gi] / size[gi].max(1) as f64) as f32,
            layer,
            group: gi as u32,
            size: size[gi],
        });
        match scope {
            Scope::PerLayer => pools.push(units.collect()),
            Scope::Global => match pools.first_mut() {
                Some(p) => p.extend(units),
                None => pools.push(units.collect()),
            },
        }
        group_maps.push((g, count));
    }
    // keep[layer][group]
    let mut keep: Vec<Vec<bool>> = group_maps
        .iter()
        .map(|(_, count)| vec![true; *count])
        .collect();
    for mut pool in pools {
        match criterion {
            Criterion::Threshold(t) => {
                for u in &pool {
                    keep[u.layer][u.group as usize] = u.score > t;
                }
            }
            Criterion::Sparsity(s) => {
                let total: usize = pool.iter().map(|u| u.size).sum();
                let target = (s as f64 * total as f64).round() as usize;
                // Smallest first; ties keep their (layer, position) order so runs repeat.
                pool.sort_by(|a, b| a.score.total_cmp(&b.score));
                let mut pruned = 0;
                for u in &pool {
                    if pruned + u.size > target {
                        break;
                    }
                    keep[u.layer][u.group as usize] = false;
                    pruned += u.size;
                }
            }
            Criterion::NOfM => unreachable!("handled above"),
        }
    }
    for (layer, &i) in nodes.iter().enumerate() {
        masks[i] = Some(
            group_maps[layer]
                .0
                .iter()
                .map(|&g| if keep[layer][g as usize] { 1.0 } else { 0.0 })
                .collect(),
        );
    }
    Ok(masks)
}

/// n:m along the input axis: the `n` largest |w| of each run of `m` consecutive inputs (a
/// shorter last run keeps `ceil(len · n / m)`).
fn n_of_m_mask(model: &Model, i: usize, n: usize, m: usize) -> Result<Vec<f32>> {
    let w = weight(model, i)?;
    let v = w
        .as_f32()
        .ok_or_else(|| Error::unsupported("pruning needs f32 weights (densify first)"))?;
    let (rows, cols) = matrix(&w.shape);
    let mut mask = vec![0.0f32; v.len()];
    // Index lists of each run: Dense runs go down a column (inputs are rows), Conv2d runs
    // along a row (an output channel's inputs are its columns).
    let dense = matches!(model.graph.nodes[i].op, Op::Dense { .. });
    let (lines, len) = if dense { (cols, rows) } else { (rows, cols) };
    let at = |line: usize, k: usize| if dense { k * cols + line } else { line * cols + k };
    let mut run: Vec<usize> = Vec::with_capacity(m);
    for line in 0..lines {
        for start in (0..len).step_by(m) {
            run.clear();
            run.extend((start..(start + m).min(len)).map(|k| at(line, k)));
            let keep = (run.len() * n).div_ceil(m);
            // Largest first; stable so equal magnitudes keep the earlier input.
            run.sort_by(|&a, &b| v[b].abs().total_cmp(&v[a].abs()));
            for &idx in &run[..keep] {
                mask[idx] = 1.0;
            }
        }
    }
    Ok(mask)
}

/// Multiplies every masked weight by its mask (pruned entries become exactly 0).
pub fn apply_masks(model: &mut Model, masks: &[Option<Vec<f32>>]) -> Result<()> {
    MaskHook { masks: masks.to_vec() }.after_step(model)
}

/// One-shot pruning: densify, compute the masks, apply them. Returns the masks (hand them to
/// a [`MaskHook`] to fine-tune without reviving pruned weights).
pub fn prune(
    model: &mut Model,
    criterion: Criterion,
    structure: Structure,
    scope: Scope,
) -> Result<Vec<Option<Vec<f32>>>> {
    densify(model)?;
    let masks = compute_masks(model, criterion, structure, scope)?;
    apply_masks(model, &masks)?;
    Ok(masks)
}

/// Gradual pruning during fine-tuning: a [`MaskHook`] whose masks are recomputed at the
/// schedule's steps for its target at that step. Counts its own optimizer steps (0 = before
/// the first step; after `k` steps the model has seen `k` updates).
pub struct PruneHook {
    pub schedule: PolynomialDecay,
    pub structure: Structure,
    pub scope: Scope,
    hold: MaskHook,
    step: u64,
    /// Sparsity of the masks in use (the last target applied).
    current: Option<f32>,
}

impl PruneHook {
    /// Validates the schedule and, when it starts at step 0, prunes `model` right away.
    pub fn new(model: &mut Model, schedule: PolynomialDecay, structure: Structure, scope: Scope) -> Result<PruneHook> {
        schedule.validate()?;
        if matches!(structure, Structure::NOfM { .. }) {
            return Err(Error::bad_input(
                "n:m structure has a fixed sparsity: prune it once and fine-tune, without a schedule",
            ));
        }
        densify(model)?;
        let mut hook = PruneHook {
            schedule,
            structure,
            scope,
            hold: MaskHook { masks: Vec::new() },
            step: 0,
            current: None,
        };
        hook.update(model)?;
        Ok(hook)
    }

    /// Optimizer steps counted so far.
    pub fn step(&self) -> u64 {
        self.step
    }
    /// The sparsity the masks in use were computed for (`None` before `begin_step`).
    pub fn current_sparsity(&self) -> Option<f32> {
        self.current
    }
    pub fn masks(&self) -> &[Option<Vec<f32>>] {
        &self.hold.masks
    }

    fn update(&mut self, model: &mut Model) -> Result<()> {
        if self.schedule.prunes_at(self.step) {
            let s = self.schedule.sparsity_at(self.step);
            self.hold.masks = compute_masks(model, Criterion::Sparsity(s), self.structure, self.scope)?;
            self.current = Some(s);
        }
        self.hold.after_step(model)
    }
}

impl StepHook for PruneHook {
    fn before_step(&mut self, grads: &mut [Option<ParamGrads>]) -> Result<()> {
        self.hold.before_step(grads)
    }
    fn after_step(&mut self, model: &mut Model) -> Result<()> {
        self.step += 1;
        self.update(model)
    }
}

/// How a pruned weight is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Dense,
    Csr,
    Bitmask,
}

impl Encoding {
    pub fn name(&self) -> &'static str {
        match self {
            Encoding::Dense => "dense",
            Encoding::Csr => "csr",
            Encoding::Bitmask => "bitmask",
        }
    }
}

/// Bytes each encoding takes in an `.mdm` file for `numel` entries with `nnz` non-zeros in
/// `rows` rows: the buffers plus their (offset, length) entries in the tensor record.
pub fn encoded_bytes(numel: usize, rows: usize, nnz: usize) -> [(Encoding, usize); 3] {
    [
        (Encoding::Dense, 4 * numel + 16),
        (Encoding::Csr, 4 * (rows + 1) + 8 * nnz + 3 * 16),
        (Encoding::Bitmask, numel.div_ceil(8) + 4 * nnz + 2 * 16),
    ]
}

/// The smallest encoding the reader accepts: a sparse tensor must satisfy the format's
/// expansion bound (`numel ≤ 64 + 8 × buffer bytes`, MDM_FORMAT.md), which a nearly empty CSR
/// can miss; the bitmask always meets it.
pub fn choose_encoding(numel: usize, rows: usize, nnz: usize) -> Encoding {
    let sizes = encoded_bytes(numel, rows, nnz);
    let csr_buffers = 4 * (rows + 1) + 8 * nnz;
    sizes
        .iter()
        .filter(|(e, _)| *e != Encoding::Csr || numel <= 64 + 8 * csr_buffers)
        .min_by_key(|(_, b)| *b)
        .map(|(e, _)| *e)
        .unwrap_or(Encoding::Dense)
}

/// Re-encodes one f32 tensor.
pub fn encode(t: &Tensor, enc: Encoding) -> Result<Tensor> {
    let dense = match &t.data {
        TensorData::F32(v) => v.clone(),
        _ => t.to_f32_dense()?,
    };
    let data = match enc {
        Encoding::Dense => TensorData::F32(dense),
        Encoding::Csr => {
            let (rows, cols) = matrix(&t.shape);
            let mut row_ptr = Vec::with_capacity(rows + 1);
            let (mut col_idx, mut values) = (Vec::new(), Vec::new());
            row_ptr.push(0u32);
            for r in 0..rows {
                for c in 0..cols {
                    let x = dense[r * cols + c];
                    if x != 0.0 {
                        col_idx.push(c as u32);
                        values.push(x);
                    }
                }
                row_ptr.push(values.len() as u32);
            }
            TensorData::SparseCsr { row_ptr, col_idx, values }
        }
        Encoding::Bitmask => {
            let mut mask = vec![0u8; dense.len().div_ceil(8)];
            let mut values = Vec::new();
            for (i, &x) in dense.iter().enumerate() {
                if x != 0.0 {
                    mask[i / 8] |= 1 << (i % 8);
                    values.push(x);
                }
            }
            TensorData::SparseBitmask { mask, values }
        }
    };
    Ok(Tensor { shape: t.shape.clone(), data })
}

/// Stores every prunable weight in its smallest encoding ([`choose_encoding`]); other tensors
/// stay as they are. Returns the encoding chosen per prunable node.
pub fn store_sparse(model: &mut Model) -> Result<Vec<(usize, Encoding)>> {
    let mut chosen = Vec::new();
    for i in prunable_nodes(model) {
        let w = weight(model, i)?;
        let dense = w.to_f32_dense()?;
        let nnz = dense.iter().filter(|&&x| x != 0.0).count();
        let enc = choose_encoding(dense.len(), matrix(&w.shape).0, nnz);
        let new = encode(w, enc)?;
        match &mut model.graph.nodes[i].op {
            Op::Dense { weight, .. } | Op::Conv2d { weight, .. } => *weight = new,
            _ => unreachable!("prunable_nodes lists Dense and Conv2d only"),
        }
        chosen.push((i, enc));
    }
    Ok(chosen)
}

/// Sparsity of one prunable layer as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSparsity {
    pub node: usize,
    /// `node 1 (Dense "fc1")`.
    pub name: String,
    pub nonzeros: usize,
    pub total: usize,
    pub encoding: &'static str,
}

impl LayerSparsity {
    pub fn sparsity(&self) -> f32 {
        if self.total == 0 {
            0.0
        } else {
            1.0 - self.nonzeros as f32 / self.total as f32
        }
    }
}

/// Non-zeros of every `Dense`/`Conv2d` weight and how it is stored (quantized weights count
/// their non-zero reals and report `quantized`).
pub fn layer_sparsity(model: &Model) -> Result<Vec<LayerSparsity>> {
    prunable_nodes(model)
        .into_iter()
        .map(|i| {
            let w = weight(model, i)?;
            let encoding = match &w.data {
                TensorData::F32(_) => "dense",
                TensorData::Quantized { .. } => "quantized",
                TensorData::SparseCsr { .. } => "csr",
                TensorData::SparseBitmask { .. } => "bitmask",
            };
            let nonzeros = match &w.data {
                TensorData::SparseCsr { values, .. } | TensorData::SparseBitmask { values, .. } => {
                    w.check_data()?;
                    values.iter().filter(|&&x| x != 0.0).count()
                }
                _ => w.to_f32_dense()?.iter().filter(|&&x| x != 0.0).count(),
            };
            Ok(LayerSparsity {
                node: i,
                name: model.graph.describe_node(i),
                nonzeros,
                total: w.numel(),
                encoding,
            })
        })
        .collect()
}
