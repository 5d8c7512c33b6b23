//! TensorFlow Serving REST API (`/v1/models/...`): status, metadata and `:predict` in both the
//! row (`instances` → `predictions`) and the columnar (`inputs` → `outputs`) format.
//! Values are plain JSON numbers (0..1, ink = 1), as a TF model with a float input takes them.

use serde::{Deserialize, Serialize};

use crate::data::{FlatData, Named};
use crate::kserve::{parse_json, INPUT_NAME, OUT_LABEL, OUT_PROBS};
use crate::{argmax, require, to_json, truncate, ApiError, Request, Response, Server};

pub(crate) fn route(srv: &mut Server, req: &Request, segs: &[&str]) -> Result<Response, ApiError> {
    let ["models", rest @ ..] = segs else { return Err(no_route(req)) };
    // `:predict` is glued to the last segment: `/v1/models/m:predict`, `/v1/models/m/versions/1:predict`.
    let (rest, verb) = match rest.split_last() {
        Some((last, head)) => match last.split_once(':') {
            Some((seg, verb)) => {
                let mut v: Vec<&str> = head.to_vec();
                v.push(seg);
                (v, Some(verb))
            }
            None => (rest.to_vec(), None),
        },
        None => return Err(no_route(req)),
    };
    let (name, version, tail) = match rest.as_slice() {
        [name, "versions", v, tail @ ..] => (*name, Some(*v), tail.to_vec()),
        // TF Serving's version labels; `Server::find` resolves a label like a version.
        [name, "labels", l, tail @ ..] => (*name, Some(*l), tail.to_vec()),
        [name, tail @ ..] => (*name, None, tail.to_vec()),
        [] => return Err(no_route(req)),
    };
    match (verb, tail.as_slice()) {
        (Some("predict"), []) => {
            require(req.method, "POST")?;
            let i = srv.find(name, version)?;
            predict(srv, i, req.body)
        }
        (Some(other), []) => Err(ApiError::not_found(format!(
            "':{}' is not offered; this server implements ':predict' only",
            truncate(other, 50)
        ))),
        (None, []) => {
            require(req.method, "GET")?;
            let i = srv.find(name, version)?;
            status(srv, i)
        }
        (None, ["metadata"]) => {
            require(req.method, "GET")?;
            let i = srv.find(name, version)?;
            metadata(srv, i)
        }
        _ => Err(no_route(req)),
    }
}

fn no_route(req: &Request) -> ApiError {
    ApiError::not_found(format!(
        "no TensorFlow Serving route for {} {}; see GET /openapi.yaml",
        req.method,
        truncate(req.path, 200)
    ))
}

fn status(srv: &mut Server, i: usize) -> Result<Response, ApiError> {
    let version = srv.entry(i).version.clone();
    let (state, code, msg) = match srv.load(i) {
        Ok(_) => ("AVAILABLE", "OK", String::new()),
        Err(e) => ("END", "UNKNOWN", e.message),
    };
    Ok(to_json(
        200,
        &serde_json::json!({
            "model_version_status": [{
                "version": version,
                "state": state,
                "status": { "error_code": code, "error_message": msg },
            }]
        }),
    ))
}

fn metadata(srv: &mut Server, i: usize) -> Result<Response, ApiError> {
    let m = srv.load(i)?;
    let dims = |shape: &[i64]| -> Vec<serde_json::Value> {
        shape.iter().map(|d| serde_json::json!({ "size": d.to_string(), "name": "" })).collect()
    };
    let input: Vec<i64> = std::iter::once(-1).chain(m.input_shape().iter().map(|&d| d as i64)).collect();
    let out = m.output_len() as i64;
    let e = srv.entry(i);
    Ok(to_json(
        200,
        &serde_json::json!({
            "model_spec": { "name": e.name, "signature_name": "", "version": e.version },
            "metadata": { "signature_def": { "signature_def": { "serving_default": {
                "inputs": { INPUT_NAME: {
                    "dtype": "DT_FLOAT", "name": "input:0",
                    "tensor_shape": { "dim": dims(&input), "unknown_rank": false } } },
                "outputs": {
                    OUT_PROBS: { "dtype": "DT_FLOAT", "name": "probabilities:0",
                        "tensor_shape": { "dim": dims(&[-1, out]), "unknown_rank": false } },
                    OUT_LABEL: { "dtype": "DT_STRING", "name": "label:0",
                        "tensor_shape": { "dim": dims(&[-1]), "unknown_rank": false } } },
                "method_name": "tensorflow/serving/predict"
            } } } }
        }),
    ))
}

