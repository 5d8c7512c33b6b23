//! KServe v2 / Open Inference Protocol, REST flavour (`/v2/...`).
//!
//! Shapes follow the spec: server metadata `{name, version, extensions}`, model metadata
//! `{name, versions, platform, inputs, outputs}` (batch dimension `-1`), inference request
//! `{id?, parameters?, inputs: [{name, shape, datatype, data}], outputs?: [{name}]}`, response
//! `{model_name, model_version, id?, outputs: [{name, datatype, shape, data}]}`, errors
//! `{"error": "..."}`.
//!
//! Triton's binary tensor extension is supported too, because `tritonclient.http` uses it by
//! default (`set_data_from_numpy` and `InferRequestedOutput` both default to `binary_data=True`):
//! with an `Inference-Header-Content-Length: N` request header the first N body bytes are the
//! JSON and the rest the raw little-endian tensors of the inputs that carry
//! `parameters.binary_data_size`, in input order. Outputs asked for with
//! `parameters.binary_data: true` (or all outputs, with the request parameter
//! `binary_data_output: true`) are answered the same way: `application/octet-stream`, the JSON
//! first (its length in the `inference-header-content-length` response header), each such
//! output with `parameters.binary_data_size` and no `data`, then the bytes (FP32 as 4-byte LE
//! floats, BYTES as a 4-byte LE length before each element).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::FlatData;
use crate::{argmax, require, to_json, truncate, ApiError, Request, Response, Server};

pub(crate) const INPUT_NAME: &str = "input";
pub(crate) const OUT_PROBS: &str = "probabilities";
pub(crate) const OUT_LABEL: &str = "label";

pub(crate) fn route(srv: &mut Server, req: &Request, segs: &[&str]) -> Result<Response, ApiError> {
    match segs {
        [] | [""] => {
            require(req.method, "GET")?;
            Ok(to_json(
                200,
                &serde_json::json!({
                    "name": "mdeploy",
                    "version": env!("CARGO_PKG_VERSION"),
                    "extensions": ["binary_tensor_data", "model_repository"],
                    // Not in the spec (extra fields are allowed): which CPU kernels this build runs.
                    "kernel": mdeploy_core::kernels::KernelSet::best().name(),
                }),
            ))
        }
        ["health", "live"] => {
            require(req.method, "GET")?;
            Ok(to_json(200, &serde_json::json!({ "live": true })))
        }
        ["health", "ready"] => {
            require(req.method, "GET")?;
            let ready = srv.all_ready();
            Ok(to_json(if ready { 200 } else { 503 }, &serde_json::json!({ "ready": ready })))
        }
        ["repository", "index"] => {
            require(req.method, "POST")?;
            repository_index(srv, req.body)
        }
        ["models", name, rest @ ..] => {
            let (version, rest) = match rest {
                ["versions", v, rest @ ..] => (Some(*v), rest),
                _ => (None, rest),
            };
            let action = match rest {
                [] => "metadata",
                ["ready"] => "ready",
                ["infer"] => "infer",
                _ => return Err(no_route(req)),
            };
            require(req.method, if action == "infer" { "POST" } else { "GET" })?;
            let i = srv.find(name, version)?;
            match action {
                "metadata" => metadata(srv, i),
                "ready" => {
                    let ready = srv.ready(i);
                    let name = srv.entry(i).name.clone();
                    Ok(to_json(if ready { 200 } else { 503 }, &serde_json::json!({ "name": name, "ready": ready })))
                }
                _ => infer(srv, i, req),
            }
        }
        _ => Err(no_route(req)),
    }
}

/// The body of `POST /v2/repository/index`: empty (every model) or `{"ready": bool}`. `Ok(true)`
/// asks for the ready models only; `Err` is the message of a 400 `BAD_INPUT`. Shared with the
/// native server (`serve/server`), which answers the same route over its own repository.
pub fn index_request_ready(body: &[u8]) -> Result<bool, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct IndexRequest {
        #[serde(default)]
        ready: bool,
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(false);
    }
    serde_json::from_slice::<IndexRequest>(body)
        .map(|r| r.ready)
        .map_err(|e| format!("the repository index request must be empty or {{\"ready\": true|false}}: {e}"))
}

