//! The content digest: SHA-256 over every byte of the file except the digest field itself
//! (header bytes `32..64`), i.e. over `bytes[0..32] ++ bytes[64..]`.

use sha2::{Digest, Sha256};

use crate::format::codes::{DIGEST_LEN, DIGEST_OFFSET, HEADER_LEN};

/// The digest of a file of at least [`HEADER_LEN`] bytes (callers check).
pub(crate) fn content_digest(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(&bytes[..DIGEST_OFFSET]);
    // In chunks, not in one call: a wasm engine compiles the block function with its baseline
    // compiler on first use and swaps in optimised code only for *later calls*. One update over a
    // whole model is one call of sha2's block loop, so it ran entirely in baseline code; 16 KB
    // updates let V8 tier up after the first few (wasm/DESIGN.md, "Cold start"). The digest is
    // the same: SHA-256 is defined over the byte stream, not the update boundaries.
    for chunk in bytes[DIGEST_OFFSET + DIGEST_LEN..].chunks(16 * 1024) {
        h.update(chunk);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&h.finalize());
    out
}

/// The digest of a signed file: the same, but stopping at `end`, where its SIGNATURE section
/// (the last one) starts. `HEADER_LEN <= end <= bytes.len()` (callers check).
pub(crate) fn content_digest_upto(bytes: &[u8], end: usize) -> [u8; 32] {
    content_digest(&bytes[..end])
}

/// Writes the digest of `bytes` into its header (the writer's last step).
pub(crate) fn seal(bytes: &mut [u8]) {
    if bytes.len() >= HEADER_LEN {
        let d = content_digest(bytes);
        bytes[DIGEST_OFFSET..DIGEST_OFFSET + DIGEST_LEN].copy_from_slice(&d);
    }
}

pub(crate) fn hex(d: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(d.len() * 2);
    for &b in d {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}
