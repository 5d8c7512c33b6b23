//! A picture file of a digit (PNG of any colour type and bit depth, or PGM P2/P5) to the
//! 28×28 input, through [`crate::preprocess`]. The one decoder the CLI (`mdeploy predict`) and
//! the HTTP API (`POST /predict`) share, so a file gives the same prediction in both.
//!
//! The bytes are untrusted: the header's size is checked against the caller's pixel limit
//! before any pixel buffer is allocated, the PNG decoder runs with a byte limit, and every error
//! says what the file is and how to fix it. The PNG decoding itself is the `png` crate's.

use crate::error::{Error, Result};
use crate::preprocess::{self, Polarity};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A decoded picture: luminance in 0..1, plus an ink map when the image had transparency
/// (drawn on a clear canvas: alpha is the ink, whatever the stroke colour).
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub luma: Vec<f32>,
    pub alpha: Option<Vec<f32>>,
}

impl Picture {
    /// The MNIST preprocessing (crop, fit 20×20, centre by mass): alpha as ink when there is
    /// transparency, else luminance with automatic polarity.
    pub fn to_mnist(&self) -> Result<Vec<f32>> {
        match &self.alpha {
            Some(alpha) => preprocess::from_ink(self.width, self.height, alpha),
            None => preprocess::from_luma(self.width, self.height, &self.luma, Polarity::Auto),
        }
    }
}

/// Does `bytes` start like a file [`decode`] reads?
pub fn is_picture(bytes: &[u8]) -> bool {
    bytes.starts_with(PNG_MAGIC) || bytes.starts_with(b"P5") || bytes.starts_with(b"P2")
}

/// PNG or PGM bytes to a [`Picture`] of at most `max_pixels` pixels (also capped at
/// [`preprocess::MAX_PIXELS`]).
pub fn decode(bytes: &[u8], max_pixels: usize) -> Result<Picture> {
    let max_pixels = max_pixels.min(preprocess::MAX_PIXELS);
    if bytes.starts_with(PNG_MAGIC) {
        decode_png(bytes, max_pixels).map_err(|e| Error::bad_input(format!("bad PNG: {e}")))
    } else if bytes.starts_with(b"P5") || bytes.starts_with(b"P2") {
        decode_pgm(bytes, max_pixels).map_err(|e| Error::bad_input(format!("bad PGM: {e}")))
    } else {
        Err(Error::bad_input(
            "not a PNG or PGM image (unrecognised first bytes); convert it, e.g. `convert in.jpg out.png`",
        ))
    }
}

/// [`decode`] then [`Picture::to_mnist`]: a picture file to the model's 784 inputs.
pub fn decode_digit(bytes: &[u8], max_pixels: usize) -> Result<Vec<f32>> {
    decode(bytes, max_pixels)?.to_mnist()
}

fn too_big(what: &str, w: usize, h: usize, max: usize) -> String {
    format!("the {what} is {w}×{h}, more than {max} pixels: scale it down first")
}

fn decode_png(bytes: &[u8], max_pixels: usize) -> Result<Picture, String> {
    // RGBA16 of the largest accepted image; the header is checked against max_pixels below.
    let limits = png::Limits { bytes: max_pixels.saturating_mul(8) };
    let mut decoder = png::Decoder::new_with_limits(std::io::Cursor::new(bytes), limits);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    if w.saturating_mul(h) > max_pixels {
        return Err(too_big("image", w, h, max_pixels));
    }
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(|e| format!("bad pixel data: {e}"))?;
    let buf = buf.get(..info.buffer_size()).ok_or("the frame is shorter than its header says")?;
    let channels = info.color_type.samples();
    if channels == 0 || buf.len() != w * h * channels {
        return Err(format!("decoded to {} bytes, expected {}", buf.len(), w * h * channels));
    }
    let px = |c: u8| c as f32 / 255.0;
    let grey = |r: u8, g: u8, b: u8| 0.299 * px(r) + 0.587 * px(g) + 0.114 * px(b);
    let mut luma = Vec::with_capacity(w * h);
    let mut alpha = Vec::with_capacity(w * h);
    for p in buf.chunks_exact(channels) {
        let (l, a) = match *p {
            [g] => (px(g), 1.0),
            [g, a] => (px(g), px(a)),
            [r, g, b] => (grey(r, g, b), 1.0),
            [r, g, b, a, ..] => (grey(r, g, b), px(a)),
            [] => (0.0, 1.0),
        };
        luma.push(l);
        alpha.push(a);
    }
    let transparent = alpha.iter().any(|&a| a < 1.0);
    Ok(Picture { width: w, height: h, luma, alpha: transparent.then_some(alpha) })
}