/// Triton's model repository extension, read-only: `POST /v2/repository/index` with an empty body
/// or `{"ready": bool}` lists every served model (`{"ready": true}`: only the ready ones) as
/// `[{name, version, state, reason?}]`, state `READY` or `UNAVAILABLE` with the reason it does not
/// load (a model a host added at run time names its file or binding). Readiness is decided as
/// for `/v2/models/{m}/ready` (untrusted models are loaded to know). Loading and unloading
/// (`/v2/repository/models/{m}/load`) are not offered: the set of models is the host's.
fn repository_index(srv: &mut Server, body: &[u8]) -> Result<Response, ApiError> {
    let only_ready = index_request_ready(body).map_err(ApiError::bad)?;
    let mut out = Vec::new();
    for i in 0..srv.model_count() {
        let ready = srv.ready(i);
        if only_ready && !ready {
            continue;
        }
        let (name, version) = (srv.entry(i).name.clone(), srv.entry(i).version.clone());
        let mut m = serde_json::json!({ "name": name, "version": version, "state": if ready { "READY" } else { "UNAVAILABLE" } });
        if !ready {
            if let Err(e) = srv.load(i) {
                m["reason"] = Value::String(e.message);
            }
        }
        out.push(m);
    }
    Ok(to_json(200, &out))
}

fn no_route(req: &Request) -> ApiError {
    ApiError::not_found(format!(
        "no KServe v2 route for {} {}; see GET /openapi.yaml",
        req.method,
        truncate(req.path, 200)
    ))
}

#[derive(Serialize)]
struct TensorMeta {
    name: &'static str,
    datatype: &'static str,
    shape: Vec<i64>,
}

fn metadata(srv: &mut Server, i: usize) -> Result<Response, ApiError> {
    #[derive(Serialize)]
    struct Meta<'a> {
        name: &'a str,
        versions: Vec<&'a str>,
        platform: &'static str,
        inputs: Vec<TensorMeta>,
        outputs: Vec<TensorMeta>,
    }
    let m = srv.load(i)?;
    let input: Vec<i64> = std::iter::once(-1).chain(m.input_shape().iter().map(|&d| d as i64)).collect();
    let out_len = m.output_len() as i64;
    let inputs = vec![TensorMeta { name: INPUT_NAME, datatype: "FP32", shape: input }];
    let outputs = vec![
        TensorMeta { name: OUT_PROBS, datatype: "FP32", shape: vec![-1, out_len] },
        TensorMeta { name: OUT_LABEL, datatype: "BYTES", shape: vec![-1] },
    ];
    let name = srv.entry(i).name.as_str();
    let versions: Vec<&str> = srv.models().filter(|(n, _)| *n == name).map(|(_, v)| v).collect();
    Ok(to_json(200, &Meta { name, versions, platform: "mdeploy", inputs, outputs }))
}

#[derive(Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Option<serde_json::Map<String, Value>>,
    inputs: Vec<InputTensor>,
    #[serde(default)]
    outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Deserialize)]
struct InputTensor {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    data: Option<FlatData>,
}

#[derive(Deserialize)]
struct RequestedOutput {
    name: String,
    #[serde(default)]
    parameters: Option<serde_json::Map<String, Value>>,
}

#[derive(Serialize)]
struct InferResponse<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    outputs: Vec<OutTensor>,
}

#[derive(Serialize)]
struct OutTensor {
    name: &'static str,
    datatype: &'static str,
    shape: Vec<usize>,
    /// `{"binary_data_size": n}` when the data follows the JSON instead of being in `data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryParams>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<OutData>,
}

#[derive(Serialize)]
struct BinaryParams {
    binary_data_size: usize,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutData {
    F32(Vec<f32>),
    Text(Vec<String>),
}

fn empty_body() -> ApiError {
    ApiError::bad("the request body is empty; send a JSON inference request (see GET /openapi.yaml)")
}

pub(crate) fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(empty_body());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("the request body is not a valid inference request: {e}")))
}

