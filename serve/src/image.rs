//! `POST /predict`: a PNG of one digit (any size, either polarity, or drawn on a transparent
//! canvas) or exactly 784 raw bytes (a 28×28 uint8 grey image, 0 = background), through the
//! shared MNIST preprocessing (`mdeploy_core::preprocess`), answered `{label, probs, model}`.

use mdeploy_core::image;
use mdeploy_core::preprocess::{self, Polarity};
use serde::Serialize;

use crate::{argmax, to_json, truncate, ApiError, Request, Response, Server};

/// The model `/predict` uses without `?model=`.
pub const DEFAULT_MODEL: &str = "mnist-cnn";
/// Largest PNG accepted, in pixels (2048×2048): a digit needs far less, and the bound keeps the
/// decoded buffers (RGBA + luminance + alpha, ~48 MB) in check.
const MAX_PNG_PIXELS: usize = 1 << 22;
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

pub(crate) fn predict(srv: &mut Server, req: &Request, query: &str) -> Result<Response, ApiError> {
    let mut model = DEFAULT_MODEL;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("model", v)) => model = v,
            _ => {
                return Err(ApiError::bad(format!(
                    "unknown query parameter '{}'; /predict takes only ?model=NAME",
                    truncate(pair, 100)
                )))
            }
        }
    }
    let body = req.body;
    if body.is_empty() {
        return Err(ApiError::bad(
            "the request body is empty; send a PNG image or exactly 784 raw bytes (28×28 grey, 0 = background)",
        ));
    }
    let i = srv.find(model, None)?;
    let input = if body.starts_with(PNG_MAGIC) {
        // The decoder `mdeploy predict` uses too: the same file, the same prediction.
        image::decode_digit(body, MAX_PNG_PIXELS).map_err(ApiError::from_core)?
    } else if body.len() == preprocess::SIDE * preprocess::SIDE {
        preprocess::from_gray8(preprocess::SIDE, preprocess::SIDE, body, Polarity::InkHigh)
            .map_err(ApiError::from_core)?
    } else {
        return Err(ApiError::new(
            415,
            "UNSUPPORTED_MEDIA",
            format!(
                "the body ({} bytes) is neither a PNG nor exactly 784 raw bytes (28×28 uint8 grey, 0 = background)",
                body.len()
            ),
        ));
    };
    let m = srv.load(i)?;
    if m.input_len() != input.len() {
        return Err(ApiError::bad(format!(
            "model '{model}' takes inputs of shape {:?}, but images become 28×28 digits; use an MNIST model",
            m.input_shape()
        )));
    }
    let probs = m.run(&input, 1)?;
    #[derive(Serialize)]
    struct Out<'a> {
        label: String,
        class: usize,
        probs: Vec<f32>,
        model: &'a str,
        version: &'a str,
    }
    let class = argmax(&probs);
    let label = m.label(class);
    let e = srv.entry(i);
    Ok(to_json(200, &Out { label, class, probs, model: &e.name, version: &e.version }))
}
