//! The `.mdm` model file: a compact, versioned, hand-written binary format.
//!
//! The byte-exact specification is [`MDM_FORMAT.md`](https://github.com/mdeploy/mdeploy/blob/main/core/model/src/format/MDM_FORMAT.md)
//! next to this file. In one picture:
//!
//! ```text
//! ┌──────────── header (64 B) ─────────────┐┌─ section table ─┐┌ META ┐┌ GRAPH ┐┌ TENSORS ┐┌──── DATA ────┐
//! │magic│ver│flags│len│nsec│0│SHA-256 (32B)││kind flags off len││names,││layers ││dtype,   ││64-B aligned  │
//! │                                         ││ × nsec          ││labels││+ attrs││shape,   ││tensor buffers│
//! └─────────────────────────────────────────┘└─────────────────┘└──────┘└───────┘└─────────┘└──────────────┘
//! ```
//!
//! * [`read`] takes untrusted bytes: any truncated, corrupt or hostile input yields an
//!   [`Error`](crate::Error) naming the section, field and file offset — never a panic, a hang,
//!   or an allocation larger than the file justifies.
//! * [`write`] validates the model and refuses anything [`read`] would refuse.
//! * Tensors may be stored as f32, int8/uint8 or 1..7-bit packed integers (per-tensor or
//!   per-channel scale and zero point; 1-bit signed is binary ±1), sparse CSR or bitmask;
//!   [`Tensor::to_f32_dense`](crate::model::Tensor::to_f32_dense) turns any of them into f32s.
//!
//! Files: [`codes`] (numbers and limits), `cursor.rs` (bounds-checked reads), `reader/`
//! (`mod.rs`: header, digest, section table, assembly; `meta.rs`, `tensors.rs`, `graph.rs`: one
//! section each), `writer.rs`, `tensor.rs` (payload rules, dequantize/densify), `digest.rs` (SHA-256),
//! `trust.rs` (Ed25519 keys, [`sign`], the trust-policy check of [`read_with_options`]).

// `x % n == 0` rather than `is_multiple_of`: the workspace's rust-version (1.85) predates it.
#![allow(clippy::manual_is_multiple_of)]

pub mod codes;
mod cursor;
mod digest;
mod reader;
mod tensor;
mod encrypt;
mod trust;
mod writer;

#[cfg(test)]
mod tests;

use crate::error::Result;
use crate::model::Model;

pub use tensor::pack_bits;
pub use encrypt::{decrypt, decrypt_in_memory, encrypt, DecryptionKey};
pub use trust::{sign, KeyId, PublicKey, SecretKey, SignedMessage};

/// Major format version: files with another major are rejected as `Unsupported`.
pub const FORMAT_MAJOR: u16 = 1;
/// Newest minor format version this build writes; it reads any `1.x` (see the versioning rules).
/// A model is written as `1.0` when its graph is a chain of the 1.0 layers (so older readers
/// load it), as `1.1` (the node list: any DAG, every op) otherwise.
pub const FORMAT_MINOR: u16 = 1;
/// `(major, minor)` of the format this build writes.
pub const FORMAT_VERSION: (u16, u16) = (FORMAT_MAJOR, FORMAT_MINOR);

/// Parses an `.mdm` file from bytes nobody vouches for, checks its digest, and validates the
/// model ([`Model::validate`] plus every tensor payload).
pub fn read(bytes: &[u8]) -> Result<Model> {
    reader::read_with_info(bytes).map(|(m, _)| m)
}

/// Like [`read`] but without recomputing the SHA-256 content digest: for bytes whose digest was
/// already checked by someone we trust, e.g. models embedded in a binary whose build verified
/// them (the HTTP component does this: it is instantiated afresh for every request, and hashing
/// a 188 KB model costs more than running it). Every structural check of [`read`] still runs,
/// so hostile bytes still give an error, never a panic; only silent corruption goes unnoticed.
pub fn read_trusted(bytes: &[u8]) -> Result<Model> {
    reader::read_with_info_opts(bytes, false, None, None).map(|(m, _)| m)
}