/// How many samples a tensor of `shape` holds for a model taking `per_sample` values each:
/// `[n, ...sample dims]` (any dims whose product is `per_sample`) or one unbatched sample.
pub(crate) fn batch_of(shape: &[i64], per_sample: usize, model_shape: &[usize]) -> Result<usize, ApiError> {
    let expected = || {
        let dims: Vec<String> = model_shape.iter().map(|d| d.to_string()).collect();
        format!("[n, {}] (or [n, {per_sample}])", dims.join(", "))
    };
    let mut dims = Vec::with_capacity(shape.len());
    for &d in shape {
        match usize::try_from(d) {
            Ok(d) if d > 0 => dims.push(d),
            _ => {
                return Err(ApiError::bad(format!(
                    "shape {shape:?} has a dimension {d}; every dimension must be a positive integer, e.g. {}",
                    expected()
                )))
            }
        }
    }
    let total = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let rest = dims.iter().skip(1).try_fold(1usize, |a, &d| a.checked_mul(d));
    match (dims.first(), total, rest) {
        (Some(&n), Some(_), Some(r)) if r == per_sample => Ok(n),
        (Some(_), Some(t), _) if t == per_sample => Ok(1),
        _ => Err(ApiError::bad(format!(
            "shape {shape:?} does not fit this model: it takes {per_sample} values per sample, shape {}",
            expected()
        ))),
    }
}

/// The request header that splits a body into its JSON and the binary tensors after it.
const HEADER_LEN: &str = "inference-header-content-length";

/// The JSON part of the body and the binary tensor bytes after it (empty without the header).
fn split_body<'a>(req: &Request<'a>) -> Result<(&'a [u8], Option<&'a [u8]>), ApiError> {
    let Some(v) = req.header(HEADER_LEN) else { return Ok((req.body, None)) };
    let Ok(n) = v.trim().parse::<usize>() else {
        return Err(ApiError::bad(format!(
            "the Inference-Header-Content-Length header '{}' is not a byte count; it must give the length \
             of the JSON part of the body as a decimal number",
            truncate(v, 50)
        )));
    };
    match (req.body.get(..n), req.body.get(n..)) {
        (Some(json), Some(rest)) => Ok((json, Some(rest))),
        _ => Err(ApiError::bad(format!(
            "the Inference-Header-Content-Length header says the JSON part is {n} bytes, but the whole body \
             has only {}; it must be at most the body length",
            req.body.len()
        ))),
    }
}

/// `parameters[key]` as a bool: `None` if absent, 400 if it is not `true`/`false`.
fn bool_param(params: Option<&serde_json::Map<String, Value>>, key: &str, whose: &str) -> Result<Option<bool>, ApiError> {
    match params.and_then(|p| p.get(key)) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::bad(format!("parameter '{key}' of {whose} must be true or false"))),
    }
}

