//! PyTorch's two ONNX exporters (fixtures/pytorch_*, made by make_pytorch_fixtures.py with
//! torch 2.15.0): LeNet-5, a small ResNet and a MobileNetV2-style net, each exported with the
//! legacy TorchScript exporter (`dynamo=False`, weights inside the file) and with the default
//! dynamo exporter (weights in `<name>.onnx.data` beside it). Each converts, and the mdeploy
//! model reproduces onnxruntime's probabilities on the 2,000 test digits of the fixed split:
//! max difference <= 1e-5, argmax identical.
//!
//! Then ONNX external data (`model.onnx.data`) from a hostile file. Every case starts from the real
//! dynamo export of LeNet-5 (fixtures/pytorch_lenet5_dynamo.onnx, 7 weights in its .onnx.data),
//! edits what its weights say about their data (location, offset, length, shape) the way a
//! crafted file could, and writes it into a fresh folder: the import either converts the model
//! exactly or refuses it with an error that names the problem, without reading outside the
//! model's folder and without allocating what the file claims before checking it.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use mdeploy_onnx::{import_bytes, import_path, ImportOptions};
use prost::Message;
use support::{assert_parity, assert_parity_at, fixture, op_names};
use tract_onnx::pb;

fn count(ops: &[&str], op: &str) -> usize {
    ops.iter().filter(|&&o| o == op).count()
}

/// How many nodes of ONNX op type `op` the fixture's graph holds.
fn onnx_ops(name: &str, op: &str) -> usize {
    let bytes = std::fs::read(fixture(&format!("{name}.onnx"))).expect("fixture");
    let m = pb::ModelProto::decode(&bytes[..]).expect("the fixture decodes");
    m.graph.expect("a graph").node.iter().filter(|n| n.op_type == op).count()
}

#[test]
fn lenet5_legacy_exporter_matches_onnxruntime() {
    // The legacy exporter writes `view(x.size(0), -1)` as Shape/Gather/Unsqueeze/Concat/Reshape.
    let m = assert_parity("pytorch_lenet5_legacy");
    assert_eq!(
        op_names(&m),
        ["Conv2d", "Tanh", "AvgPool2d", "Conv2d", "Tanh", "AvgPool2d", "Flatten", "Dense", "Tanh", "Dense", "Tanh", "Dense", "Softmax"]
    );
    assert_eq!(m.meta.input_shape, [1, 28, 28]);
}

#[test]
fn lenet5_dynamo_exporter_with_external_data_matches_onnxruntime() {
    assert!(fixture("pytorch_lenet5_dynamo.onnx.data").is_file(), "the fixture keeps its weights outside");
    let m = assert_parity("pytorch_lenet5_dynamo");
    assert_eq!(count(&op_names(&m), "Conv2d"), 2);
    assert_eq!(count(&op_names(&m), "Dense"), 3);
}

#[test]
fn resnet_legacy_exporter_with_batchnorm_nodes_matches_onnxruntime() {
    // Exported with do_constant_folding=False: six BatchNormalization nodes (stem, 2 per block,
    // the projection shortcut) reach the importer, which folds them (exactly enough for 1e-5).
    assert_eq!(onnx_ops("pytorch_resnet_legacy", "BatchNormalization"), 6);
    let m = assert_parity("pytorch_resnet_legacy");
    let ops = op_names(&m);
    assert_eq!(count(&ops, "Conv2d"), 6, "{ops:?}");
    assert_eq!(count(&ops, "Add"), 2, "{ops:?}");
    // The strided 1x1 shortcut: tract's Downsample on H and on W, each a 1x1 max pool.
    assert_eq!(count(&ops, "MaxPool2d"), 2, "{ops:?}");
    assert_eq!(count(&ops, "GlobalAvgPool"), 1, "{ops:?}");
}

#[test]
fn resnet_dynamo_exporter_with_external_data_matches_onnxruntime() {
    // The dynamo exporter's optimizer folds BatchNorm into the convolutions itself.
    let m = assert_parity("pytorch_resnet_dynamo");
    let ops = op_names(&m);
    assert_eq!(count(&ops, "Conv2d"), 6, "{ops:?}");
    assert_eq!(count(&ops, "Add"), 2, "{ops:?}");
}

#[test]
fn mobilenet_legacy_exporter_with_batchnorm_nodes_matches_onnxruntime() {
    // stem, 3 per inverted residual block, head: 8 BatchNormalization nodes in the file.
    assert_eq!(onnx_ops("pytorch_mobilenet_legacy", "BatchNormalization"), 8);
    let m = assert_parity("pytorch_mobilenet_legacy");
    let ops = op_names(&m);
    assert_eq!(count(&ops, "Conv2d"), 8, "{ops:?}");
    assert_eq!(count(&ops, "Add"), 1, "{ops:?}");
    // ReLU6 is a Clip.
    assert_eq!(count(&ops, "Clip"), 6, "{ops:?}");
}

