//! Signed models: Ed25519 keys, [`sign`], and the check the reader runs under a trust policy.
//!
//! What is signed (byte layout in `MDM_FORMAT.md`): the header digest of a signed file is
//! SHA-256 over every byte except the digest field and the SIGNATURE section (always the last
//! section), so it covers the header flags, the whole section table (the SIGNATURE entry
//! included) and every other section. The signature is over
//! `CONTEXT ‖ algorithm ‖ key id ‖ digest`: the context string keeps these signatures from
//! meaning anything elsewhere, and binding the key id means it cannot be swapped.
//!
//! The reader locates and parses the SIGNATURE section before the digest check, and, under a
//! policy, verifies it before parsing any other section: a file that is not trusted is refused
//! before its graph or tensors are looked at.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::format::codes::{self, flag, section, signature as sig};
use crate::format::{digest, reader, writer, FORMAT_MINOR};

const PUBLIC_LABEL: &str = "mdeploy-ed25519-public";
const SECRET_LABEL: &str = "mdeploy-ed25519-secret";

/// The id a signature names its key by: the first 8 bytes of SHA-256 of the public key (short
/// enough to read out loud, and a collision only makes the reader try the wrong key, which
/// fails: the id is a label, the signature is the proof).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; sig::KEY_ID_LEN]);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&digest::hex(&self.0))
    }
}

/// An Ed25519 public key: what a reader trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: KeyId,
}

impl PublicKey {
    /// From the 32-byte compressed point. Refuses bytes that are not a point and the weak
    /// (small-order) keys for which any signature would verify.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| {
            Error::bad_input("this is not an Ed25519 public key (the 32 bytes are not a curve point): use a .pub file written by `mdeploy keygen`")
        })?;
        if key.is_weak() {
            return Err(Error::bad_input(
                "this Ed25519 public key is a weak (small-order) point that would accept forged signatures: use a key made by `mdeploy keygen`",
            ));
        }
        let mut id = [0u8; sig::KEY_ID_LEN];
        id.copy_from_slice(&Sha256::digest(bytes)[..sig::KEY_ID_LEN]);
        Ok(PublicKey { key, id: KeyId(id) })
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn key_id(&self) -> KeyId {
        self.id
    }

    /// The `.pub` file text: `mdeploy-ed25519-public <64 hex digits>` and a newline.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_LABEL} {}\n", digest::hex(&self.to_bytes()))
    }

    /// Parses [`PublicKey::to_text`]'s form (surrounding whitespace ignored).
    pub fn from_text(text: &str) -> Result<PublicKey> {
        let bytes = parse_key_text(text, PUBLIC_LABEL, SECRET_LABEL, "a secret key: pass the matching .pub file instead (never hand out the .key)")?;
        PublicKey::from_bytes(&bytes)
    }
}

/// An Ed25519 secret key: what a publisher signs with. Its bytes are wiped when it is dropped
/// (ed25519-dalek's `zeroize` feature), and its text form is handed out in a [`Zeroizing`].
pub struct SecretKey {
    key: SigningKey,
}

/// Shows the key id only: a secret never reaches a log through `{:?}`.
impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(key id {})", self.public_key().key_id())
    }
}

impl SecretKey {
    /// From a 32-byte seed (RFC 8032's secret key). The caller gets the seed from a CSPRNG and
    /// wipes its own copy.
    pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
        SecretKey { key: SigningKey::from_bytes(seed) }
    }

    pub fn public_key(&self) -> PublicKey {
        // A key derived from a seed is never weak, and its bytes are a valid point.
        let bytes = self.key.verifying_key().to_bytes();
        let mut id = [0u8; sig::KEY_ID_LEN];
        id.copy_from_slice(&Sha256::digest(bytes)[..sig::KEY_ID_LEN]);
        PublicKey { key: self.key.verifying_key(), id: KeyId(id) }
    }

    /// The `.key` file text: `mdeploy-ed25519-secret <64 hex digits>` and a newline.
    pub fn to_text(&self) -> Zeroizing<String> {
        let seed = Zeroizing::new(self.key.to_bytes());
        Zeroizing::new(format!("{SECRET_LABEL} {}\n", digest::hex(&seed[..])))
    }

    pub fn from_text(text: &str) -> Result<SecretKey> {
        let seed = Zeroizing::new(parse_key_text(
            text,
            SECRET_LABEL,
            PUBLIC_LABEL,
            "a public key: signing needs the matching .key file",
        )?);
        Ok(SecretKey::from_seed(&seed))
    }
}