/// Input `input`'s values from its binary part: exactly `want` elements of `datatype`,
/// consumed from the front of `rest`.
fn decode_binary(input: &InputTensor, size: &Value, rest: &mut &[u8], want: usize) -> Result<Vec<f32>, ApiError> {
    let name = truncate(&input.name, 100);
    let elem = match input.datatype.as_str() {
        "FP32" => 4,
        "UINT8" => 1,
        other => {
            return Err(ApiError::bad(format!(
                "datatype '{}' of input '{name}' is not supported; use FP32 (values 0..1, ink = 1) or UINT8 \
                 (0..255, 0 = background)",
                truncate(other, 50)
            )))
        }
    };
    let Some(size) = size.as_u64().and_then(|s| usize::try_from(s).ok()) else {
        return Err(ApiError::bad(format!(
            "parameters.binary_data_size of input '{name}' must be a non-negative integer (bytes)"
        )));
    };
    // Checked before anything is allocated: `want` comes from the validated shape, and the
    // bytes must already be in the (bounded) body.
    let expected = want.saturating_mul(elem);
    if size != expected {
        return Err(ApiError::bad(format!(
            "input '{name}' has binary_data_size {size}, but shape {:?} of {} needs {want} × {elem} = {expected} bytes",
            input.shape, input.datatype
        )));
    }
    if size > rest.len() {
        return Err(ApiError::bad(format!(
            "input '{name}' has binary_data_size {size}, but only {} bytes follow the JSON \
             (Inference-Header-Content-Length) for it",
            rest.len()
        )));
    }
    let (bytes, tail) = rest.split_at(size);
    *rest = tail;
    if elem == 1 {
        return Ok(bytes.iter().map(|&b| f32::from(b) / 255.0).collect());
    }
    let mut out = Vec::with_capacity(want);
    for (k, c) in bytes.chunks_exact(4).enumerate() {
        let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        if !v.is_finite() {
            return Err(ApiError::bad(format!("value {k} of input '{name}' (binary) is not a finite 32-bit float")));
        }
        out.push(v);
    }
    Ok(out)
}

/// Any infer body through serde (every error message of a bad body comes from here).
fn parse_infer_request(json: &[u8], has_binary: bool) -> Result<InferRequest, ApiError> {
    // Parsed as a prefix first: binary tensors sent without the header follow the JSON, and the
    // useful answer then is "the header is missing", not "trailing characters".
    let mut de = serde_json::Deserializer::from_slice(json);
    let req = InferRequest::deserialize(&mut de)
        .map_err(|e| ApiError::bad(format!("the request body is not a valid inference request: {e}")))?;
    if !has_binary {
        if let Some(inp) = req.inputs.iter().find(|i| i.parameters.as_ref().is_some_and(|p| p.contains_key("binary_data_size"))) {
            return Err(ApiError::bad(format!(
                "input '{}' has parameters.binary_data_size, but the Inference-Header-Content-Length header is \
                 missing; binary tensors need it to give the length of the JSON part of the body",
                truncate(&inp.name, 100)
            )));
        }
    }
    de.end().map_err(|e| ApiError::bad(format!("the request body is not a valid inference request: {e}")))?;
    Ok(req)
}

