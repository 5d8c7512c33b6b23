//! KServe v2 gRPC (`inference.GRPCInferenceService`), as a translation onto the REST routes.
//!
//! Every RPC becomes the KServe v2 REST request that means the same thing and goes through
//! [`Call::run`], the path REST takes, so both protocols share one implementation, one set of
//! checks and one set of metrics. `ModelInfer` uses Triton's binary tensor extension: each input
//! is handed over as raw little-endian bytes (`raw_input_contents` as they are; typed `contents`
//! FP32 and UINT8 packed into the same bytes), and every output is asked for in binary, which
//! maps one to one onto `raw_output_contents`. The REST route checks sizes against shapes and
//! answers bit for bit what its JSON path answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::pb::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use crate::pb::{self, model_infer_request, model_infer_response, model_metadata_response};
use crate::auth::{Denied, Scope};
use crate::repo::valid_name;
use crate::{clip, Call, Shared, DEADLINE_STATUS};

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let svc = GrpcInferenceServiceServer::new(Grpc { shared })
        // The REST body limit, so both protocols take the same largest request.
        .max_decoding_message_size(mdeploy_serve::MAX_BODY_BYTES)
        .max_encoding_message_size(64 * 1024 * 1024);
    let router = tonic::transport::Server::builder().add_service(svc);
    let mut stop = stopped.clone();
    let shutdown = async move {
        let _ = stop.changed().await;
    };
    let Some(tls) = tls else {
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let _ = router.serve_with_incoming_shutdown(incoming, shutdown).await;
        return;
    };
    // TLS (`tls.rs`): each connection is handshaken in a task of its own and handed to tonic
    // through a channel once it speaks TLS; anything else (h2c to a TLS port) is dropped.
    let (tx, rx) = tokio::sync::mpsc::channel::<crate::tls::GrpcTls>(64);
    let accept = async move {
        loop {
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
                },
                _ = stopped.changed() => return,
            };
            let _ = stream.set_nodelay(true);
            let (tls, tx) = (tls.clone(), tx.clone());
            tokio::spawn(async move {
                if let crate::tls::Opening::Tls = crate::tls::opening(&stream).await {
                    if let Ok(Ok(s)) = tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        let _ = tx.send(crate::tls::GrpcTls(s)).await;
                    }
                }
            });
        }
    };
    let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
    let incoming = tokio_stream::StreamExt::map(incoming, Ok::<_, std::io::Error>);
    tokio::join!(accept, async {
        let _ = router.serve_with_incoming_shutdown(incoming, shutdown).await;
    });
}

struct Grpc {
    shared: Arc<Shared>,
}

/// gRPC's `grpc-timeout` header (`<digits><unit>`, unit one of H M S m u n), as a deadline.
fn deadline_of<T>(req: &Request<T>, arrival: Instant) -> Option<Instant> {
    let v = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    let d = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    arrival.checked_add(d)
}

fn status_of(r: &mdeploy_serve::Response) -> Status {
    let msg = serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| format!("HTTP status {}", r.status));
    match r.status {
        400 | 415 => Status::invalid_argument(msg),
        404 => Status::not_found(msg),
        405 => Status::unimplemented(msg),
        413 | 429 => Status::resource_exhausted(msg),
        503 => Status::unavailable(msg),
        DEADLINE_STATUS => Status::deadline_exceeded(msg),
        _ => Status::internal(msg),
    }
}

/// The REST path of a model route; names and versions must be plain (no `/`), or NOT_FOUND.
fn model_path(name: &str, version: &str, tail: &str) -> Result<String, Status> {
    if !valid_name(name) {
        return Err(Status::not_found(format!("unknown model '{}'", clip(name))));
    }
    if version.is_empty() {
        return Ok(format!("/v2/models/{name}{tail}"));
    }
    if !valid_name(version) {
        return Err(Status::not_found(format!("model '{name}' has no version or label '{}'", clip(version))));
    }
    Ok(format!("/v2/models/{name}/versions/{version}{tail}"))
}

impl Grpc {
    /// The API-key check of an RPC (ServerLive and ServerReady stay open).
    fn allow<T>(&self, req: &Request<T>, model: Option<&str>) -> Result<(), Status> {
        let Some(keys) = &self.shared.keys else { return Ok(()) };
        let authz = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
        keys.check(authz, Scope::Infer, model).map_err(|d| match d {
            Denied::Unauthenticated(m) => Status::unauthenticated(m),
            Denied::Forbidden(m) => Status::permission_denied(m),
        })
    }

