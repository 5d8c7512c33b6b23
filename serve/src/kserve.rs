//! KServe v2 / Open Inference Protocol, REST flavour (`/v2/...`).
//!
//! Shapes follow the spec: server metadata `{name, version, extensions}`, model metadata
//! `{name, versions, platform, inputs, outputs}` (batch dimension `-1`), inference request
//! `{id?, parameters?, inputs: [{name, shape, datatype, data}], outputs?: [{name}]}`, response
//! `{model_name, model_version, id?, outputs: [{name, datatype, shape, data}]}`, errors
//! `{"error": "..."}`. Tensors travel as JSON only (the Triton binary-tensor extension is not
//! supported: it needs a header the pure [`Request`] does not carry).

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
                    "extensions": [],
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
                _ => infer(srv, i, req.body),
            }
        }
        _ => Err(no_route(req)),
    }
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
    let input: Vec<i64> = std::iter::once(-1).chain(m.input_shape.iter().map(|&d| d as i64)).collect();
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
    data: OutData,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutData {
    F32(Vec<f32>),
    Text(Vec<String>),
}

pub(crate) fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad("the request body is empty; send a JSON inference request (see GET /openapi.yaml)"));
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

fn infer(srv: &mut Server, i: usize, body: &[u8]) -> Result<Response, ApiError> {
    let req: InferRequest = parse_json(body)?;
    // Parameters are optional hints. `binary_data_output` (Triton's binary extension, which
    // tritonclient sets by default) is honoured by answering JSON, which clients accept.
    let _ = &req.parameters;
    let [input] = req.inputs.as_slice() else {
        return Err(ApiError::bad(format!(
            "this model takes exactly one input tensor named '{INPUT_NAME}', but the request has {}",
            req.inputs.len()
        )));
    };
    if input.name != INPUT_NAME {
        return Err(ApiError::bad(format!(
            "unknown input '{}'; this model's input is named '{INPUT_NAME}'",
            truncate(&input.name, 100)
        )));
    }
    if input.parameters.as_ref().is_some_and(|p| p.contains_key("binary_data_size")) {
        return Err(ApiError::bad(
            "binary tensor data (Triton's binary extension) is not supported; send the data as JSON \
             (tritonclient: set_data_from_numpy(arr, binary_data=False))",
        ));
    }
    let Some(data) = &input.data else {
        return Err(ApiError::bad("input 'input' has no \"data\"; put the values there, flat or nested"));
    };
    let wanted: Vec<&'static str> = match &req.outputs {
        None => vec![OUT_PROBS, OUT_LABEL],
        Some(list) => {
            let mut v = Vec::new();
            for o in list {
                match o.name.as_str() {
                    OUT_PROBS => v.push(OUT_PROBS),
                    OUT_LABEL => v.push(OUT_LABEL),
                    other => {
                        return Err(ApiError::bad(format!(
                            "unknown output '{}'; this model's outputs are '{OUT_PROBS}' and '{OUT_LABEL}'",
                            truncate(other, 100)
                        )))
                    }
                }
            }
            v
        }
    };
    let m = srv.load(i)?;
    let per = m.input_len();
    let n = batch_of(&input.shape, per, &m.input_shape)?;
    let values = decode(&input.datatype, data, n.saturating_mul(per), &input.shape)?;
    let probs = m.run(&values, n)?;
    let ol = m.output_len();
    let labels: Vec<String> = probs.chunks(ol.max(1)).map(|row| m.label(argmax(row))).collect();
    let mut outputs = Vec::new();
    let mut probs = Some(probs);
    let mut labels = Some(labels);
    for name in wanted {
        if name == OUT_PROBS {
            let data = probs.take().unwrap_or_default();
            outputs.push(OutTensor { name, datatype: "FP32", shape: vec![n, ol], data: OutData::F32(data) });
        } else {
            let data = labels.take().unwrap_or_default();
            outputs.push(OutTensor { name, datatype: "BYTES", shape: vec![n], data: OutData::Text(data) });
        }
    }
    let e = srv.entry(i);
    Ok(to_json(200, &InferResponse { model_name: &e.name, model_version: &e.version, id: req.id, outputs }))
}

/// The model's f32 input from a tensor of `datatype`: `FP32` as is (finite), `UINT8` (0..=255,
/// 0 = background) scaled to 0..1 like the training data.
pub(crate) fn decode(datatype: &str, data: &FlatData, want: usize, shape: &[i64]) -> Result<Vec<f32>, ApiError> {
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
            Ok(data.values.clone())
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