fn infer(srv: &mut Server, i: usize, http: &Request) -> Result<Response, ApiError> {
    let (json, binary) = split_body(http)?;
    if json.is_empty() {
        return Err(empty_body());
    }
    let mut req = match crate::fast_infer::parse(json) {
        // The common JSON body, read in one pass (fast_infer.rs); it has no `parameters`, so
        // the binary checks below have nothing to say about it.
        Some((id, inputs)) => InferRequest {
            id,
            parameters: None,
            inputs: inputs
                .into_iter()
                .map(|t| InputTensor { name: t.name, shape: t.shape, datatype: t.datatype, parameters: None, data: t.data })
                .collect(),
            outputs: None,
        },
        None => parse_infer_request(json, binary.is_some())?,
    };
    // Other parameters (sequence_id, priority, timeout, ...) are hints this server ignores.
    let all_binary = bool_param(req.parameters.as_ref(), "binary_data_output", "the request")?.unwrap_or(false);
    let n_inputs = req.inputs.len();
    let [input] = req.inputs.as_mut_slice() else {
        return Err(ApiError::bad(format!(
            "this model takes exactly one input tensor named '{INPUT_NAME}', but the request has {n_inputs}"
        )));
    };
    if input.name != INPUT_NAME {
        return Err(ApiError::bad(format!(
            "unknown input '{}'; this model's input is named '{INPUT_NAME}'",
            truncate(&input.name, 100)
        )));
    }
    let binary_size = input.parameters.as_ref().and_then(|p| p.get("binary_data_size"));
    let wanted: Vec<(&'static str, bool)> = match &req.outputs {
        None => vec![(OUT_PROBS, all_binary), (OUT_LABEL, all_binary)],
        Some(list) => {
            let mut v = Vec::new();
            for o in list {
                let name = match o.name.as_str() {
                    OUT_PROBS => OUT_PROBS,
                    OUT_LABEL => OUT_LABEL,
                    other => {
                        return Err(ApiError::bad(format!(
                            "unknown output '{}'; this model's outputs are '{OUT_PROBS}' and '{OUT_LABEL}'",
                            truncate(other, 100)
                        )))
                    }
                };
                let whose = format!("output '{name}'");
                v.push((name, bool_param(o.parameters.as_ref(), "binary_data", &whose)?.unwrap_or(all_binary)));
            }
            v
        }
    };
    let m = srv.load(i)?;
    let per = m.input_len();
    let n = batch_of(&input.shape, per, m.input_shape())?;
    let want = n.saturating_mul(per);
    let values = match (binary_size, input.data.as_mut(), binary) {
        (Some(_), Some(_), _) => {
            return Err(ApiError::bad(
                "input 'input' has both \"data\" and parameters.binary_data_size; send its values one way only",
            ))
        }
        (Some(size), None, rest) => {
            // `rest` is `Some` here: without the header, binary_data_size was refused above.
            let mut rest = rest.unwrap_or_default();
            let values = decode_binary(input, size, &mut rest, want)?;
            if !rest.is_empty() {
                return Err(ApiError::bad(format!(
                    "{} bytes follow the binary data of the inputs; the binary_data_size of the inputs must add \
                     up to the body length minus Inference-Header-Content-Length",
                    rest.len()
                )));
            }
            values
        }
        (None, Some(data), rest) => {
            if let Some(rest) = rest.filter(|r| !r.is_empty()) {
                return Err(ApiError::bad(format!(
                    "{} bytes follow the JSON (Inference-Header-Content-Length), but no input has \
                     parameters.binary_data_size to claim them",
                    rest.len()
                )));
            }
            decode(&input.datatype, data, want, &input.shape)?
        }
        (None, None, _) => {
            return Err(ApiError::bad(
                "input 'input' has no \"data\"; put the values there, flat or nested (or send them as binary \
                 with parameters.binary_data_size and the Inference-Header-Content-Length header)",
            ))
        }
    };
    let probs = m.run(&values, n)?;
    // Freed before the response is built, so its buffers reuse this block: under `wasmtime
    // serve` each heap page a request writes first is a page fault (worker/README.md, issue 15).
    drop(values);
    let ol = m.output_len();
    let labels: Vec<String> = probs.chunks(ol.max(1)).map(|row| m.label(argmax(row))).collect();
    let mut outputs = Vec::new();
    // The binary outputs' bytes, in output order, to follow the JSON.
    let mut tail = Vec::new();
    let any_binary = wanted.iter().any(|&(_, b)| b);
    for (name, as_binary) in wanted {
        // A copy per output (n × 10 floats at most): an output listed twice gets its data twice.
        let (datatype, shape, data) = if name == OUT_PROBS {
            ("FP32", vec![n, ol], OutData::F32(probs.clone()))
        } else {
            ("BYTES", vec![n], OutData::Text(labels.clone()))
        };
        if as_binary {
            let start = tail.len();
            match &data {
                OutData::F32(v) => v.iter().for_each(|x| tail.extend_from_slice(&x.to_le_bytes())),
                OutData::Text(v) => {
                    for s in v {
                        // Labels are short strings from the model file; u32 always holds them.
                        tail.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
                        tail.extend_from_slice(s.as_bytes());
                    }
                }
            }
            let size = tail.len() - start;
            outputs.push(OutTensor { name, datatype, shape, parameters: Some(BinaryParams { binary_data_size: size }), data: None });
        } else {
            outputs.push(OutTensor { name, datatype, shape, parameters: None, data: Some(data) });
        }
    }
    let e = srv.entry(i);
    let mut r = to_json(200, &InferResponse { model_name: &e.name, model_version: &e.version, id: req.id, outputs });
    if r.status == 200 && any_binary {
        r.headers.push((HEADER_LEN, r.body.len().to_string()));
        // Browsers hide response headers from scripts unless they are listed.
        r.headers.push(("access-control-expose-headers", HEADER_LEN.to_string()));
        r.content_type = "application/octet-stream";
        r.body.extend_from_slice(&tail);
    }
    Ok(r)
}