/// [`read_trusted`] that also describes the file (see [`read_with_info`]).
pub fn read_with_info_trusted(bytes: &[u8]) -> Result<(Model, FileInfo)> {
    reader::read_with_info_opts(bytes, false, None, None)
}

/// Like [`read`], also describing the file (version, digest, sections, how each tensor is
/// stored) for `mdeploy info`.
pub fn read_with_info(bytes: &[u8]) -> Result<(Model, FileInfo)> {
    reader::read_with_info(bytes)
}

/// [`read_with_info`] for a host that hashed the bytes itself, faster than this code can: the
/// browser's and Node's WebCrypto hash a model natively, where our SHA-256 would run in a
/// just-compiled, baseline-tier wasm function on a cold start (wasm/DESIGN.md, "Cold start").
/// `sha256` is the hash of `bytes[0..32] ++ bytes[64..]` (the content digest of a plain file).
///
/// The caller vouches for the hash, as callers of [`read_trusted`] vouch for the whole check: it
/// is used only when the file has no flags (neither signed nor encrypted, whose digests cover
/// other bytes) and it equals the digest stored in the header; in every other case, a wrong
/// `sha256` included, the bytes are hashed here as [`read_with_info`] does, so a corrupt file
/// honestly hashed gives the same error either way. Every structural check always runs.
pub fn read_with_info_hashed(bytes: &[u8], sha256: &[u8; 32]) -> Result<(Model, FileInfo)> {
    let plain = bytes.len() >= codes::HEADER_LEN
        && bytes.starts_with(&codes::MAGIC)
        && bytes[12..16] == [0, 0, 0, 0]
        && bytes[codes::DIGEST_OFFSET..codes::DIGEST_OFFSET + codes::DIGEST_LEN] == sha256[..];
    if plain {
        reader::read_with_info_opts(bytes, false, None, None)
    } else {
        reader::read_with_info(bytes)
    }
}

/// How to read a file. The default is [`read`]'s behaviour: any intact file loads, signed or
/// not (a signature's structure is checked, but it cannot be verified without the publisher's
/// key, so [`FileInfo::signature`] then says `verified: false`).
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// A trust policy. `Some(keys)`: only files signed by one of `keys` whose signature verifies
    /// load; an unsigned file, one signed by another key, or one whose signature does not verify
    /// is refused with `UNTRUSTED` before any section past the header is parsed. `Some(vec![])`
    /// refuses every file. `None`: no policy.
    pub trusted_keys: Option<Vec<PublicKey>>,
    /// The key an encrypted model is decrypted with (ChaCha20-Poly1305; see [`encrypt()`]).
    /// Without it an encrypted file is refused with `DECRYPT_FAILED` naming the key id it needs;
    /// an unencrypted file ignores it. The signature (policy) is checked before decrypting.
    pub decryption_key: Option<DecryptionKey>,
}

/// [`read_with_info`] under [`ReadOptions`]: the entry point for hosts with a trust policy.
pub fn read_with_options(bytes: &[u8], opts: &ReadOptions) -> Result<(Model, FileInfo)> {
    reader::read_with_info_opts(bytes, true, opts.trusted_keys.as_deref(), opts.decryption_key.as_ref())
}

/// Checks only the header, the digest and the signature against `trusted` (`UNTRUSTED` as in
/// [`read_with_options`]), without parsing or decrypting the model: for `mdeploy verify` of an
/// encrypted file whose decryption key the verifier does not have.
pub fn verify_signature(bytes: &[u8], trusted: &[PublicKey]) -> Result<SignatureInfo> {
    let h = reader::parse_header(bytes)?;
    let block = h.signature.as_ref().map(|(_, b)| b);
    trust::check(trusted, block, &h.digest)?;
    // check() refuses a file without a signature, so `block` is Some here.
    Ok(SignatureInfo {
        algorithm: "ed25519",
        key_id: block.map(|b| b.key_id.to_string()).unwrap_or_default(),
        verified: true,
    })
}

