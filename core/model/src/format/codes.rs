//! The numbers of the `.mdm` format: fixed offsets, codes and limits (see `MDM_FORMAT.md`).
//!
//! Every code here is written into files: never renumber one. New codes are added with a minor
//! version bump; a reader that meets a code it does not know rejects the file as `Unsupported`
//! and names the code.

/// File signature. PNG-style: the high byte catches 7-bit transfers, `\r\n` and `\n` catch
/// line-ending conversion, `\x1a` stops `type` on Windows.
pub const MAGIC: [u8; 8] = *b"\x89MDM\r\n\x1a\n";

/// Header size; the section table starts right after it.
pub const HEADER_LEN: usize = 64;
/// The SHA-256 digest lives in header bytes `32..64`; it covers bytes `0..32` and `64..`.
pub const DIGEST_OFFSET: usize = 32;
pub const DIGEST_LEN: usize = 32;
/// One section table entry: kind u32, flags u32, offset u64, length u64.
pub const SECTION_ENTRY_LEN: usize = 24;
/// Every tensor buffer starts at a multiple of this from the file start (cache line; enough
/// for any SIMD load), so a reader may use the bytes in place.
pub const DATA_ALIGN: usize = 64;
/// Every section starts at a multiple of this.
pub const SECTION_ALIGN: usize = 8;

/// Header flags.
pub mod flag {
    /// The file carries a `SIGNATURE` section, as its last section (see `codes::signature`).
    pub const SIGNED: u32 = 1 << 0;
    /// The model is encrypted: the file holds META (clear) and ENCRYPTION (see `codes::encryption`).
    pub const ENCRYPTED: u32 = 1 << 1;
}

/// Section kinds.
pub mod section {
    pub const META: u32 = 1;
    pub const GRAPH: u32 = 2;
    pub const TENSORS: u32 = 3;
    pub const DATA: u32 = 4;
    /// The signature (see `flag::SIGNED` and `codes::signature`); always the last section.
    pub const SIGNATURE: u32 = 5;
    /// The encrypted model (see `flag::ENCRYPTED` and `codes::encryption`).
    pub const ENCRYPTION: u32 = 6;

    /// Section flag: a reader that does not know this kind must reject the file. Without it an
    /// unknown section is skipped (it is still covered by the digest).
    pub const FLAG_REQUIRED: u32 = 1 << 0;

    pub fn name(kind: u32) -> &'static str {
        match kind {
            META => "META",
            GRAPH => "GRAPH",
            TENSORS => "TENSORS",
            DATA => "DATA",
            SIGNATURE => "SIGNATURE",
            ENCRYPTION => "ENCRYPTION",
            _ => "unknown",
        }
    }
}

/// The SIGNATURE section (kind 5): `u32 algorithm`, `u32 reserved (0)`, `key id` (8 bytes),
/// `signature` (64 bytes). It is the last section and ends the file; the header digest then
/// covers every byte except the digest field and this section (see `MDM_FORMAT.md`).
pub mod signature {
    /// Ed25519 (RFC 8032), verified strictly (no malleable signatures, no small-order keys).
    pub const ED25519: u32 = 1;
    /// Key id: the first 8 bytes of SHA-256 of the 32-byte public key.
    pub const KEY_ID_LEN: usize = 8;
    pub const SIG_LEN: usize = 64;
    /// Bytes of the section: algorithm, reserved, key id, signature.
    pub const SECTION_LEN: usize = 4 + 4 + KEY_ID_LEN + SIG_LEN;
    /// Prefix of the signed message (domain separation: these bytes signed by the same key mean
    /// nothing anywhere else). The message is this, then `algorithm` (u32 LE), the key id and the
    /// 32-byte header digest.
    pub const CONTEXT: &[u8] = b"mdeploy .mdm signature v1\0";
}

/// The ENCRYPTION section (kind 6): `u32 algorithm`, `u32 reserved (0)`, `key id` (8 bytes),
/// `nonce` (12 bytes), then the ciphertext of a whole plain `.mdm` file with its 16-byte tag.
pub mod encryption {
    /// ChaCha20-Poly1305 (RFC 8439).
    pub const CHACHA20_POLY1305: u32 = 1;
    pub const NONCE_LEN: usize = 12;
    pub const TAG_LEN: usize = 16;
    /// Bytes before the ciphertext: algorithm, reserved, key id, nonce.
    pub const HEADER_LEN: usize = 4 + 4 + super::signature::KEY_ID_LEN + NONCE_LEN;
}