/// Netpbm greymap: `P5` (binary) or `P2` (ASCII), maxval up to 65535, `#` comments.
fn decode_pgm(bytes: &[u8], max_pixels: usize) -> Result<Picture, String> {
    let binary = bytes.starts_with(b"P5");
    let mut pos = 2;
    let next_number = |pos: &mut usize| -> Result<usize, String> {
        loop {
            while bytes.get(*pos).is_some_and(|b| b.is_ascii_whitespace()) {
                *pos += 1;
            }
            if bytes.get(*pos) == Some(&b'#') {
                while bytes.get(*pos).is_some_and(|&b| b != b'\n') {
                    *pos += 1;
                }
                continue;
            }
            break;
        }
        let start = *pos;
        while bytes.get(*pos).is_some_and(|b| b.is_ascii_digit()) {
            *pos += 1;
        }
        std::str::from_utf8(&bytes[start..*pos])
            .ok()
            .filter(|s| !s.is_empty() && s.len() <= 9)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("expected a number at byte {start} of the header"))
    };
    let w = next_number(&mut pos)?;
    let h = next_number(&mut pos)?;
    let maxval = next_number(&mut pos)?;
    if w == 0 || h == 0 {
        return Err(format!("the image is {w}×{h}: it has no pixels"));
    }
    if w.saturating_mul(h) > max_pixels {
        return Err(too_big("image", w, h, max_pixels));
    }
    if maxval == 0 || maxval > 65535 {
        return Err(format!("maxval {maxval} must be 1..=65535"));
    }
    let n = w * h;
    let mut luma = Vec::with_capacity(n);
    if binary {
        pos += 1; // the single whitespace byte after maxval
        let bpp = if maxval > 255 { 2 } else { 1 };
        let data = bytes.get(pos..).unwrap_or(&[]);
        if data.len() < n * bpp {
            return Err(format!("truncated: {w}×{h} needs {} bytes of pixels, found {}", n * bpp, data.len()));
        }
        for i in 0..n {
            let v = if bpp == 1 { data[i] as usize } else { (data[2 * i] as usize) << 8 | data[2 * i + 1] as usize };
            luma.push(v.min(maxval) as f32 / maxval as f32);
        }
    } else {
        for _ in 0..n {
            let v = next_number(&mut pos).map_err(|_| format!("(ASCII) has fewer than {n} pixel values"))?;
            luma.push(v.min(maxval) as f32 / maxval as f32);
        }
    }
    Ok(Picture { width: w, height: h, luma, alpha: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pgm(w: usize, h: usize, px: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        let mut b = format!("P5\n# a comment\n{w} {h}\n255\n").into_bytes();
        for y in 0..h {
            for x in 0..w {
                b.push(px(x, y));
            }
        }
        b
    }

    #[test]
    fn binary_and_ascii_pgm_decode_to_the_same_digit() {
        // A dark vertical stroke on white: polarity Auto makes it ink.
        let stroke = |x: usize, _y: usize| if (12..16).contains(&x) { 0 } else { 255 };
        let p5 = pgm(28, 28, stroke);
        let mut p2 = String::from("P2 28 28 255\n");
        for y in 0..28 {
            for x in 0..28 {
                p2.push_str(&format!("{} ", stroke(x, y)));
            }
        }
        let a = decode_digit(&p5, 1 << 20).unwrap();
        let b = decode_digit(p2.as_bytes(), 1 << 20).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 784);
        // Ink ends up high, background low.
        assert!(a[14 * 28 + 14] > 0.5 && a[0] == 0.0, "{} {}", a[14 * 28 + 14], a[0]);
    }

    #[test]
    fn untrusted_headers_give_errors_that_name_the_problem() {
        let cases: &[(&[u8], &str)] = &[
            (b"GIF89a", "not a PNG or PGM"),
            (b"P5\n99999 99999\n255\n", "scale it down"),
            (b"P5\n0 3\n255\n", "no pixels"),
            (b"P5\n2 2\n70000\n", "maxval"),
            (b"P5\n4 4\n255\n\x00\x01", "truncated"),
            (b"P2\n2 2\n255\n1 2 3", "fewer than 4"),
            (b"P5\nx", "expected a number"),
            (b"\x89PNG\r\n\x1a\n\x00\x00", "bad PNG"),
        ];
        for (bytes, want) in cases {
            let e = decode(bytes, 1 << 20).unwrap_err();
            assert!(e.message.contains(want), "{:?}: {}", String::from_utf8_lossy(bytes), e.message);
        }
        // The caller's limit applies, not only the global one.
        let e = decode(&pgm(40, 40, |_, _| 0), 1000).unwrap_err();
        assert!(e.message.contains("more than 1000 pixels"), "{}", e.message);
    }
}