/// The signature of a signed file and the message it must verify against, after the checks
/// [`read`] makes first (magic, version, length, the SIGNATURE section's place and structure,
/// the digest): `Ok(None)` for an intact unsigned file, `BAD_MODEL` / `UNSUPPORTED` as [`read`]
/// for a damaged one. Nothing is verified here: this is for hosts that verify Ed25519 with their
/// own implementation (the npm package uses WebCrypto) and then load the very same bytes.
pub fn signed_message(bytes: &[u8]) -> Result<Option<SignedMessage>> {
    let h = reader::parse_header(bytes)?;
    Ok(h.signature.as_ref().map(|(_, b)| trust::signed_message(b, &h.digest)))
}

/// For an encrypted file, what can be read without its key: the clear metadata, the file's
/// description (no tensors) and the id of the key it needs; `None` for a file that is not
/// encrypted. For `mdeploy info`.
pub fn peek_encrypted(bytes: &[u8]) -> Result<Option<(crate::model::Metadata, FileInfo, KeyId)>> {
    reader::peek_encrypted(bytes)
}

/// Serializes a model. Fails (`BadModel`) if the model does not validate or exceeds a format
/// limit. The output is deterministic: the same model always gives the same bytes.
pub fn write(model: &Model) -> Result<Vec<u8>> {
    writer::write(model)
}

/// The file's SHA-256 content digest as lowercase hex, after checking magic, version, length and
/// that the stored digest matches the content (so the answer identifies a file that is intact).
/// Cheap: it does not parse the sections.
pub fn digest_hex(bytes: &[u8]) -> Result<String> {
    reader::parse_header(bytes).map(|h| digest::hex(&h.digest))
}

/// Whether `bytes` start with the `.mdm` magic (a quick sniff, not a validation).
pub fn looks_like_mdm(bytes: &[u8]) -> bool {
    bytes.starts_with(&codes::MAGIC)
}

/// What a file contains, for display.
#[derive(Clone, Debug, PartialEq)]
pub struct FileInfo {
    pub version: (u16, u16),
    pub flags: u32,
    pub file_len: u64,
    /// SHA-256 content digest, lowercase hex.
    pub digest_hex: String,
    /// `Some` for a signed file (header flag `SIGNED`).
    pub signature: Option<SignatureInfo>,
    pub sections: Vec<SectionInfo>,
    /// One entry per tensor, in table order.
    pub tensors: Vec<TensorInfo>,
}

/// A signed file's signature, as [`read_with_info`] / [`read_with_options`] saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct SignatureInfo {
    /// `"ed25519"`.
    pub algorithm: &'static str,
    /// The signing key's id, 16 lowercase hex digits (see [`KeyId`]).
    pub key_id: String,
    /// `true` when the file was read under a trust policy (so the signature verified against a
    /// trusted key); `false` when no policy was given and the signature was not checked.
    pub verified: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SectionInfo {
    pub kind: u32,
    /// `"META"`, `"GRAPH"`, `"TENSORS"`, `"DATA"` or `"unknown"` (an optional newer section).
    pub name: &'static str,
    pub offset: u64,
    pub len: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Index of the layer that owns it.
    pub layer: usize,
    /// `"weight"` or `"bias"`.
    pub role: &'static str,
    /// `"f32"`, `"i8"`, `"u8"`, `"u4"`, `"i3"`, `"binary"`, ...
    pub dtype: String,
    /// `"dense"`, `"sparse-csr"` or `"sparse-bitmask"`.
    pub encoding: &'static str,
    /// `"none"`, `"per-tensor"` or `"per-channel"`.
    pub quantization: &'static str,
    pub shape: Vec<usize>,
    /// File offset of the first buffer (a multiple of 64).
    pub offset: u64,
    /// Bytes of all its buffers.
    pub stored_bytes: u64,
}