/// The model's f32 input from a tensor of `datatype`: `FP32` as is (finite), `UINT8` (0..=255,
/// 0 = background) scaled to 0..1 like the training data.
/// FP32 values are moved out of `data` (not copied): the request is done with them.
pub(crate) fn decode(datatype: &str, data: &mut FlatData, want: usize, shape: &[i64]) -> Result<Vec<f32>, ApiError> {
    if data.values.len() != want {
        return Err(ApiError::bad(format!(
            "shape {shape:?} needs {want} values but \"data\" has {}",
            data.values.len()
        )));
    }
    match datatype {
        "FP32" => {
            if let Some(k) = data.first_non_finite {
                return Err(ApiError::bad(format!("value {k} of \"data\" is not a finite 32-bit float")));
            }
            Ok(std::mem::take(&mut data.values))
        }
        "UINT8" => {
            if !data.all_u8 {
                return Err(ApiError::bad("datatype UINT8 needs integers from 0 to 255 in \"data\""));
            }
            Ok(data.values.iter().map(|&v| v / 255.0).collect())
        }
        other => Err(ApiError::bad(format!(
            "datatype '{}' is not supported; use FP32 (values 0..1, ink = 1) or UINT8 (0..255, 0 = background)",
            truncate(other, 50)
        ))),
    }
}

/// The one-pass reader (`fast_infer.rs`) against the serde path it stands in for: whenever it
/// accepts a body, serde accepts it too and yields the same request, bit for bit.
#[cfg(test)]
mod fast_infer_tests {
    use super::*;
    use proptest::prelude::*;