pub(crate) fn parse_key_text(text: &str, want: &str, other: &str, other_hint: &str) -> Result<[u8; 32]> {
    let text = text.trim();
    let (label, hex) = text.split_once(' ').unwrap_or((text, ""));
    if label == other {
        return Err(Error::bad_input(format!("this key file holds {other_hint}")));
    }
    if label != want {
        return Err(Error::bad_input(format!(
            "not an mdeploy key file: it should start with `{want} ` followed by 64 hex digits; make keys with `mdeploy keygen`"
        )));
    }
    let hex = hex.trim().as_bytes();
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return Err(Error::bad_input(format!(
            "the key after `{want} ` is {} characters long, expected 64 hex digits: the key file is damaged",
            hex.len()
        )));
    }
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let nib = |c: u8| (c as char).to_digit(16);
        match (nib(pair[0]), nib(pair[1])) {
            (Some(h), Some(l)) => out[i] = (h * 16 + l) as u8,
            _ => {
                return Err(Error::bad_input(format!(
                    "the key after `{want} ` has a non-hex character near position {}: the key file is damaged",
                    2 * i
                )))
            }
        }
    }
    Ok(out)
}

/// The SIGNATURE section as read from a file (structure checked, signature not yet verified).
#[derive(Clone, Debug)]
pub(crate) struct SigBlock {
    pub algorithm: u32,
    pub key_id: KeyId,
    pub sig: [u8; sig::SIG_LEN],
}

impl SigBlock {
    pub(crate) fn parse(b: &[u8], at: usize) -> Result<SigBlock> {
        // The caller checked b.len() == SECTION_LEN.
        let algorithm = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if algorithm != sig::ED25519 {
            return Err(Error::unsupported(format!(
                "SIGNATURE section at file offset {at}: signature algorithm {algorithm} is not one this mdeploy knows (1 = Ed25519): upgrade mdeploy"
            )));
        }
        let reserved = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        if reserved != 0 {
            return Err(Error::bad_model(format!(
                "SIGNATURE section at file offset {}: reserved field must be 0, found {reserved:#x}",
                at + 4
            )));
        }
        let mut key_id = [0u8; sig::KEY_ID_LEN];
        key_id.copy_from_slice(&b[8..8 + sig::KEY_ID_LEN]);
        let mut s = [0u8; sig::SIG_LEN];
        s.copy_from_slice(&b[8 + sig::KEY_ID_LEN..sig::SECTION_LEN]);
        Ok(SigBlock { algorithm, key_id: KeyId(key_id), sig: s })
    }
}

fn message(algorithm: u32, key_id: KeyId, digest: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(sig::CONTEXT.len() + 4 + sig::KEY_ID_LEN + 32);
    m.extend_from_slice(sig::CONTEXT);
    m.extend_from_slice(&algorithm.to_le_bytes());
    m.extend_from_slice(&key_id.0);
    m.extend_from_slice(digest);
    m
}

fn ids(keys: &[PublicKey]) -> String {
    if keys.is_empty() {
        return "none".into();
    }
    keys.iter().map(|k| k.key_id().to_string()).collect::<Vec<_>>().join(", ")
}

/// A signed file's signature and the exact message it signs, for a host that verifies Ed25519
/// itself (the npm package verifies with WebCrypto, so the runtime .wasm carries no Ed25519
/// code: wasm/DESIGN.md, "Signed models"). See [`crate::format::signed_message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedMessage {
    /// The id of the key the file names as its signer (not yet verified).
    pub key_id: KeyId,
    /// The 64-byte Ed25519 signature from the SIGNATURE section.
    pub signature: [u8; sig::SIG_LEN],
    /// `CONTEXT ‖ algorithm ‖ key id ‖ digest`, with the digest recomputed from the bytes: what
    /// the signature must verify against (strictly, as [`check`] does).
    pub message: Vec<u8>,
}

