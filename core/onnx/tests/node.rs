//! The ONNX backend node tests (onnx 1.23.2: 1,884 cases, one op each, with onnx's reference
//! outputs), run through the importer and the CPU runtime. Every case is one of:
//!
//! * **pass**: converts, runs, and matches the reference output within onnx's backend tolerance
//!   (`numpy.testing.assert_allclose(rtol=1e-3, atol=1e-7)`, NaNs equal) with the same shape;
//! * **refused**: the importer returns an error that names the ONNX node and op, or the input or
//!   output it cannot take (never an internal error);
//! * anything else fails the test: a **wrong** answer (converted, but the outputs or shape
//!   differ), an **internal** error (an importer bug, a converted model that does not run) or a
//!   **panic** (each case runs under `catch_unwind`, so one bad case cannot stop the rest).
//!
//! mdeploy models take one runtime input (axis 0 is the batch) and keep weights constant, so the
//! harness turns a case's inputs 1.. into initializers holding the case's own input data (a
//! deployed model: `Conv`'s W, `Gemm`'s B, `Add`'s second operand are weights). The first input's
//! data gives the input shape; its axis 0 is the batch.
//!
//! The set of passing cases must equal `tests/node_expect.txt`, and the per-op counts must equal
//! `NODE_TESTS.md`, so a regression and an unnoticed gain both fail. `MDEPLOY_BLESS=1` rewrites
//! both. The cases are generated, not committed: `core/onnx/node-tests/generate.sh` writes them to
//! `~/.cache/mdeploy/onnx-node/1.23.2` (or `$MDEPLOY_ONNX_NODE_DIR`); `npm test` runs it first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use mdeploy_core::Plan;
use mdeploy_onnx::{import_bytes, ImportOptions};
use prost::Message;
use tract_onnx::data_resolver::FopenDataResolver;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tensor::{load_tensor, proto_from_reader};

/// onnx's backend test tolerance (`onnx.backend.test.case.node.expect`: every node case).
const RTOL: f64 = 1e-3;
const ATOL: f64 = 1e-7;
const ONNX_VERSION: &str = "1.23.2";

#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Pass,
    Refused(String),
    /// Converted, but the outputs or their shape differ: never acceptable.
    Wrong(String),
    /// An internal error or a panic: never acceptable.
    Broken(String),
}

fn data_dir() -> PathBuf {
    let root = match std::env::var_os("MDEPLOY_ONNX_NODE_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is not set; set MDEPLOY_ONNX_NODE_DIR instead");
            Path::new(&home).join(".cache/mdeploy/onnx-node").join(ONNX_VERSION)
        }
    };
    root.join("node")
}

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `(case, op type, expanded)` from the generator's manifest.
fn manifest(dir: &Path) -> Vec<(String, String, bool)> {
    let path = dir.join("manifest.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the ONNX node test cases are missing ({}: {e}). Generate them (a few seconds, needs onnx=={ONNX_VERSION} \
             in $MDEPLOY_PY_VENV): bash core/onnx/node-tests/generate.sh",
            path.display()
        )
    });
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "{}: bad line {l:?}; delete the folder and regenerate", path.display());
            (f[0].to_string(), f[1].to_string(), f[2] == "expanded")
        })
        .collect()
}

fn read_proto(path: &Path) -> Result<pb::TensorProto, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    proto_from_reader(file).map_err(|e| format!("{}: {e:#}", path.display()))
}

fn read_tensor(path: &Path) -> Result<Tensor, String> {
    let proto = read_proto(path)?;
    load_tensor(&FopenDataResolver, &proto, None).map_err(|e| format!("{}: {e:#}", path.display()))
}

fn is_tensor(v: &pb::ValueInfoProto) -> bool {
    matches!(v.r#type.as_ref().and_then(|t| t.value.as_ref()), Some(pb::type_proto::Value::TensorType(_)))
}

/// `assert_allclose(want, got, rtol, atol)` with NaNs equal, as onnx's backend runner checks.
fn close(got: f64, want: f64) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return want == got;
    }
    (got - want).abs() <= ATOL + RTOL * want.abs()
}