/// Op codes in the GRAPH section (u16). Codes 1..=7 are the 1.0 layer codes; a 1.0 GRAPH
/// section uses only those, with their 1.0 attributes (see `MDM_FORMAT.md`).
pub mod layer {
    pub const DENSE: u16 = 1;
    pub const CONV2D: u16 = 2;
    pub const MAXPOOL2D: u16 = 3;
    pub const RELU: u16 = 4;
    pub const SOFTMAX: u16 = 5;
    pub const FLATTEN: u16 = 6;
    pub const DROPOUT: u16 = 7;
    // Added in 1.1.
    pub const BATCHNORM: u16 = 8;
    pub const ADD: u16 = 9;
    pub const MUL: u16 = 10;
    pub const CONCAT: u16 = 11;
    pub const AVGPOOL2D: u16 = 12;
    pub const GLOBAL_AVGPOOL: u16 = 13;
    pub const RESHAPE: u16 = 14;
    pub const CLIP: u16 = 15;
    pub const LEAKY_RELU: u16 = 16;
    pub const SIGMOID: u16 = 17;
    pub const TANH: u16 = 18;
    pub const HARDSWISH: u16 = 19;
    pub const IDENTITY: u16 = 20;
    /// Per-tensor uint8 fake quantization (`f32` scale, `i32` zero point); see MDM_FORMAT.md.
    pub const QUANTIZE: u16 = 21;
    /// Binarization to ±1 (`x >= 0` → +1), no attributes; see MDM_FORMAT.md.
    pub const SIGN: u16 = 22;
}

/// Element types in a tensor record (u8).
pub mod dtype {
    pub const F32: u8 = 1;
    pub const I8: u8 = 2;
    pub const U8: u8 = 3;
    /// Unsigned `bits`-bit integers (1..=7), packed LSB first.
    pub const UPACKED: u8 = 4;
    /// Signed (two's complement) `bits`-bit integers, packed LSB first; `bits == 1` is the
    /// binary case (0 → -1, 1 → +1).
    pub const SPACKED: u8 = 5;
}

/// Storage encodings in a tensor record (u8).
pub mod encoding {
    pub const DENSE: u8 = 1;
    /// Buffers: row_ptr u32[rows + 1], col_idx u32[nnz], values f32[nnz].
    pub const SPARSE_CSR: u8 = 2;
    /// Buffers: mask u8[ceil(numel / 8)], values f32[popcount].
    pub const SPARSE_BITMASK: u8 = 3;

    pub fn name(code: u8) -> &'static str {
        match code {
            DENSE => "dense",
            SPARSE_CSR => "sparse-csr",
            SPARSE_BITMASK => "sparse-bitmask",
            _ => "unknown",
        }
    }
}

/// Quantization parameter kinds in a tensor record (u8).
pub mod quant {
    pub const NONE: u8 = 0;
    pub const PER_TENSOR: u8 = 1;
    pub const PER_CHANNEL: u8 = 2;
}

// Limits. They bound what a file may declare so a hostile file cannot make the reader (or a
// runtime densifying its tensors) allocate more than the file's size justifies. Each is far
// above what a real model needs.

/// Sections in one file (4 are used today).
pub const MAX_SECTIONS: usize = 32;
/// Bytes in one string (name, label, key, value, ...).
pub const MAX_STRING_BYTES: usize = 64 * 1024;
/// Class labels.
pub const MAX_LABELS: usize = 65_536;
/// Extra provenance key/value pairs.
pub const MAX_EXTRA: usize = 1024;
/// Rank of a tensor or of the input shape.
pub const MAX_RANK: usize = 8;
/// Tensors in the table (a node has at most four: BatchNorm).
pub const MAX_TENSORS: usize = 4 * crate::graph::MAX_NODES;
/// Elements in one tensor: 2^28 (1 GiB as dense f32).
pub const MAX_TENSOR_ELEMS: usize = 1 << 28;
/// A sparse tensor may describe at most `SPARSE_FREE_ELEMS + SPARSE_MAX_RATIO × stored bytes`
/// elements, so densifying a small hostile file cannot allocate more than the file justifies.
/// The ratio is 8 because a bitmask (one bit per element) always meets it: any sparsity can be
/// stored, CSR up to about 97 % sparse and a bitmask beyond. 1-bit packed weights expand by
/// exactly this ratio too, so "8 elements per stored byte" is the one expansion bound of the
/// format. The small free allowance covers tiny tensors (a 1-element bias).
pub const SPARSE_FREE_ELEMS: usize = 64;
pub const SPARSE_MAX_RATIO: usize = 8;
