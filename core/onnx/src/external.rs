//! ONNX external data: tensors whose bytes live in a file beside the model (PyTorch's dynamo
//! exporter writes every weight to `model.onnx.data`).
//!
//! ```text
//!  TensorProto { data_location: EXTERNAL, external_data: {location, offset, length} }
//!    ─location: relative, no `..`, no root; resolved (symlinks too) inside the model's folder─►
//!    ─a regular file; offset + bytes(dims × type) within its real size; length, when given, equal
//!     to that; all external bytes together within the converter's byte budget─►
//!    read into TensorProto.raw_data ─► tract parses a self-contained model (no folder given)
//! ```
//!
//! tract-onnx 0.23 can read external data itself (it checks the path and the range against the
//! file), but it maps the file (a file truncated while mapped is a SIGBUS, not an error), copies
//! whatever `length` says before comparing it with the tensor's shape, and its errors name
//! neither the tensor nor what to do. So this module does all the reading, with every check made
//! before a byte is allocated, and tract is never given the folder.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use tract_onnx::pb;

use crate::error::ImportError;

/// `TensorProto.DataLocation.EXTERNAL`.
const EXTERNAL: i32 = 1;

/// Bytes per element of the ONNX data types a weight can have; `None`: a type that cannot be
/// stored as raw bytes here (strings) or that tract does not read.
fn elem_bytes(data_type: i32) -> Option<u64> {
    // TensorProto.DataType numbering (onnx.proto).
    match data_type {
        2 | 3 | 9 => Some(1),       // UINT8, INT8, BOOL
        4 | 5 | 10 | 16 => Some(2), // UINT16, INT16, FLOAT16, BFLOAT16
        1 | 6 | 12 => Some(4),      // FLOAT, INT32, UINT32
        7 | 11 | 13 => Some(8),     // INT64, DOUBLE, UINT64
        _ => None,
    }
}

fn visit_graph(g: &pb::GraphProto, f: &mut dyn FnMut(&pb::TensorProto) -> Result<(), ImportError>) -> Result<(), ImportError> {
    for t in &g.initializer {
        f(t)?;
    }
    for s in &g.sparse_initializer {
        for t in s.values.iter().chain(s.indices.iter()) {
            f(t)?;
        }
    }
    for n in &g.node {
        for a in &n.attribute {
            for t in a.t.iter().chain(a.tensors.iter()) {
                f(t)?;
            }
            for s in a.sparse_tensor.iter().chain(a.sparse_tensors.iter()) {
                for t in s.values.iter().chain(s.indices.iter()) {
                    f(t)?;
                }
            }
            for sub in a.g.iter().chain(a.graphs.iter()) {
                visit_graph(sub, f)?;
            }
        }
    }
    Ok(())
}

fn visit_graph_mut(
    g: &mut pb::GraphProto,
    f: &mut dyn FnMut(&mut pb::TensorProto) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    for t in &mut g.initializer {
        f(t)?;
    }
    for s in &mut g.sparse_initializer {
        for t in s.values.iter_mut().chain(s.indices.iter_mut()) {
            f(t)?;
        }
    }
    for n in &mut g.node {
        for a in &mut n.attribute {
            for t in a.t.iter_mut().chain(a.tensors.iter_mut()) {
                f(t)?;
            }
            for s in a.sparse_tensor.iter_mut().chain(a.sparse_tensors.iter_mut()) {
                for t in s.values.iter_mut().chain(s.indices.iter_mut()) {
                    f(t)?;
                }
            }
            for sub in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                visit_graph_mut(sub, f)?;
            }
        }
    }
    Ok(())
}

fn is_external(t: &pb::TensorProto) -> bool {
    t.data_location == Some(EXTERNAL)
}

/// One opened data file, shared by the tensors that name it.
struct DataFile {
    file: File,
    len: u64,
}