#[test]
fn mobilenet_dynamo_exporter_with_external_data_matches_onnxruntime() {
    let m = assert_parity("pytorch_mobilenet_dynamo");
    let ops = op_names(&m);
    assert_eq!(count(&ops, "Conv2d"), 8, "{ops:?}");
    assert_eq!(count(&ops, "Add"), 1, "{ops:?}");
}

// ---- external data from a hostile file ----

/// Counts live heap bytes and their peak, to show that a claimed size is checked before it is
/// allocated.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const NAME: &str = "pytorch_lenet5_dynamo";
const DATA: &str = "pytorch_lenet5_dynamo.onnx.data";

fn original() -> pb::ModelProto {
    let bytes = std::fs::read(fixture(&format!("{NAME}.onnx"))).expect("the dynamo LeNet-5 fixture");
    pb::ModelProto::decode(&bytes[..]).expect("the fixture decodes")
}

/// The weights kept in external data (the dynamo exporter writes all of them there).
fn external(m: &mut pb::ModelProto) -> Vec<&mut pb::TensorProto> {
    let g = m.graph.as_mut().expect("a graph");
    let ts: Vec<_> = g.initializer.iter_mut().filter(|t| t.data_location == Some(1)).collect();
    assert!(ts.len() >= 2, "the fixture keeps its weights outside");
    ts
}

fn set(t: &mut pb::TensorProto, key: &str, value: &str) {
    t.external_data.retain(|e| e.key != key);
    t.external_data.push(pb::StringStringEntryProto { key: key.into(), value: value.into() });
}

fn get(t: &pb::TensorProto, key: &str) -> Option<String> {
    t.external_data.iter().find(|e| e.key == key).map(|e| e.value.clone())
}

/// A fresh, empty folder for one case.
fn folder(case: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mdeploy-onnx-extdata-{}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp folder");
    dir
}

/// Writes the model as `dir/model.onnx` (and the real data file as `dir/<data>` when given).
fn write(dir: &Path, m: &pb::ModelProto, data: Option<&str>) -> PathBuf {
    let path = dir.join("model.onnx");
    std::fs::write(&path, m.encode_to_vec()).expect("write the model");
    if let Some(data) = data {
        let to = dir.join(data);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("the data folder");
        std::fs::copy(fixture(DATA), to).expect("copy the data file");
    }
    path
}

fn refused(path: &Path) -> String {
    match import_path(path, &ImportOptions::default()) {
        Ok(_) => panic!("{} converted, but must be refused", path.display()),
        Err(e) => e.message,
    }
}