#[derive(Deserialize)]
struct PredictRequest {
    #[serde(default)]
    signature_name: Option<String>,
    #[serde(default)]
    instances: Option<Vec<Named>>,
    #[serde(default)]
    inputs: Option<Named>,
}

#[derive(Serialize)]
struct Row {
    probabilities: Vec<f32>,
    label: String,
}

/// The one tensor of a [`Named`] value: bare, or under the key `input`.
fn the_input(v: Named, what: &str) -> Result<FlatData, ApiError> {
    match v {
        Named::Tensor(t) => Ok(t),
        Named::Map(entries) => {
            let mut found = None;
            for (k, t) in entries {
                if k != INPUT_NAME {
                    return Err(ApiError::bad(format!(
                        "{what} has a tensor named '{}'; this model's only input is '{INPUT_NAME}'",
                        truncate(&k, 100)
                    )));
                }
                found = Some(t);
            }
            found.ok_or_else(|| ApiError::bad(format!("{what} is an empty object; give it an '{INPUT_NAME}' tensor")))
        }
    }
}

fn check(t: &FlatData, what: &str) -> Result<(), ApiError> {
    match t.first_non_finite {
        Some(k) => Err(ApiError::bad(format!("{what}: value {k} is not a finite 32-bit float"))),
        None => Ok(()),
    }
}

fn predict(srv: &mut Server, i: usize, body: &[u8]) -> Result<Response, ApiError> {
    let req: PredictRequest = match crate::fast_infer::parse_tf(body) {
        // The common body read in one pass (fast_infer.rs); anything else through serde.
        Some((signature_name, instances, inputs)) => PredictRequest {
            signature_name,
            instances: instances.map(|v| v.into_iter().map(Named::Tensor).collect()),
            inputs: inputs.map(Named::Tensor),
        },
        None => parse_json(body)?,
    };
    if let Some(s) = &req.signature_name {
        if !s.is_empty() && s != "serving_default" {
            return Err(ApiError::bad(format!(
                "unknown signature_name '{}'; this model has 'serving_default' only",
                truncate(s, 100)
            )));
        }
    }
    let m = srv.load(i)?;
    let per = m.input_len();
    let (row_format, values, n) = match (req.instances, req.inputs) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad("give either \"instances\" (row format) or \"inputs\" (columnar), not both"))
        }
        (None, None) => {
            return Err(ApiError::bad(
                "the request needs \"instances\" (a list of samples) or \"inputs\" (a batch tensor)",
            ))
        }
        (Some(instances), None) => {
            if instances.is_empty() {
                return Err(ApiError::bad("\"instances\" is empty; send at least one sample"));
            }
            let n = instances.len();
            let mut values = Vec::with_capacity(n.saturating_mul(per));
            for (k, inst) in instances.into_iter().enumerate() {
                let what = format!("instance {k}");
                let t = the_input(inst, &what)?;
                check(&t, &what)?;
                if t.values.len() != per {
                    return Err(ApiError::bad(format!(
                        "{what} has {} values; each instance must hold {per} (shape {:?}, flat or nested)",
                        t.values.len(),
                        m.input_shape()
                    )));
                }
                values.extend_from_slice(&t.values);
            }
            (true, values, n)
        }
        (None, Some(inputs)) => {
            let t = the_input(inputs, "\"inputs\"")?;
            check(&t, "\"inputs\"")?;
            if t.values.is_empty() || t.values.len() % per != 0 {
                return Err(ApiError::bad(format!(
                    "\"inputs\" has {} values; it must hold n × {per} (a batch of shape [n, {}])",
                    t.values.len(),
                    m.input_shape().iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                )));
            }
            let n = t.values.len() / per;
            (false, t.values, n)
        }
    };
    let probs = m.run(&values, n)?;
    let ol = m.output_len().max(1);
    let rows: Vec<Row> =
        probs.chunks(ol).map(|r| Row { probabilities: r.to_vec(), label: m.label(argmax(r)) }).collect();
    if row_format {
        #[derive(Serialize)]
        struct Out {
            predictions: Vec<Row>,
        }
        Ok(to_json(200, &Out { predictions: rows }))
    } else {
        #[derive(Serialize)]
        struct Cols {
            probabilities: Vec<Vec<f32>>,
            label: Vec<String>,
        }
        #[derive(Serialize)]
        struct Out {
            outputs: Cols,
        }
        let (probabilities, label) = rows.into_iter().map(|r| (r.probabilities, r.label)).unzip();
        Ok(to_json(200, &Out { outputs: Cols { probabilities, label } }))
    }
}