/// Reads the bytes of every external tensor into its `raw_data`, so that tract sees a
/// self-contained model. `dir` is the model's folder (`None`: the model came as bytes, and
/// external data is refused with the way out). `budget` is how many bytes all external tensors
/// may add up to.
pub fn inline(proto: &mut pb::ModelProto, dir: Option<&Path>, budget: u64) -> Result<(), ImportError> {
    let Some(graph) = proto.graph.as_mut() else { return Ok(()) };
    let Some(dir) = dir else {
        let mut first = None;
        visit_graph(graph, &mut |t| {
            if first.is_none() && is_external(t) {
                first = Some((t.name.clone(), location_of(t).unwrap_or_default().to_string()));
            }
            Ok(())
        })?;
        return match first {
            None => Ok(()),
            Some((name, location)) => Err(ImportError::new(format!(
                "tensor {name:?} keeps its bytes in the external file {location:?} (ONNX external data, as PyTorch's \
                 exporter writes model.onnx.data), and this model was given as bytes only, without its folder: \
                 import it from its path (import_path, or `mdeploy convert path/to/model.onnx`) with the data \
                 file beside it"
            ))),
        };
    };
    let dir_canon = dir.canonicalize().map_err(|e| {
        ImportError::new(format!("cannot resolve the model's folder {}: {e}", dir.display()))
    })?;
    let mut files: HashMap<String, DataFile> = HashMap::new();
    let mut total: u64 = 0;
    visit_graph_mut(graph, &mut |t| {
        if !is_external(t) {
            return Ok(());
        }
        let bytes = read_one(t, &dir_canon, &mut files, &mut total, budget)?;
        t.raw_data = bytes;
        t.external_data.clear();
        t.data_location = None;
        Ok(())
    })
}

fn location_of(t: &pb::TensorProto) -> Option<&str> {
    t.external_data.iter().find(|e| e.key == "location").map(|e| e.value.as_str())
}

fn number(t: &pb::TensorProto, key: &str) -> Result<Option<u64>, ImportError> {
    match t.external_data.iter().find(|e| e.key == key) {
        None => Ok(None),
        Some(e) => e.value.trim().parse::<u64>().map(Some).map_err(|_| {
            ImportError::new(format!(
                "tensor {:?}: external data {key} {:?} is not a non-negative whole number; the file is malformed, \
                 re-export it",
                t.name, e.value
            ))
        }),
    }
}

/// The data file a location names, checked to stay inside the model's folder.
fn resolve(t: &pb::TensorProto, location: &str, dir: &Path) -> Result<PathBuf, ImportError> {
    let rel = Path::new(location);
    let plain = !location.is_empty()
        && rel.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && rel.components().any(|c| matches!(c, Component::Normal(_)));
    if !plain {
        return Err(ImportError::new(format!(
            "tensor {:?}: external data location {location:?} is not a relative path inside the model's folder \
             (absolute paths and `..` are refused); put the data file beside the .onnx file and name it by its \
             file name",
            t.name
        )));
    }
    let expected = dir.join(rel);
    let canon = match expected.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ImportError::new(format!(
                "tensor {:?} keeps its bytes in {location:?}, which is missing: expected at {} (beside the .onnx \
                 file); copy the data file the exporter wrote (e.g. model.onnx.data) there",
                t.name,
                expected.display()
            )))
        }
        Err(e) => {
            return Err(ImportError::new(format!(
                "tensor {:?}: cannot resolve its external data file {}: {e}",
                t.name,
                expected.display()
            )))
        }
    };
    if !canon.starts_with(dir) {
        return Err(ImportError::new(format!(
            "tensor {:?}: external data location {location:?} resolves to {}, outside the model's folder {} (a \
             symbolic link leads out); copy the data file itself beside the .onnx file",
            t.name,
            canon.display(),
            dir.display()
        )));
    }
    Ok(canon)
}

