//! The MNIST recipe: turn any picture of one digit into the 28×28 input the models expect.
//!
//! MNIST digits were made by (LeCun et al.): cropping to the ink, scaling to fit a 20×20 box
//! with the aspect ratio kept and anti-aliasing, then placing that box in a 28×28 field so the
//! centre of mass of the ink sits at the centre. A hand-drawn digit that skips these steps is
//! off-distribution (too thin, off-centre, too small) and the models misread it, so every host
//! (CLI, JS, the HTTP function) runs this same code.
//!
//! Input is luminance or RGBA at any size. Output: 784 floats, ink = 1.0, background = 0.0.
//!
//! Polarity: MNIST is light ink on a dark background. We look at the image border (where a
//! single centred digit leaves background): a light border means dark ink on light paper, so
//! the image is inverted. RGBA with transparency (a canvas drawn on a clear background) uses
//! alpha as the ink.

use crate::error::{Error, Result};

pub const SIDE: usize = 28;
pub const BOX: usize = 20;
/// Largest image accepted: 2^24 pixels (e.g. 4096×4096). Bigger images are almost surely not a
/// single digit and would cost memory for nothing.
pub const MAX_PIXELS: usize = 1 << 24;
/// Ink below this (after normalisation to 0..1) counts as background when cropping.
const INK_THRESHOLD: f32 = 0.1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    /// Decide from the border: a light border means dark ink on light paper.
    Auto,
    /// Already light ink on dark (MNIST's own convention).
    InkHigh,
    /// Dark ink on light paper: invert.
    InkLow,
}

fn check_dims(width: usize, height: usize, len: usize, channels: usize) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::bad_input(format!("image is {width}×{height}: it needs at least one pixel")));
    }
    let pixels = width.checked_mul(height).filter(|&p| p <= MAX_PIXELS).ok_or_else(|| {
        Error::bad_input(format!(
            "image is {width}×{height}, more than the {MAX_PIXELS}-pixel limit: scale it down first"
        ))
    })?;
    if pixels * channels != len {
        return Err(Error::bad_input(format!(
            "image is {width}×{height} with {channels} channel(s), which needs {} values, but {len} were given",
            pixels * channels
        )));
    }
    Ok(())
}

/// Luminance (0..1) of any size → 784 MNIST-style floats.
pub fn from_luma(width: usize, height: usize, luma: &[f32], polarity: Polarity) -> Result<Vec<f32>> {
    check_dims(width, height, luma.len(), 1)?;
    if let Some(i) = luma.iter().position(|v| !v.is_finite()) {
        return Err(Error::bad_input(format!("pixel {i} is {} (NaN or infinite)", luma[i])));
    }
    let invert = match polarity {
        Polarity::InkHigh => false,
        Polarity::InkLow => true,
        Polarity::Auto => border_mean(width, height, luma) > 0.5,
    };
    let ink: Vec<f32> =
        luma.iter().map(|&v| if invert { 1.0 - v } else { v }.clamp(0.0, 1.0)).collect();
    from_ink(width, height, &ink)
}

/// 8-bit grey pixels (0..255) of any size → 784 MNIST-style floats.
pub fn from_gray8(width: usize, height: usize, gray: &[u8], polarity: Polarity) -> Result<Vec<f32>> {
    check_dims(width, height, gray.len(), 1)?;
    let luma: Vec<f32> = gray.iter().map(|&g| g as f32 / 255.0).collect();
    from_luma(width, height, &luma, polarity)
}

/// RGBA 8-bit (e.g. a canvas `ImageData`) of any size → 784 MNIST-style floats.
/// Fully opaque images use luminance with automatic polarity; images with transparency use
/// alpha × contrast against the background as ink.
pub fn from_rgba8(width: usize, height: usize, rgba: &[u8]) -> Result<Vec<f32>> {
    check_dims(width, height, rgba.len(), 4)?;
    let opaque = rgba.chunks_exact(4).all(|p| p[3] == 255);
    let luma: Vec<f32> = rgba
        .chunks_exact(4)
        .map(|p| (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32) / 255.0)
        .collect();
    if opaque {
        return from_luma(width, height, &luma, Polarity::Auto);
    }
    // Transparent background: the stroke is where alpha is. Any stroke colour works.
    let ink: Vec<f32> = rgba.chunks_exact(4).map(|p| p[3] as f32 / 255.0).collect();
    from_ink(width, height, &ink)
}