pub(crate) fn signed_message(block: &SigBlock, digest: &[u8; 32]) -> SignedMessage {
    SignedMessage { key_id: block.key_id, signature: block.sig, message: message(block.algorithm, block.key_id, digest) }
}

/// The policy check: `digest` is the file's header digest, already recomputed and compared.
pub(crate) fn check(trusted: &[PublicKey], block: Option<&SigBlock>, digest: &[u8; 32]) -> Result<()> {
    let Some(b) = block else {
        return Err(Error::untrusted(format!(
            "this model is not signed, and this reader only loads models signed by a trusted key ({} trusted: {}): sign it with `mdeploy sign MODEL --key KEY.key`, or get the signed file from its publisher",
            trusted.len(),
            ids(trusted)
        )));
    };
    let Some(key) = trusted.iter().find(|k| k.key_id() == b.key_id) else {
        return Err(Error::untrusted(format!(
            "this model is signed by key id {}, which is not a trusted key ({} trusted: {}): add that publisher's .pub file to the trusted keys if you trust it",
            b.key_id,
            trusted.len(),
            ids(trusted)
        )));
    };
    let s = Signature::from_bytes(&b.sig);
    key.key
        .verify_strict(&message(b.algorithm, b.key_id, digest), &s)
        .map_err(|_| {
            Error::untrusted(format!(
                "the signature by trusted key id {} does not verify: the file was changed after it was signed, or the signature is forged; get the model again from its publisher",
                b.key_id
            ))
        })
}

/// Signs an `.mdm` file: reads it (so a corrupt file is never signed), writes it again in the
/// canonical layout with the `SIGNED` flag and a SIGNATURE section at the end, and returns the
/// new bytes. A signed file is signed afresh (the old signature is replaced). Optional sections
/// this build does not know are not carried over. An encrypted file is signed as it is (its
/// META and ENCRYPTION sections copied), without the decryption key.
pub fn sign(bytes: &[u8], key: &SecretKey) -> Result<Vec<u8>> {
    let h = reader::parse_header_opts(bytes, true)?;
    if h.flags & flag::ENCRYPTED != 0 {
        // Encrypt-then-sign: the encrypted file is signed as it is, without decrypting it.
        let sealed = reader::sealed_sections(bytes, &h)?;
        let mut out = crate::format::encrypt::with_signature_slot(h.minor, &sealed);
        seal_signed(&mut out, key);
        return Ok(out);
    }
    let (model, _) = reader::read_with_info_opts(bytes, true, None, None)?;
    let placeholder = [0u8; sig::SECTION_LEN];
    let mut out = writer::write_with(
        &model,
        &writer::Options {
            minor: FORMAT_MINOR,
            flags: flag::SIGNED,
            extra: &[(section::SIGNATURE, section::FLAG_REQUIRED, &placeholder)],
        },
    )?;
    seal_signed(&mut out, key);
    Ok(out)
}

/// Fills the SIGNATURE section that ends `out` (its last [`sig::SECTION_LEN`] bytes) and writes
/// the signed digest into the header. `out` already has the SIGNED flag and the table entry.
pub(crate) fn seal_signed(out: &mut [u8], key: &SecretKey) {
    let at = out.len() - sig::SECTION_LEN;
    let d = digest::content_digest_upto(out, at);
    out[codes::DIGEST_OFFSET..codes::DIGEST_OFFSET + codes::DIGEST_LEN].copy_from_slice(&d);
    let id = key.public_key().key_id();
    let s = key.key.sign(&message(sig::ED25519, id, &d));
    let block = &mut out[at..];
    block[0..4].copy_from_slice(&sig::ED25519.to_le_bytes());
    block[4..8].copy_from_slice(&0u32.to_le_bytes());
    block[8..8 + sig::KEY_ID_LEN].copy_from_slice(&id.0);
    block[8 + sig::KEY_ID_LEN..].copy_from_slice(&s.to_bytes());
}