    /// `Some(true)` the fast reader took the body (and agreed with serde), `Some(false)` it gave
    /// it to serde; panics on a disagreement.
    fn agree(json: &[u8]) -> bool {
        let Some((id, inputs)) = crate::fast_infer::parse(json) else { return false };
        let slow = match parse_infer_request(json, false) {
            Ok(r) => r,
            Err(e) => panic!("fast reader took a body serde refuses ({}): {}", e.message, String::from_utf8_lossy(json)),
        };
        assert_eq!(id, slow.id);
        assert!(slow.parameters.is_none() && slow.outputs.is_none());
        assert_eq!(inputs.len(), slow.inputs.len());
        for (f, s) in inputs.iter().zip(&slow.inputs) {
            assert_eq!((&f.name, &f.shape, &f.datatype), (&s.name, &s.shape, &s.datatype));
            assert!(s.parameters.is_none());
            match (&f.data, &s.data) {
                (None, None) => {}
                (Some(a), Some(b)) => {
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&a.values), bits(&b.values), "{}", String::from_utf8_lossy(json));
                    assert_eq!((a.all_u8, a.first_non_finite), (b.all_u8, b.first_non_finite));
                }
                _ => panic!("data present in one reader only: {}", String::from_utf8_lossy(json)),
            }
        }
        true
    }

    fn body(data: &str) -> String {
        format!(r#"{{"inputs":[{{"name":"input","shape":[1,1,28,28],"datatype":"FP32","data":{data}}}]}}"#)
    }

    #[test]
    fn real_digits_as_clients_write_them_take_the_fast_path() {
        let t = &mdeploy_testkit::mnist::split().test;
        for i in (0..t.n).step_by(97) {
            let img: Vec<f32> = t.image(i).to_vec();
            // serde_json (Rust clients, our tests) writes f32 shortest; JS and Python write the f64.
            let as_f32 = serde_json::to_string(&img).unwrap();
            let as_f64 = serde_json::to_string(&img.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()).unwrap();
            let thirds = serde_json::to_string(&img.iter().map(|&v| f64::from(v) / 3.0).collect::<Vec<_>>()).unwrap();
            let u8s = serde_json::to_string(&img.iter().map(|&v| (v * 255.0).round() as u8).collect::<Vec<_>>()).unwrap();
            for d in [as_f32, as_f64, thirds, u8s] {
                assert!(agree(body(&d).as_bytes()), "fell back on a plain body");
            }
        }
        // Nested, spaced, keys reordered, an id: still the fast path.
        let nested = r#" { "id" : "a-1", "inputs" : [ { "data" : [[ [0, 0.5], [1e-3, 2.5E+1] ]], "datatype":"UINT8", "shape":[ 1 , 4 ], "name":"input" } ] } "#;
        assert!(agree(nested.as_bytes()));
        assert!(agree(body("[ 0 , 0.5 ,\n1 ]").as_bytes()), "spaces between numbers");
    }

    #[test]
    fn unusual_bodies_go_to_serde() {
        for b in [
            body("[1, 2,]"),
            body("[01]"),
            body("[1.]"),
            body("[.5]"),
            body("[-]"),
            body("[1e]"),
            body("[1e400]"),
            body("[1e23]"),
            body("[1e-23]"),
            body("[123456789012345678901234]"),
            body("[null]"),
            body("[\"1\"]"),
            body("[1]") + " x",
            body("[1]") + "\u{0}",
            r#"{"inputs":[{"name":"in\"put","shape":[1],"datatype":"FP32","data":[1]}]}"#.into(),
            r#"{"inputs":[{"name":"inpüt","shape":[1],"datatype":"FP32","data":[1]}]}"#.into(),
            r#"{"inputs":[{"name":"input","shape":[-1],"datatype":"FP32","data":[1]}]}"#.into(),
            r#"{"inputs":[{"name":"input","shape":[1.0],"datatype":"FP32","data":[1]}]}"#.into(),
            r#"{"inputs":[{"name":"input","name":"input","shape":[1],"datatype":"FP32","data":[1]}]}"#.into(),
            r#"{"inputs":[{"name":"input","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#.into(),
            r#"{"inputs":[],"outputs":[{"name":"label"}]}"#.into(),
            r#"{"id":null,"inputs":[]}"#.into(),
            r#"{"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]}"#.into(),
            r#"{"id":"x"}"#.into(),
            format!("{}{}{}", body(&"[".repeat(40)), "1", "]".repeat(40)),
        ] {
            assert!(!agree(b.as_bytes()), "fast path took {b}");
        }
    }

    /// One number as clients and fuzzers write them.
    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<f32>().prop_map(|v| format!("{v}")),
            any::<f32>().prop_map(|v| format!("{v:e}")),
            any::<f64>().prop_map(|v| format!("{v}")),
            any::<f64>().prop_map(|v| format!("{v:E}")),
            (0.0f64..1.0).prop_map(|v| format!("{v}")),
            any::<i64>().prop_map(|v| v.to_string()),
            any::<u64>().prop_map(|v| v.to_string()),
            (any::<u64>(), -30i32..30).prop_map(|(s, e)| format!("{s}e{e}")),
            (0u64..1000, 0u32..25, -25i32..25).prop_map(|(s, z, e)| format!("-{s}.{}5e{e}", "0".repeat(z as usize))),
            "-?[0-9]{0,3}\\.?[0-9]{0,22}([eE][+-]?[0-9]{0,3})?",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn fast_reader_agrees_with_serde(nums in proptest::collection::vec(number(), 0..12), nest in 0usize..3, ws in "[ \t\r\n]{0,2}") {
            let mut d = format!("[{ws}{}{ws}]", nums.join(&format!("{ws},")));
            for _ in 0..nest { d = format!("[{d}]"); }
            agree(body(&d).as_bytes());
        }

        #[test]
        fn mutated_bodies_never_disagree(flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..4), cut in 0usize..400) {
            let mut b = body("[0, 0.5, 1, 0.25098039215686274, 1e-7, -0, 255]").into_bytes();
            for (at, byte) in flips { let k = at % b.len(); b[k] = byte; }
            b.truncate(cut.max(1).min(b.len()));
            agree(&b);
        }
    }
}