fn run_case(dir: &Path, debug: bool) -> Outcome {
    let data = dir.join("test_data_set_0");
    let bytes = match std::fs::read(dir.join("model.onnx")) {
        Ok(b) => b,
        Err(e) => return Outcome::Broken(format!("cannot read the case: {e}")),
    };
    let mut proto = match pb::ModelProto::decode(&bytes[..]) {
        Ok(p) => p,
        Err(e) => return Outcome::Broken(format!("the case's model.onnx does not decode: {e}")),
    };
    let Some(graph) = proto.graph.as_mut() else { return Outcome::Broken("no graph".into()) };

    // Inputs 1.. become weights holding the case's own data. A non-tensor input (a sequence,
    // an optional) stays an input: the importer must then refuse the graph for its inputs.
    let mut keep = Vec::new();
    for (j, input) in std::mem::take(&mut graph.input).into_iter().enumerate() {
        if j == 0 || !is_tensor(&input) {
            keep.push(input);
            continue;
        }
        let path = data.join(format!("input_{j}.pb"));
        let mut t = match read_proto(&path) {
            Ok(t) => t,
            Err(e) => return Outcome::Broken(e),
        };
        t.name = input.name.clone();
        graph.initializer.push(t);
    }
    graph.input = keep;
    let outputs: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();

    // The input shape comes from the data (the batch first), when input 0 is a plain tensor.
    // Only its dims are read here: tract cannot load every element type onnx tests (bfloat16,
    // float8, int4), and such an input is the importer's to refuse.
    let x_proto = match graph.input.first() {
        Some(i) if is_tensor(i) => match read_proto(&data.join("input_0.pb")) {
            Ok(t) => Some(t),
            Err(e) => return Outcome::Broken(e),
        },
        _ => None,
    };
    let x_shape: Option<Vec<usize>> = x_proto.as_ref().map(|t| t.dims.iter().map(|&d| d.max(0) as usize).collect());
    let opts = ImportOptions { input_shape: x_shape, output: None };
    let imported = match import_bytes(&proto.encode_to_vec(), &opts) {
        Ok(m) => m,
        Err(e) if e.message.contains("internal error") => return Outcome::Broken(e.message),
        Err(e) => return Outcome::Refused(e.message),
    };

    // Converted: now it must compute exactly what onnx says.
    let Some(x_proto) = x_proto else {
        return Outcome::Wrong("converted a graph whose first input is not a tensor".into());
    };
    let x = match load_tensor(&FopenDataResolver, &x_proto, None) {
        Ok(t) => t,
        Err(e) => return Outcome::Wrong(format!("converted a graph whose input tract cannot even load: {e:#}")),
    };
    if x.datum_type() != f32::datum_type() {
        return Outcome::Wrong(format!("converted a graph whose input is {:?}; mdeploy feeds f32", x.datum_type()));
    }
    let Some(k) = outputs.iter().position(|o| *o == imported.output_name) else {
        return Outcome::Broken(format!("the importer chose output {:?}, not in the graph", imported.output_name));
    };
    let model = match imported.into_model("case", "case") {
        Ok(m) => m,
        Err(e) => return Outcome::Broken(e.message),
    };
    if debug {
        let shapes = model.shapes().unwrap_or_default();
        for (i, n) in model.graph.nodes.iter().enumerate() {
            eprintln!("  {} {:?} {:?} inputs {:?} -> {:?}", n.name, n.op.name(), n.op, n.inputs, shapes.get(i + 1));
        }
        eprintln!("  input {:?}, output value {}", model.meta.input_shape, model.graph.output);
    }
    let want = match read_tensor(&data.join(format!("output_{k}.pb"))) {
        Ok(t) => t,
        Err(e) => return Outcome::Broken(e),
    };
    if !want.datum_type().is_float() {
        return Outcome::Wrong(format!("converted a graph whose output is {:?}", want.datum_type()));
    }
    let n = x.shape()[0];
    let md_shape = match model.output_shape() {
        Ok(s) => s,
        Err(e) => return Outcome::Broken(format!("{e}")),
    };
    if want.shape().first() != Some(&n) || want.shape()[1..] != md_shape[..] {
        return Outcome::Wrong(format!(
            "output shape: mdeploy [{n}, {md_shape:?}], onnx {:?}",
            want.shape()
        ));
    }
    let xs: Vec<f32> = match x.to_plain_array_view::<f32>() {
        Ok(v) => v.iter().copied().collect(),
        Err(e) => return Outcome::Broken(format!("{e:#}")),
    };
    let want: Vec<f64> = match want.cast_to::<f64>() {
        Ok(t) => match t.to_plain_array_view::<f64>() {
            Ok(v) => v.iter().copied().collect(),
            Err(e) => return Outcome::Broken(format!("{e:#}")),
        },
        Err(e) => return Outcome::Broken(format!("{e:#}")),
    };
    let mut plan = match Plan::new(&model, n.max(1)) {
        Ok(p) => p,
        Err(e) => return Outcome::Broken(format!("the converted model does not plan: {e}")),
    };
    let mut got = vec![0f32; want.len()];
    if let Err(e) = plan.run(&xs, n, &mut got) {
        return Outcome::Broken(format!("the converted model does not run: {e}"));
    }
    let bad: Vec<usize> = (0..want.len()).filter(|&i| !close(got[i] as f64, want[i])).collect();
    match bad.first() {
        None => Outcome::Pass,
        Some(&i) => Outcome::Wrong(format!(
            "{} of {} outputs differ beyond rtol {RTOL}, atol {ATOL}; first at flat index {i}: mdeploy {}, onnx {}",
            bad.len(),
            want.len(),
            got[i],
            want[i]
        )),
    }
}