fn border_mean(width: usize, height: usize, v: &[f32]) -> f32 {
    let mut sum = 0.0f64;
    let mut count = 0usize;
    for x in 0..width {
        sum += (v[x] + v[(height - 1) * width + x]) as f64;
        count += 2;
    }
    for y in 0..height {
        sum += (v[y * width] + v[y * width + width - 1]) as f64;
        count += 2;
    }
    (sum / count as f64) as f32
}

/// Ink map (0..1, ink high) of any size → 784 floats: crop, fit 20×20, centre by mass.
pub fn from_ink(width: usize, height: usize, ink: &[f32]) -> Result<Vec<f32>> {
    check_dims(width, height, ink.len(), 1)?;
    let max = ink.iter().fold(0.0f32, |m, &v| if v.is_finite() { m.max(v) } else { m });
    if max <= 0.0 {
        return Err(Error::bad_input("the image has no ink: draw a digit (light-on-dark or dark-on-light) and try again"));
    }
    // Normalise so the strongest ink is 1.0: a pale pencil digit becomes MNIST-contrast.
    let norm: Vec<f32> = ink.iter().map(|&v| (v / max).clamp(0.0, 1.0)).collect();

    // 1. Crop to the bounding box of the ink.
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0usize, 0usize);
    for y in 0..height {
        for x in 0..width {
            if norm[y * width + x] > INK_THRESHOLD {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    // max > 0 guarantees one pixel at 1.0 > threshold, so the box is never empty.
    let (cw, ch) = (x1 - x0 + 1, y1 - y0 + 1);

    // 2. Fit into 20×20 keeping the aspect ratio, by area averaging (anti-aliased both ways).
    let scale = BOX as f32 / cw.max(ch) as f32;
    let tw = ((cw as f32 * scale).round() as usize).clamp(1, BOX);
    let th = ((ch as f32 * scale).round() as usize).clamp(1, BOX);
    let small = resample_area(&norm, width, x0, y0, cw, ch, tw, th);

    // 3. Place in 28×28 with the centre of mass at the centre (integer shift, as MNIST did).
    let (mut mx, mut my, mut mass) = (0.0f64, 0.0f64, 0.0f64);
    for y in 0..th {
        for x in 0..tw {
            let v = small[y * tw + x] as f64;
            mx += v * (x as f64 + 0.5);
            my += v * (y as f64 + 0.5);
            mass += v;
        }
    }
    let (cx, cy) = if mass > 0.0 { (mx / mass, my / mass) } else { (tw as f64 / 2.0, th as f64 / 2.0) };
    let half = SIDE as f64 / 2.0;
    let ox = (half - cx).round().clamp(0.0, (SIDE - tw) as f64) as usize;
    let oy = (half - cy).round().clamp(0.0, (SIDE - th) as f64) as usize;
    let mut out = vec![0.0f32; SIDE * SIDE];
    for y in 0..th {
        for x in 0..tw {
            out[(oy + y) * SIDE + ox + x] = small[y * tw + x];
        }
    }
    Ok(out)
}

/// Area-average resampling of the crop `(x0, y0, cw, ch)` of `src` (row stride `sw`) to `tw × th`.
/// Each output pixel is the mean of the source area it covers, with fractional edge weights,
/// so it both shrinks without aliasing and enlarges smoothly.
#[allow(clippy::too_many_arguments)]
fn resample_area(src: &[f32], sw: usize, x0: usize, y0: usize, cw: usize, ch: usize, tw: usize, th: usize) -> Vec<f32> {
    let sx = cw as f64 / tw as f64;
    let sy = ch as f64 / th as f64;
    let mut out = vec![0.0f32; tw * th];
    for ty in 0..th {
        let fy0 = ty as f64 * sy;
        let fy1 = fy0 + sy;
        for tx in 0..tw {
            let fx0 = tx as f64 * sx;
            let fx1 = fx0 + sx;
            let mut acc = 0.0f64;
            let mut y = fy0.floor() as usize;
            while (y as f64) < fy1 && y < ch {
                let wy = (fy1.min(y as f64 + 1.0) - fy0.max(y as f64)).max(0.0);
                let mut x = fx0.floor() as usize;
                while (x as f64) < fx1 && x < cw {
                    let wx = (fx1.min(x as f64 + 1.0) - fx0.max(x as f64)).max(0.0);
                    acc += wx * wy * src[(y0 + y) * sw + x0 + x] as f64;
                    x += 1;
                }
                y += 1;
            }
            out[ty * tw + tx] = (acc / (sx * sy)).clamp(0.0, 1.0) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mass_center(img: &[f32]) -> (f64, f64) {
        let (mut mx, mut my, mut m) = (0.0, 0.0, 0.0);
        for y in 0..SIDE {
            for x in 0..SIDE {
                let v = img[y * SIDE + x] as f64;
                mx += v * (x as f64 + 0.5);
                my += v * (y as f64 + 0.5);
                m += v;
            }
        }
        (mx / m, my / m)
    }

    #[test]
    fn big_offcentre_dark_on_light_becomes_centred_light_on_dark() {
        // A 200×120 white page with a black 30×60 bar near the top-left corner.
        let (w, h) = (200, 120);
        let mut luma = vec![1.0f32; w * h];
        for y in 5..65 {
            for x in 10..40 {
                luma[y * w + x] = 0.0;
            }
        }
        let out = from_luma(w, h, &luma, Polarity::Auto).unwrap();
        assert_eq!(out.len(), 784);
        // Fit: 60 tall → 20 rows, 30 wide → 10 columns of ink.
        let rows = (0..SIDE).filter(|y| (0..SIDE).any(|x| out[y * SIDE + x] > 0.5)).count();
        let cols = (0..SIDE).filter(|x| (0..SIDE).any(|y| out[y * SIDE + x] > 0.5)).count();
        assert_eq!((rows, cols), (20, 10));
        let (cx, cy) = mass_center(&out);
        assert!((cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5, "centre {cx},{cy}");
        assert!(out[0] == 0.0 && out[783] == 0.0, "background must be 0");
    }

    #[test]
    fn transparent_canvas_uses_alpha() {
        let (w, h) = (50, 50);
        let mut rgba = vec![0u8; w * h * 4];
        for y in 10..40 {
            for x in 20..25 {
                let p = (y * w + x) * 4;
                rgba[p..p + 4].copy_from_slice(&[0, 0, 0, 255]);
            }
        }
        let out = from_rgba8(w, h, &rgba).unwrap();
        assert!(out.iter().cloned().fold(0.0, f32::max) > 0.99);
    }

    #[test]
    fn bad_images_are_errors_not_panics() {
        assert!(from_luma(0, 5, &[], Polarity::Auto).is_err());
        assert!(from_luma(3, 3, &[0.0; 8], Polarity::Auto).is_err());
        assert!(from_luma(2, 2, &[0.0, f32::NAN, 0.0, 0.0], Polarity::Auto).is_err());
        assert!(from_luma(1 << 13, 1 << 12, &[], Polarity::Auto).is_err());
        assert!(from_luma(usize::MAX, 2, &[], Polarity::Auto).is_err());
        let e = from_luma(4, 4, &[0.0; 16], Polarity::InkHigh).unwrap_err();
        assert!(e.message.contains("no ink"));
        assert!(from_rgba8(2, 2, &[0; 15]).is_err());
        // One pixel of ink still works.
        let mut one = vec![0.0; 9];
        one[4] = 1.0;
        assert!(from_luma(3, 3, &one, Polarity::InkHigh).is_ok());
    }
}