fn read_one(
    t: &pb::TensorProto,
    dir: &Path,
    files: &mut HashMap<String, DataFile>,
    total: &mut u64,
    budget: u64,
) -> Result<Vec<u8>, ImportError> {
    let location = location_of(t).ok_or_else(|| {
        ImportError::new(format!(
            "tensor {:?} is marked as external data but names no location; the file is malformed, re-export it",
            t.name
        ))
    })?;
    let per_elem = elem_bytes(t.data_type).ok_or_else(|| {
        ImportError::new(format!(
            "tensor {:?}: ONNX data type {} cannot be read from external data here (numbers only)",
            t.name, t.data_type
        ))
    })?;
    // The size the tensor's own shape implies: what is read, whatever `length` claims.
    let mut want = per_elem;
    for &d in &t.dims {
        let d = u64::try_from(d).map_err(|_| {
            ImportError::new(format!("tensor {:?} has a negative dimension {d}; the file is malformed", t.name))
        })?;
        want = want.checked_mul(d).ok_or_else(|| {
            ImportError::new(format!("tensor {:?}: its shape {:?} overflows a byte count", t.name, t.dims))
        })?;
    }
    let offset = number(t, "offset")?.unwrap_or(0);
    if let Some(length) = number(t, "length")? {
        if length != want {
            return Err(ImportError::new(format!(
                "tensor {:?}: external data length {length} does not match its shape {:?} ({want} bytes); the file \
                 is malformed, re-export it",
                t.name, t.dims
            )));
        }
    }
    if want > budget.saturating_sub(*total) {
        return Err(ImportError::new(format!(
            "tensor {:?} needs {want} bytes of external data, past the {budget} bytes this converter reads for one \
             model (file and external data together); mdeploy targets small models",
            t.name
        )));
    }
    if !files.contains_key(location) {
        let path = resolve(t, location, dir)?;
        let meta = std::fs::metadata(&path)
            .map_err(|e| ImportError::new(format!("tensor {:?}: cannot stat {}: {e}", t.name, path.display())))?;
        // Opening a FIFO or a device could block or never end: only regular files are read.
        if !meta.is_file() {
            return Err(ImportError::new(format!(
                "tensor {:?}: external data {} is not a regular file; put the exporter's data file there",
                t.name,
                path.display()
            )));
        }
        let file = File::open(&path)
            .map_err(|e| ImportError::new(format!("tensor {:?}: cannot open {}: {e}", t.name, path.display())))?;
        // The size of the file actually opened, not of whatever the path named a moment ago.
        let len = file
            .metadata()
            .map_err(|e| ImportError::new(format!("tensor {:?}: cannot stat {}: {e}", t.name, path.display())))?
            .len();
        files.insert(location.to_string(), DataFile { file, len });
    }
    let Some(data) = files.get_mut(location) else {
        return Err(ImportError::new("internal error: an external data file vanished from the table"));
    };
    let end = offset.checked_add(want);
    if end.is_none_or(|end| end > data.len) {
        return Err(ImportError::new(format!(
            "tensor {:?}: external data {offset}..{} lies past the end of {location:?} ({} bytes); the data file \
             does not belong to this model or is truncated: re-export both together",
            t.name,
            end.map(|e| e.to_string()).unwrap_or_else(|| "overflow".to_string()),
            data.len
        )));
    }
    *total += want;
    let len = usize::try_from(want)
        .map_err(|_| ImportError::new(format!("tensor {:?}: {want} bytes do not fit in memory here", t.name)))?;
    let mut buf = vec![0u8; len];
    data.file
        .seek(SeekFrom::Start(offset))
        .and_then(|_| data.file.read_exact(&mut buf))
        .map_err(|e| {
            ImportError::new(format!(
                "tensor {:?}: reading {want} bytes at offset {offset} of {location:?} failed: {e} (was the file \
                 changed while converting?)",
                t.name
            ))
        })?;
    Ok(buf)
}