/// A refusal is clear when it names the ONNX node and op (`ONNX node "x" (Op, opset n)`) or the
/// graph's input, output or value that mdeploy cannot take.
fn refusal_is_clear(msg: &str, op: &str) -> bool {
    // tract's own "Building node n (Op): ..." names the op when it cannot read its attributes.
    let names_node = msg.contains("ONNX node \"") || msg.contains(&format!("({op})"));
    let names_io = ["input", "output", "value \"", "weight \""].iter().any(|w| msg.contains(w));
    !msg.contains("internal error") && !msg.contains("panicked") && (names_node || names_io)
}

#[derive(Default)]
struct OpCount {
    cases: usize,
    passed: usize,
    refused: usize,
    expanded_cases: usize,
    expanded_passed: usize,
}

#[test]
fn onnx_backend_node_tests() {
    let dir = data_dir();
    let mut cases = manifest(&dir);
    // A debugging aid: MDEPLOY_NODE_FILTER=hardsigmoid runs the matching cases only, prints each
    // outcome and converted graph, and compares nothing with the committed files.
    let filter = std::env::var("MDEPLOY_NODE_FILTER").ok();
    if let Some(f) = &filter {
        cases.retain(|c| c.0.contains(f.as_str()));
    }
    assert!(filter.is_some() || cases.len() >= 1800, "{}: only {} cases; delete the folder and regenerate", dir.display(), cases.len());
    let started = Instant::now();

    // Panics are expected to be caught (tract's inside the importer, any here by the guard
    // below); keep their default report off stderr and record the message instead.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut results: Vec<(String, String, bool, Outcome)> = Vec::new();
    for (name, op, expanded) in &cases {
        let outcome = match catch_unwind(AssertUnwindSafe(|| run_case(&dir.join(name), filter.is_some()))) {
            Ok(o) => o,
            Err(p) => {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Outcome::Broken(format!("panicked: {what}"))
            }
        };
        let outcome = match outcome {
            Outcome::Refused(m) if !refusal_is_clear(&m, op) => Outcome::Broken(format!("unclear refusal: {m}")),
            o => o,
        };
        results.push((name.clone(), op.clone(), *expanded, outcome));
    }
    std::panic::set_hook(hook);
    let elapsed = started.elapsed();

    let mut per_op: BTreeMap<&str, OpCount> = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, op, expanded, outcome) in &results {
        let c = per_op.entry(op).or_default();
        c.cases += 1;
        c.expanded_cases += *expanded as usize;
        match outcome {
            Outcome::Pass => {
                c.passed += 1;
                c.expanded_passed += *expanded as usize;
            }
            Outcome::Refused(_) => c.refused += 1,
            Outcome::Wrong(m) => failures.push(format!("WRONG {name} ({op}): {m}")),
            Outcome::Broken(m) => failures.push(format!("BROKEN {name} ({op}): {m}")),
        }
    }
    let passed: BTreeSet<&str> =
        results.iter().filter(|r| r.3 == Outcome::Pass).map(|r| r.0.as_str()).collect();
    let refused = results.iter().filter(|r| matches!(r.3, Outcome::Refused(_))).count();
    eprintln!(
        "ONNX node tests: {} cases, {} passed, {refused} refused, {} wrong or broken, in {:.1} s",
        results.len(),
        passed.len(),
        failures.len(),
        elapsed.as_secs_f64()
    );
    if std::env::var_os("MDEPLOY_NODE_VERBOSE").is_some() || filter.is_some() {
        for (name, op, _, o) in &results {
            eprintln!("{name} ({op}): {o:?}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} node cases gave a wrong answer or an internal error (never acceptable: fix map.rs, or refuse the \
         pattern with a clear error):\n{}",
        failures.len(),
        failures.join("\n")
    );

    if filter.is_some() {
        eprintln!("MDEPLOY_NODE_FILTER is set: {} of the cases ran; nothing compared with node_expect.txt", results.len());
        return;
    }
    let expect_text: String = passed.iter().map(|n| format!("{n}\n")).collect();
    let report = report(&per_op, results.len(), passed.len(), refused);
    let expect_path = crate_dir().join("tests/node_expect.txt");
    let report_path = crate_dir().join("NODE_TESTS.md");
    if std::env::var_os("MDEPLOY_BLESS").is_some() {
        std::fs::write(&expect_path, &expect_text).expect("write node_expect.txt");
        std::fs::write(&report_path, &report).expect("write NODE_TESTS.md");
        eprintln!("blessed: {} and {}", expect_path.display(), report_path.display());
        return;
    }
    let committed = std::fs::read_to_string(&expect_path).unwrap_or_default();
    let committed: BTreeSet<&str> = committed.lines().collect();
    let lost: Vec<&&str> = committed.difference(&passed).collect();
    let gained: Vec<&&str> = passed.difference(&committed).collect();
    assert!(
        lost.is_empty() && gained.is_empty(),
        "the passing node cases differ from tests/node_expect.txt: {} no longer pass {lost:?}, {} pass newly \
         {gained:?}. A loss is a regression; for a gain, rerun with MDEPLOY_BLESS=1 and commit \
         node_expect.txt and NODE_TESTS.md",
        lost.len(),
        gained.len()
    );
    let committed_report = std::fs::read_to_string(&report_path).unwrap_or_default();
    assert!(
        committed_report == report,
        "NODE_TESTS.md is out of date with the per-op counts; rerun with MDEPLOY_BLESS=1 and commit it"
    );
}

fn report(per_op: &BTreeMap<&str, OpCount>, cases: usize, passed: usize, refused: usize) -> String {
    let mut s = String::new();
    let pct = |a: usize, b: usize| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
    let _ = writeln!(s, "# ONNX backend node tests");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Written by `MDEPLOY_BLESS=1 cargo test -p mdeploy-onnx --release --test node` (`tests/node.rs`); the test \
         fails when these counts or the passing cases (`tests/node_expect.txt`) change. Do not edit by hand."
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "**onnx {ONNX_VERSION}: {cases} cases, {passed} passed ({:.1} %), {refused} refused with a clear error, \
         0 wrong.**",
        pct(passed, cases)
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "* **passed**: converted, run on the CPU runtime, equal to onnx's reference output within \
         `rtol 1e-3, atol 1e-7` (onnx's backend tolerance, NaNs equal) with the same shape."
    );
    let _ = writeln!(
        s,
        "* **refused**: the importer's error names the ONNX node and op, or the input/output mdeploy cannot \
         take. A wrong output, an internal error or a panic fails the test, so there are none."
    );
    let _ = writeln!(
        s,
        "* The harness turns a case's inputs 1.. into initializers holding that case's input data (mdeploy \
         models take one runtime input, batch on axis 0, constant weights): `Conv`'s W, `Gemm`'s B or \
         `Add`'s second operand are weights, as in a deployed model. Input 0's data gives the input \
         shape; its axis 0 is the batch. A case with several outputs is compared on the one the importer \
         serves (the only float one)."
    );
    let _ = writeln!(
        s,
        "* *expanded*: onnx's cases of the same op written as its function body (`test_<op>_..._expanded`)."
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "Regenerate the cases (never committed; about 57 MB in `~/.cache/mdeploy/onnx-node/{ONNX_VERSION}`) and rerun:");
    let _ = writeln!(s);
    let _ = writeln!(s, "```sh");
    let _ = writeln!(s, "bash core/onnx/node-tests/generate.sh      # once; npm test runs it");
    let _ = writeln!(s, "cargo test -p mdeploy-onnx --release --test node");
    let _ = writeln!(s, "MDEPLOY_NODE_VERBOSE=1 cargo test -p mdeploy-onnx --release --test node -- --nocapture   # every refusal");
    let _ = writeln!(s, "```");
    let _ = writeln!(s);
    let _ = writeln!(s, "## Ops with passing cases");
    let _ = writeln!(s);
    let _ = writeln!(s, "| ONNX op | cases | passed | refused | expanded: passed / cases |");
    let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: |");
    let mut with_pass: Vec<(&&str, &OpCount)> = per_op.iter().filter(|(_, c)| c.passed > 0).collect();
    with_pass.sort_by(|a, b| b.1.passed.cmp(&a.1.passed).then(a.0.cmp(b.0)));
    for (op, c) in &with_pass {
        let _ = writeln!(
            s,
            "| `{op}` | {} | {} | {} | {} / {} |",
            c.cases, c.passed, c.refused, c.expanded_passed, c.expanded_cases
        );
    }
    let _ = writeln!(s);
    let none: Vec<String> = per_op
        .iter()
        .filter(|(_, c)| c.passed == 0)
        .map(|(op, c)| format!("`{op}` ({})", c.cases))
        .collect();
    let _ = writeln!(s, "## Ops with every case refused ({} ops, cases in brackets)", none.len());
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", none.join(", "));
    s
}
