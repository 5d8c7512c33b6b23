//! Reading a user's picture of a digit: PNG (any colour type and bit depth) or PGM (P2/P5).
//! The bytes are untrusted: sizes are bounded before decoding and every error says what the
//! file is and how to fix it.

use mdeploy_core::preprocess::{self, Polarity, MAX_PIXELS};

/// Decoded image as luminance in 0..1, plus an ink map when the image had transparency.
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub luma: Vec<f32>,
    pub alpha: Option<Vec<f32>>,
}

impl Picture {
    /// Run the shared MNIST preprocessing (crop, fit 20×20, centre by mass).
    pub fn to_mnist(&self) -> Result<Vec<f32>, String> {
        let r = match &self.alpha {
            Some(alpha) => preprocess::from_ink(self.width, self.height, alpha),
            None => preprocess::from_luma(self.width, self.height, &self.luma, Polarity::Auto),
        };
        r.map_err(|e| e.message)
    }
}

pub fn load(path: &str, bytes: &[u8]) -> Result<Picture, String> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        load_png(bytes).map_err(|e| format!("{path}: {e}"))
    } else if bytes.starts_with(b"P5") || bytes.starts_with(b"P2") {
        load_pgm(bytes).map_err(|e| format!("{path}: {e}"))
    } else {
        Err(format!(
            "{path}: not a PNG or PGM image (unrecognised first bytes); convert it, e.g. `convert in.jpg out.png`"
        ))
    }
}

fn load_png(bytes: &[u8]) -> Result<Picture, String> {
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(bytes),
        // RGBA16 of the largest accepted image; the header is checked against MAX_PIXELS below.
        png::Limits { bytes: MAX_PIXELS * 8 },
    );
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| format!("bad PNG: {e}"))?;
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    if w.saturating_mul(h) > MAX_PIXELS {
        return Err(format!("PNG is {w}×{h}, more than {MAX_PIXELS} pixels: scale it down first"));
    }
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(|e| format!("bad PNG data: {e}"))?;
    let buf = &buf[..info.buffer_size()];
    let channels = info.color_type.samples();
    if buf.len() != w * h * channels {
        return Err(format!("PNG decoded to {} bytes, expected {}", buf.len(), w * h * channels));
    }
    let px = |c: u8| c as f32 / 255.0;
    let mut luma = Vec::with_capacity(w * h);
    let mut alpha = Vec::with_capacity(w * h);
    for p in buf.chunks_exact(channels) {
        let (l, a) = match channels {
            1 => (px(p[0]), 1.0),
            2 => (px(p[0]), px(p[1])),
            3 => (0.299 * px(p[0]) + 0.587 * px(p[1]) + 0.114 * px(p[2]), 1.0),
            _ => (0.299 * px(p[0]) + 0.587 * px(p[1]) + 0.114 * px(p[2]), px(p[3])),
        };
        luma.push(l);
        alpha.push(a);
    }
    // Transparency means "drawn on a clear canvas": alpha is the ink, whatever the stroke colour.
    let transparent = alpha.iter().any(|&a| a < 1.0);
    Ok(Picture { width: w, height: h, luma, alpha: transparent.then_some(alpha) })
}

/// Netpbm greymap: `P5` (binary) or `P2` (ASCII), maxval up to 65535, `#` comments.
fn load_pgm(bytes: &[u8]) -> Result<Picture, String> {
    let binary = bytes.starts_with(b"P5");
    let mut pos = 2;
    let next_number = |pos: &mut usize| -> Result<usize, String> {
        loop {
            while *pos < bytes.len() && bytes[*pos].is_ascii_whitespace() {
                *pos += 1;
            }
            if *pos < bytes.len() && bytes[*pos] == b'#' {
                while *pos < bytes.len() && bytes[*pos] != b'\n' {
                    *pos += 1;
                }
                continue;
            }
            break;
        }
        let start = *pos;
        while *pos < bytes.len() && bytes[*pos].is_ascii_digit() {
            *pos += 1;
        }
        std::str::from_utf8(&bytes[start..*pos])
            .ok()
            .filter(|s| !s.is_empty() && s.len() <= 9)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad PGM header: expected a number at byte {start}"))
    };
    let w = next_number(&mut pos)?;
    let h = next_number(&mut pos)?;
    let maxval = next_number(&mut pos)?;
    if w == 0 || h == 0 || w.saturating_mul(h) > MAX_PIXELS {
        return Err(format!("PGM is {w}×{h}: it must have 1 to {MAX_PIXELS} pixels"));
    }
    if maxval == 0 || maxval > 65535 {
        return Err(format!("PGM maxval {maxval} must be 1..=65535"));
    }
    let n = w * h;
    let mut luma = Vec::with_capacity(n);
    if binary {
        pos += 1; // the single whitespace byte after maxval
        let bpp = if maxval > 255 { 2 } else { 1 };
        let data = bytes.get(pos..).unwrap_or(&[]);
        if data.len() < n * bpp {
            return Err(format!("PGM is truncated: {w}×{h} needs {} bytes of pixels, found {}", n * bpp, data.len()));
        }
        for i in 0..n {
            let v = if bpp == 1 { data[i] as usize } else { (data[2 * i] as usize) << 8 | data[2 * i + 1] as usize };
            luma.push(v.min(maxval) as f32 / maxval as f32);
        }
    } else {
        for _ in 0..n {
            let v = next_number(&mut pos).map_err(|_| format!("PGM (ASCII) has fewer than {n} pixel values"))?;
            luma.push(v.min(maxval) as f32 / maxval as f32);
        }
    }
    Ok(Picture { width: w, height: h, luma, alpha: None })
}
