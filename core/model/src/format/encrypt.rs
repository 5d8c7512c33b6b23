//! Encrypted models: ChaCha20-Poly1305 over the model, META in clear (byte layout and rules in
//! `MDM_FORMAT.md`, "Encryption").
//!
//! The ciphertext is a whole unencrypted, unsigned `.mdm` file (so after decryption the reader
//! runs every check it runs on any file); the outer file keeps a clear copy of META (so `mdeploy
//! info` can name the model without the key) which must equal the one inside. The associated
//! data binds the clear META and the ENCRYPTION header to the ciphertext.
//!
//! Encrypt-then-sign: a signature (trust.rs) covers the outer file, ciphertext included, so a
//! host checks who published a model before it decrypts anything, and `mdeploy verify` needs no
//! decryption key.
//!
//! Decryption happens in memory only; the plaintext buffer and every key are wiped on drop.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::format::codes::{encryption as enc, flag, section, signature as sig};
use crate::format::trust::KeyId;
use crate::format::{digest, reader, writer, FileInfo};
use crate::model::Model;

const KEY_LABEL: &str = "mdeploy-chacha20poly1305-key";

/// A 256-bit ChaCha20-Poly1305 key. Its bytes are wiped when it is dropped.
#[derive(Clone)]
pub struct DecryptionKey {
    key: Zeroizing<[u8; 32]>,
    id: KeyId,
}

/// Shows the key id only, never the key.
impl std::fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DecryptionKey(key id {})", self.id)
    }
}

impl DecryptionKey {
    /// From 32 random bytes (the caller takes them from a CSPRNG and wipes its copy).
    pub fn from_bytes(bytes: &[u8; 32]) -> DecryptionKey {
        // The id is a hash of the key with a context string: it names the key in errors and in
        // the file without revealing anything usable about it (a 256-bit key cannot be found
        // from 64 bits of its hash).
        let mut h = Sha256::new();
        h.update(b"mdeploy .mdm encryption key id v1\0");
        h.update(bytes);
        let mut id = [0u8; sig::KEY_ID_LEN];
        id.copy_from_slice(&h.finalize()[..sig::KEY_ID_LEN]);
        DecryptionKey { key: Zeroizing::new(*bytes), id: KeyId(id) }
    }

    pub fn key_id(&self) -> KeyId {
        self.id
    }

    /// The key file text: `mdeploy-chacha20poly1305-key <64 hex digits>` and a newline.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{KEY_LABEL} {}\n", digest::hex(&self.key[..])))
    }

    pub fn from_text(text: &str) -> Result<DecryptionKey> {
        let bytes = Zeroizing::new(crate::format::trust::parse_key_text(
            text,
            KEY_LABEL,
            "mdeploy-ed25519-secret",
            "a signing key, not an encryption key: use the .enckey file from `mdeploy keygen --encryption`",
        )?);
        Ok(DecryptionKey::from_bytes(&bytes))
    }
}

/// The cipher itself, only with the `encryption` feature (on in the CLI, the native server and
/// the npm package's .wasm; MDM_FORMAT.md, "Encryption"): a build without it refuses encrypted
/// files with `UNSUPPORTED`.
#[cfg(feature = "encryption")]
mod cipher {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

    pub(super) fn seal(key: &[u8; 32], nonce: &[u8], msg: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        ChaCha20Poly1305::new(Key::from_slice(key)).encrypt(Nonce::from_slice(nonce), Payload { msg, aad }).ok()
    }

    pub(super) fn open(key: &[u8; 32], nonce: &[u8], ct: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        ChaCha20Poly1305::new(Key::from_slice(key)).decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad }).ok()
    }
}

#[cfg(not(feature = "encryption"))]
mod cipher {
    pub(super) const MISSING: &str = "this build of mdeploy cannot encrypt or decrypt models (built without the `encryption` feature of mdeploy-model, e.g. the wasi:http component): decrypt it with `mdeploy decrypt` first";
}

#[cfg(feature = "encryption")]
fn seal_with(key: &DecryptionKey, nonce: &[u8], msg: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    cipher::seal(&key.key, nonce, msg, aad)
        .ok_or_else(|| Error::bad_input("encryption failed (the model is too large for one ChaCha20-Poly1305 message)"))
}
#[cfg(not(feature = "encryption"))]
fn seal_with(_: &DecryptionKey, _: &[u8], _: &[u8], _: &[u8]) -> Result<Vec<u8>> {
    Err(Error::unsupported(cipher::MISSING))
}