#[test]
fn data_moved_into_a_subfolder_and_renamed_is_read_from_there() {
    let dir = folder("subfolder");
    let mut m = original();
    for t in external(&mut m) {
        set(t, "location", "weights/./lenet.bin");
    }
    let path = write(&dir, &m, Some("weights/lenet.bin"));
    assert_parity_at(&path, NAME);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn a_symlink_that_stays_inside_the_folder_is_followed() {
    let dir = folder("symlink-inside");
    let mut m = original();
    for t in external(&mut m) {
        set(t, "location", "link.data");
    }
    let path = write(&dir, &m, Some("real.data"));
    std::os::unix::fs::symlink(dir.join("real.data"), dir.join("link.data")).expect("symlink");
    assert_parity_at(&path, NAME);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_absolute_location_is_refused_even_when_the_file_exists() {
    let dir = folder("absolute");
    let mut m = original();
    let abs = fixture(DATA).canonicalize().expect("the fixture's data file");
    for t in external(&mut m) {
        set(t, "location", abs.to_str().expect("utf-8 path"));
    }
    let e = refused(&write(&dir, &m, None));
    assert!(e.contains("not a relative path inside the model's folder"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_location_with_dot_dot_is_refused_even_when_the_file_exists() {
    let dir = folder("dotdot");
    let inner = dir.join("model");
    std::fs::create_dir_all(&inner).expect("inner folder");
    std::fs::copy(fixture(DATA), dir.join(DATA)).expect("the data file one level up");
    let mut m = original();
    for t in external(&mut m) {
        set(t, "location", &format!("../{DATA}"));
    }
    let e = refused(&write(&inner, &m, None));
    assert!(e.contains("not a relative path inside the model's folder") && e.contains(".."), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn a_symlink_out_of_the_folder_is_refused() {
    let dir = folder("symlink-escape");
    let mut m = original();
    for t in external(&mut m) {
        set(t, "location", "escape.data");
    }
    let path = write(&dir, &m, None);
    // Points at a real, valid data file: only where it lies is wrong.
    std::os::unix::fs::symlink(fixture(DATA), dir.join("escape.data")).expect("symlink");
    let e = refused(&path);
    assert!(e.contains("outside the model's folder"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_data_file_is_named_with_where_it_was_expected() {
    let dir = folder("missing");
    let path = write(&dir, &original(), None);
    let e = refused(&path);
    let expected_at = dir.canonicalize().expect("the folder").join(DATA);
    assert!(e.contains(&format!("{DATA:?}")) && e.contains("missing"), "{e}");
    assert!(e.contains(&expected_at.display().to_string()), "{e}");
}

#[test]
fn import_bytes_of_a_model_with_external_data_says_to_pass_the_path() {
    let bytes = std::fs::read(fixture(&format!("{NAME}.onnx"))).expect("fixture");
    let e = import_bytes(&bytes, &ImportOptions::default()).expect_err("no folder to read the weights from").message;
    assert!(e.contains(DATA) && e.contains("import_path") && e.contains("mdeploy convert"), "{e}");
}

#[test]
fn an_offset_past_the_end_of_the_data_file_is_refused() {
    let dir = folder("offset");
    let size = std::fs::metadata(fixture(DATA)).expect("data file").len();
    let mut m = original();
    let t = external(&mut m).pop().expect("a weight");
    set(t, "offset", &size.to_string());
    let e = refused(&write(&dir, &m, Some(DATA)));
    assert!(e.contains("past the end") && e.contains(&format!("{size} bytes")), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_truncated_data_file_is_refused() {
    let dir = folder("truncated");
    let path = write(&dir, &original(), Some(DATA));
    let data = std::fs::read(dir.join(DATA)).expect("data");
    std::fs::write(dir.join(DATA), &data[..data.len() / 2]).expect("truncate");
    let e = refused(&path);
    assert!(e.contains("past the end") && e.contains("truncated"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_length_that_disagrees_with_the_shape_is_refused() {
    let dir = folder("length");
    let mut m = original();
    let t = external(&mut m).pop().expect("a weight");
    let real: u64 = get(t, "length").expect("the exporter writes lengths").parse().expect("a number");
    set(t, "length", &(real + 4).to_string());
    let e = refused(&write(&dir, &m, Some(DATA)));
    assert!(e.contains("does not match its shape"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn offsets_and_lengths_that_are_not_numbers_are_refused() {
    for (case, key, value) in [("neg", "offset", "-1"), ("text", "length", "lots"), ("huge", "offset", "99999999999999999999999")] {
        let dir = folder(&format!("number-{case}"));
        let mut m = original();
        let t = external(&mut m).pop().expect("a weight");
        set(t, key, value);
        let e = refused(&write(&dir, &m, Some(DATA)));
        assert!(e.contains(key) && e.contains("not a non-negative whole number"), "{case}: {e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_missing_location_and_a_directory_as_data_file_are_refused() {
    let dir = folder("no-location");
    let mut m = original();
    for t in external(&mut m) {
        t.external_data.retain(|e| e.key != "location");
    }
    let e = refused(&write(&dir, &m, Some(DATA)));
    assert!(e.contains("names no location"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);

    let dir = folder("directory");
    std::fs::create_dir_all(dir.join(DATA)).expect("a folder where the data file should be");
    let e = refused(&write(&dir, &original(), None));
    assert!(e.contains("not a regular file"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_huge_claimed_tensor_is_refused_before_it_is_allocated() {
    // 200 M floats = 800 MB: inside the 1 GiB budget, so only the data file's real size stops it;
    // then 2^40 floats: past the budget; then a shape whose byte count overflows.
    let cases: [(&str, Vec<i64>, &str); 4] = [
        ("in-budget", vec![200_000_000], "past the end"),
        ("past-budget", vec![1 << 20, 1 << 20], "bytes this converter reads"),
        ("overflow", vec![i64::MAX, 4], "overflows"),
        ("negative", vec![-1, 4], "negative dimension"),
    ];
    for (case, dims, says) in cases {
        let dir = folder(&format!("huge-{case}"));
        let mut m = original();
        let t = external(&mut m).pop().expect("a weight");
        t.dims = dims;
        t.external_data.retain(|e| e.key != "length");
        let path = write(&dir, &m, Some(DATA));
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let e = refused(&path);
        let grew = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        eprintln!("{case}: peak heap growth {grew} bytes: {e}");
        assert!(e.contains(says), "{case}: {e}");
        // Other tests of this binary allocate meanwhile (a few MB each); 800 MB would show.
        assert!(grew < 256 << 20, "{case}: the import allocated {grew} bytes for a claimed tensor");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