    /// Runs one REST request; the task is detached from the RPC, so a client that goes away or
    /// tonic's own timeout does not stop its metrics from being recorded.
    async fn rest(&self, method: &str, path: String, headers: Vec<(String, String)>, body: Vec<u8>, arrival: Instant, deadline: Option<Instant>) -> mdeploy_serve::Response {
        let call = Call {
            method: method.to_string(),
            path,
            content_type: Some("application/json".to_string()),
            headers,
            body,
            arrival,
            deadline,
        };
        let shared = self.shared.clone();
        match tokio::spawn(async move { call.run(&shared).await }).await {
            Ok(r) => r,
            Err(e) => crate::json_error(500, "INTERNAL", &format!("the request's task stopped: {e}")),
        }
    }

    async fn get_json(&self, path: String) -> Result<(u16, Value), Status> {
        let r = self.rest("GET", path, Vec::new(), Vec::new(), Instant::now(), None).await;
        if r.status != 200 && r.status != 503 {
            return Err(status_of(&r));
        }
        let v = serde_json::from_slice(&r.body).map_err(|e| Status::internal(format!("unreadable answer: {e}")))?;
        Ok((r.status, v))
    }
}

fn str_of(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn tensors_of(v: &Value, k: &str) -> Vec<model_metadata_response::TensorMetadata> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|t| model_metadata_response::TensorMetadata {
                    name: str_of(t, "name"),
                    datatype: str_of(t, "datatype"),
                    shape: t.get("shape").and_then(Value::as_array).map(|s| s.iter().filter_map(Value::as_i64).collect()).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Typed `contents` as the raw bytes the binary extension takes.
fn pack_contents(t: &model_infer_request::InferInputTensor) -> Result<Vec<u8>, Status> {
    let c = t.contents.as_ref().ok_or_else(|| {
        Status::invalid_argument(format!(
            "input '{}' has neither `contents` nor an entry in `raw_input_contents`; send one of them",
            clip(&t.name)
        ))
    })?;
    // Typed contents are counted in values, so a count that does not fill the shape is said in
    // values (the REST check after packing would speak of bytes the client never sent). Shapes
    // with a zero, negative or overflowing product are left to that check, which names them.
    let count = match t.datatype.as_str() {
        "FP32" => Some(c.fp32_contents.len()),
        "UINT8" => Some(c.uint_contents.len()),
        _ => None,
    };
    let want = t.shape.iter().try_fold(1usize, |n, &d| usize::try_from(d).ok().and_then(|d| n.checked_mul(d)));
    if let (Some(count), Some(want)) = (count, want.filter(|&w| w > 0)) {
        if count != want {
            return Err(Status::invalid_argument(format!(
                "input '{}': shape {:?} needs {want} values but `contents` has {count}; send one value per element",
                clip(&t.name),
                t.shape
            )));
        }
    }
    match t.datatype.as_str() {
        "FP32" => Ok(c.fp32_contents.iter().flat_map(|x| x.to_le_bytes()).collect()),
        "UINT8" => c
            .uint_contents
            .iter()
            .map(|&x| {
                u8::try_from(x).map_err(|_| {
                    Status::invalid_argument(format!("input '{}': UINT8 value {x} is out of range 0..255", clip(&t.name)))
                })
            })
            .collect(),
        other => Err(Status::invalid_argument(format!(
            "input '{}' has datatype '{}'; this server takes FP32 (0..1, ink = 1) or UINT8 (0..255)",
            clip(&t.name),
            clip(other)
        ))),
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Grpc {
    async fn server_live(&self, _: Request<pb::ServerLiveRequest>) -> Result<Response<pb::ServerLiveResponse>, Status> {
        let (_, v) = self.get_json("/v2/health/live".into()).await?;
        Ok(Response::new(pb::ServerLiveResponse { live: v.get("live").and_then(Value::as_bool).unwrap_or(false) }))
    }

    async fn server_ready(&self, _: Request<pb::ServerReadyRequest>) -> Result<Response<pb::ServerReadyResponse>, Status> {
        let (_, v) = self.get_json("/v2/health/ready".into()).await?;
        Ok(Response::new(pb::ServerReadyResponse { ready: v.get("ready").and_then(Value::as_bool).unwrap_or(false) }))
    }

    async fn model_ready(&self, req: Request<pb::ModelReadyRequest>) -> Result<Response<pb::ModelReadyResponse>, Status> {
        self.allow(&req, Some(&req.get_ref().name))?;
        let r = req.into_inner();
        let (_, v) = self.get_json(model_path(&r.name, &r.version, "/ready")?).await?;
        Ok(Response::new(pb::ModelReadyResponse { ready: v.get("ready").and_then(Value::as_bool).unwrap_or(false) }))
    }

    async fn server_metadata(&self, req: Request<pb::ServerMetadataRequest>) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        self.allow(&req, None)?;
        let (_, v) = self.get_json("/v2".into()).await?;
        let extensions = v
            .get("extensions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        Ok(Response::new(pb::ServerMetadataResponse { name: str_of(&v, "name"), version: str_of(&v, "version"), extensions }))
    }

    async fn model_metadata(&self, req: Request<pb::ModelMetadataRequest>) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        self.allow(&req, Some(&req.get_ref().name))?;
        let r = req.into_inner();
        let (_, v) = self.get_json(model_path(&r.name, &r.version, "")?).await?;
        Ok(Response::new(pb::ModelMetadataResponse {
            name: str_of(&v, "name"),
            versions: v
                .get("versions")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            platform: str_of(&v, "platform"),
            inputs: tensors_of(&v, "inputs"),
            outputs: tensors_of(&v, "outputs"),
        }))
    }

    async fn model_infer(&self, req: Request<pb::ModelInferRequest>) -> Result<Response<pb::ModelInferResponse>, Status> {
        let arrival = Instant::now();
        self.allow(&req, Some(&req.get_ref().model_name))?;
        let deadline = deadline_of(&req, arrival);
        let r = req.into_inner();
        let path = model_path(&r.model_name, &r.model_version, "/infer")?;
        if !r.raw_input_contents.is_empty() && r.raw_input_contents.len() != r.inputs.len() {
            return Err(Status::invalid_argument(format!(
                "raw_input_contents has {} entries for {} inputs; send one per input, in input order",
                r.raw_input_contents.len(),
                r.inputs.len()
            )));
        }
        let mut raw: Vec<Vec<u8>> = Vec::with_capacity(r.inputs.len());
        for (i, t) in r.inputs.iter().enumerate() {
            match r.raw_input_contents.get(i) {
                Some(bytes) => {
                    if t.contents.is_some() {
                        return Err(Status::invalid_argument(format!(
                            "input '{}' has both `contents` and raw_input_contents; send one",
                            clip(&t.name)
                        )));
                    }
                    raw.push(bytes.clone());
                }
                None => raw.push(pack_contents(t)?),
            }
        }
        let inputs: Vec<Value> = r
            .inputs
            .iter()
            .zip(&raw)
            .map(|(t, b)| json!({ "name": t.name, "shape": t.shape, "datatype": t.datatype, "parameters": { "binary_data_size": b.len() } }))
            .collect();
        let mut head = json!({ "inputs": inputs });
        if !r.id.is_empty() {
            head["id"] = Value::String(r.id.clone());
        }
        if r.outputs.is_empty() {
            head["parameters"] = json!({ "binary_data_output": true });
        } else {
            head["outputs"] =
                Value::Array(r.outputs.iter().map(|o| json!({ "name": o.name, "parameters": { "binary_data": true } })).collect());
        }
        let mut body = serde_json::to_vec(&head).map_err(|e| Status::internal(e.to_string()))?;
        let json_len = body.len();
        for b in &raw {
            body.extend_from_slice(b);
        }
        let headers = vec![("inference-header-content-length".to_string(), json_len.to_string())];
        let resp = self.rest("POST", path, headers, body, arrival, deadline).await;
        if resp.status != 200 {
            return Err(status_of(&resp));
        }
        infer_response(&resp).map(Response::new)
    }
}

/// The REST route's binary answer (JSON, then each output's bytes) as a `ModelInferResponse`.
fn infer_response(r: &mdeploy_serve::Response) -> Result<pb::ModelInferResponse, Status> {
    let bad = |what: &str| Status::internal(format!("the inference answer was not as expected: {what}"));
    let n = r
        .headers
        .iter()
        .find(|(k, _)| *k == "inference-header-content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(r.body.len());
    let (head, mut rest) = r.body.split_at_checked(n).ok_or_else(|| bad("header length past the body"))?;
    let v: Value = serde_json::from_slice(head).map_err(|e| bad(&e.to_string()))?;
    let mut out = pb::ModelInferResponse {
        model_name: str_of(&v, "model_name"),
        model_version: str_of(&v, "model_version"),
        id: str_of(&v, "id"),
        ..Default::default()
    };
    for t in v.get("outputs").and_then(Value::as_array).ok_or_else(|| bad("no outputs"))? {
        let size = t.pointer("/parameters/binary_data_size").and_then(Value::as_u64).ok_or_else(|| bad("an output is not binary"))?;
        let (bytes, tail) = rest.split_at_checked(size as usize).ok_or_else(|| bad("output bytes missing"))?;
        rest = tail;
        out.outputs.push(model_infer_response::InferOutputTensor {
            name: str_of(t, "name"),
            datatype: str_of(t, "datatype"),
            shape: t.get("shape").and_then(Value::as_array).map(|s| s.iter().filter_map(Value::as_i64).collect()).unwrap_or_default(),
            ..Default::default()
        });
        out.raw_output_contents.push(bytes.to_vec());
    }
    Ok(out)
}