/// `Ok(None)`: authentication failed.
#[cfg(feature = "encryption")]
fn open_with(key: &DecryptionKey, nonce: &[u8], ct: &[u8], aad: &[u8]) -> Result<Option<Vec<u8>>> {
    Ok(cipher::open(&key.key, nonce, ct, aad))
}
#[cfg(not(feature = "encryption"))]
fn open_with(_: &DecryptionKey, _: &[u8], _: &[u8], _: &[u8]) -> Result<Option<Vec<u8>>> {
    Err(Error::unsupported(cipher::MISSING))
}

fn aad(meta: &[u8], head: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(meta.len() + head.len());
    a.extend_from_slice(meta);
    a.extend_from_slice(head);
    a
}

/// Encrypts an `.mdm` file for `key` with the given 12-byte nonce (random, never reused with
/// the same key: the CLI takes it from the operating system's CSPRNG). The input is read first
/// (a corrupt file is never encrypted); a signed input loses its signature (sign the encrypted
/// file instead: encrypt-then-sign). Already encrypted input is refused.
pub fn encrypt(bytes: &[u8], key: &DecryptionKey, nonce: &[u8; enc::NONCE_LEN]) -> Result<Vec<u8>> {
    if reader::parse_header_opts(bytes, true)?.flags & flag::ENCRYPTED != 0 {
        return Err(Error::bad_input("this model is already encrypted: decrypt it first (`mdeploy decrypt`)"));
    }
    let (model, _) = reader::read_with_info_opts(bytes, true, None, None)?;
    let inner = Zeroizing::new(crate::format::write(&model)?);
    let meta = writer::encode_meta(&model.meta)?;
    let minor = u16::from_le_bytes([inner[10], inner[11]]);
    let mut head = Vec::with_capacity(enc::HEADER_LEN);
    head.extend_from_slice(&enc::CHACHA20_POLY1305.to_le_bytes());
    head.extend_from_slice(&0u32.to_le_bytes());
    head.extend_from_slice(&key.key_id().0);
    head.extend_from_slice(nonce);
    let ct = seal_with(key, nonce, &inner[..], &aad(&meta, &head))?;
    let mut section_bytes = head;
    section_bytes.extend_from_slice(&ct);
    Ok(writer::assemble(
        minor,
        flag::ENCRYPTED,
        &[
            (section::META, section::FLAG_REQUIRED, &meta),
            (section::ENCRYPTION, section::FLAG_REQUIRED, &section_bytes),
        ],
    ))
}

/// The clear sections of an encrypted file, located by the reader.
pub(crate) struct Sealed<'a> {
    pub meta: &'a [u8],
    /// File offset of the META section (for messages).
    pub meta_at: usize,
    pub encryption: &'a [u8],
    /// File offset of the ENCRYPTION section (for messages).
    pub at: usize,
}

/// Reads the key id an encrypted file names, without a key (for errors and `mdeploy info`).
pub(crate) fn key_id_of(s: &Sealed) -> Result<KeyId> {
    let e = s.encryption;
    if e.len() < enc::HEADER_LEN + enc::TAG_LEN {
        return Err(Error::bad_model(format!(
            "ENCRYPTION section at file offset {}: {} bytes, shorter than its {}-byte header and {}-byte tag (truncated or corrupt)",
            s.at,
            e.len(),
            enc::HEADER_LEN,
            enc::TAG_LEN
        )));
    }
    let algorithm = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
    if algorithm != enc::CHACHA20_POLY1305 {
        return Err(Error::unsupported(format!(
            "ENCRYPTION section at file offset {}: algorithm {algorithm} is not one this mdeploy knows (1 = ChaCha20-Poly1305): upgrade mdeploy",
            s.at
        )));
    }
    let reserved = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
    if reserved != 0 {
        return Err(Error::bad_model(format!(
            "ENCRYPTION section at file offset {}: reserved field must be 0, found {reserved:#x}",
            s.at + 4
        )));
    }
    let mut id = [0u8; sig::KEY_ID_LEN];
    id.copy_from_slice(&e[8..8 + sig::KEY_ID_LEN]);
    Ok(KeyId(id))
}

