//! `POST /predict`: a PNG of one digit (any size, either polarity, or drawn on a transparent
//! canvas) or exactly 784 raw bytes (a 28×28 uint8 grey image, 0 = background), through the
//! shared MNIST preprocessing (`mdeploy_core::preprocess`), answered `{label, probs, model}`.

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
        decode_png(body)?
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

/// PNG bytes → 784 floats, the way `mdeploy predict` reads a picture: luminance with automatic
/// polarity, or alpha as the ink when the image has transparency.
fn decode_png(bytes: &[u8]) -> Result<Vec<f32>, ApiError> {
    let bad = |e: String| ApiError::bad(format!("bad PNG: {e}"));
    let mut decoder =
        png::Decoder::new_with_limits(std::io::Cursor::new(bytes), png::Limits { bytes: MAX_PNG_PIXELS * 8 });
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| bad(e.to_string()))?;
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    if w.saturating_mul(h) > MAX_PNG_PIXELS {
        return Err(bad(format!("the image is {w}×{h}, more than {MAX_PNG_PIXELS} pixels: scale it down first")));
    }
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(|e| bad(e.to_string()))?;
    let buf = buf.get(..info.buffer_size()).ok_or_else(|| bad("short frame".into()))?;
    let channels = info.color_type.samples();
    if channels == 0 || buf.len() != w * h * channels {
        return Err(bad(format!("decoded to {} bytes, expected {}", buf.len(), w * h * channels)));
    }
    let px = |c: u8| c as f32 / 255.0;
    let mut luma = Vec::with_capacity(w * h);
    let mut alpha = Vec::with_capacity(w * h);
    for p in buf.chunks_exact(channels) {
        let (l, a) = match p {
            [g] => (px(*g), 1.0),
            [g, a] => (px(*g), px(*a)),
            [r, g, b] => (0.299 * px(*r) + 0.587 * px(*g) + 0.114 * px(*b), 1.0),
            [r, g, b, a, ..] => (0.299 * px(*r) + 0.587 * px(*g) + 0.114 * px(*b), px(*a)),
            [] => (0.0, 1.0),
        };
        luma.push(l);
        alpha.push(a);
    }
    let r = if alpha.iter().any(|&a| a < 1.0) {
        preprocess::from_ink(w, h, &alpha)
    } else {
        preprocess::from_luma(w, h, &luma, Polarity::Auto)
    };
    r.map_err(ApiError::from_core)
}