/// The one-pass reader of TF Serving bodies against serde: same request whenever it takes one.
#[cfg(test)]
mod fast_tf_tests {
    use super::*;
    use proptest::prelude::*;

    fn bits(t: &FlatData) -> (Vec<u32>, bool, Option<usize>) {
        (t.values.iter().map(|v| v.to_bits()).collect(), t.all_u8, t.first_non_finite)
    }

    fn tensor(n: Named) -> FlatData {
        match n {
            Named::Tensor(t) => t,
            Named::Map(_) => panic!("serde read a map where the fast reader read a tensor"),
        }
    }

    /// Whether the fast reader took `body`; panics if it and serde disagree.
    fn agree(body: &[u8]) -> bool {
        let Some((sig, instances, inputs)) = crate::fast_infer::parse_tf(body) else { return false };
        let slow: PredictRequest = parse_json(body).unwrap_or_else(|e| panic!("serde refuses what the fast reader took: {}", e.message));
        assert_eq!(sig, slow.signature_name);
        let slow_inst = slow.instances.map(|v| v.into_iter().map(|n| bits(&tensor(n))).collect::<Vec<_>>());
        assert_eq!(instances.map(|v| v.iter().map(bits).collect::<Vec<_>>()), slow_inst);
        assert_eq!(inputs.as_ref().map(bits), slow.inputs.map(|n| bits(&tensor(n))));
        true
    }

    #[test]
    fn common_bodies_take_the_fast_path_and_agree() {
        let t = &mdeploy_testkit::mnist::split().test;
        let a = serde_json::to_string(&t.image(0).iter().map(|&v| f64::from(v)).collect::<Vec<_>>()).unwrap();
        let b = serde_json::to_string(&t.image(1)).unwrap();
        for body in [
            format!(r#"{{"instances": [{a}, {b}]}}"#),
            format!(r#"{{"signature_name": "serving_default", "inputs": [{a}, {b}]}}"#),
            r#"{"instances": [[[0.5, 1], [2e-3, 255]], 7]}"#.into(),
            r#"{"instances": []}"#.into(),
        ] {
            assert!(agree(body.as_bytes()), "fell back on {body}");
        }
        for body in [r#"{"instances": [{"input": [1]}]}"#, r#"{"inputs": {"input": [1]}}"#, r#"{"instances": [1],}"#, "", "{}x"] {
            assert!(!agree(body.as_bytes()), "took {body}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]
        #[test]
        fn mutated_bodies_never_disagree(flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..4), cut in 0usize..200) {
            let mut b = br#"{"signature_name":"serving_default","instances":[[0, 0.5, 1e-7, -0], [255, 0.25098039215686274]]}"#.to_vec();
            for (at, byte) in flips { let k = at % b.len(); b[k] = byte; }
            b.truncate(cut.max(1).min(b.len()));
            agree(&b);
        }
    }
}