/// The plaintext of an encrypted file (a whole plain `.mdm` file, not yet parsed): key id
/// checked, authenticated, and its header checked to be a plain model.
pub(crate) fn decrypt_inner(s: &Sealed, key: Option<&DecryptionKey>) -> Result<Zeroizing<Vec<u8>>> {
    let id = key_id_of(s)?;
    let Some(key) = key else {
        return Err(Error::decrypt_failed(format!(
            "this model is encrypted (ChaCha20-Poly1305, key id {id}): pass its decryption key (the .enckey file its publisher gave you)"
        )));
    };
    if key.key_id() != id {
        return Err(Error::decrypt_failed(format!(
            "this model is encrypted for key id {id}, but the key given has id {}: pass the key it was encrypted with",
            key.key_id()
        )));
    }
    let (head, ct) = s.encryption.split_at(enc::HEADER_LEN);
    let nonce = &head[8 + sig::KEY_ID_LEN..];
    let plain = Zeroizing::new(open_with(key, nonce, ct, &aad(s.meta, head))?.ok_or_else(|| {
        Error::decrypt_failed(format!(
            "decryption with key id {id} failed: the encrypted model or its clear metadata was changed after it was encrypted (or the key is not the one it was made with); get the file again from its publisher"
        ))
    })?);
    // The plaintext is authentic (only a holder of the key could have made it) but is still
    // parsed as untrusted bytes, like any file.
    let h = reader::parse_header_opts(&plain, true)
        .map_err(|e| Error { kind: e.kind, message: format!("inside the encrypted model: {}", e.message) })?;
    if h.flags != 0 {
        return Err(Error::bad_model(format!(
            "inside the encrypted model: header flags {:#x}; the encrypted content must be a plain model (sign the encrypted file instead)",
            h.flags
        )));
    }
    Ok(plain)
}

/// Decrypts and reads an encrypted file: the ciphertext must authenticate under `key`, hold an
/// ordinary (unencrypted, unsigned) `.mdm` file, and that file's META must equal the clear one.
pub(crate) fn open(s: &Sealed, key: Option<&DecryptionKey>, mut outer: FileInfo) -> Result<(Model, FileInfo)> {
    let plain = decrypt_inner(s, key)?;
    let (model, inner) = reader::read_with_info_opts(&plain, true, None, None)
        .map_err(|e| Error { kind: e.kind, message: format!("inside the encrypted model: {}", e.message) })?;
    check_clear_meta(s, outer.version.1, &model)?;
    outer.tensors = inner.tensors;
    Ok((model, outer))
}

fn check_clear_meta(s: &Sealed, minor: u16, model: &Model) -> Result<()> {
    let clear = reader::parse_meta_bytes(s.meta, s.meta_at, minor)?;
    if clear != model.meta {
        return Err(Error::bad_model(
            "the clear META of this encrypted model differs from the encrypted one: the file was assembled by hand or damaged; re-encrypt it with `mdeploy encrypt`",
        ));
    }
    Ok(())
}

/// The decrypted inner file, in memory, after the checks reading the encrypted file with `key`
/// makes (key id, Poly1305 tag, the inner file read as untrusted bytes, clear META = inner META),
/// but not written again as [`decrypt`] does: for hosts that hand plain bytes to their own loader
/// (the npm package's .wasm, which then carries no writer). `Ok(None)`: the file is not
/// encrypted (the key is unused). The bytes are wiped on drop.
pub fn decrypt_in_memory(bytes: &[u8], key: &DecryptionKey) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let h = reader::parse_header(bytes)?;
    if h.flags & flag::ENCRYPTED == 0 {
        return Ok(None);
    }
    let s = reader::sealed_sections(bytes, &h)?;
    let plain = decrypt_inner(&s, Some(key))?;
    let (model, _) = reader::read_with_info_opts(&plain, true, None, None)
        .map_err(|e| Error { kind: e.kind, message: format!("inside the encrypted model: {}", e.message) })?;
    check_clear_meta(&s, h.minor, &model)?;
    Ok(Some(plain))
}

/// The signing side of encrypt-then-sign: re-assembles an encrypted file (META, ENCRYPTION) with
/// a SIGNATURE placeholder, for `trust::sign` to fill.
pub(crate) fn with_signature_slot(minor: u16, s: &Sealed) -> Vec<u8> {
    let placeholder = [0u8; sig::SECTION_LEN];
    writer::assemble(
        minor,
        flag::ENCRYPTED | flag::SIGNED,
        &[
            (section::META, section::FLAG_REQUIRED, s.meta),
            (section::ENCRYPTION, section::FLAG_REQUIRED, s.encryption),
            (section::SIGNATURE, section::FLAG_REQUIRED, &placeholder),
        ],
    )
}

/// Decrypts to the plain `.mdm` bytes (what `mdeploy decrypt` writes): the model read and
/// written again, so the result is the canonical unsigned file.
pub fn decrypt(bytes: &[u8], key: &DecryptionKey) -> Result<Vec<u8>> {
    let opts = crate::format::ReadOptions { trusted_keys: None, decryption_key: Some(key.clone()) };
    let (model, _) = crate::format::read_with_options(bytes, &opts)?;
    crate::format::write(&model)
}
