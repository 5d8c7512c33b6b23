//! Reading `.mdm` bytes that nobody vouches for.
//!
//! Order of checks (each failure names what and where):
//! 1. magic, then the major version (so a future layout gets "upgrade mdeploy", not "corrupt");
//! 2. the declared file length against the actual length (truncation / appended bytes);
//! 3. a signed file's SIGNATURE section (last entry, end of file), then the SHA-256 digest (any
//!    change to any covered byte fails here with "corrupt or modified");
//! 3b. under a trust policy, the signature (`UNTRUSTED`), before any section is parsed;
//! 4. flags, the section table, then each section with a bounds-checked [`Cursor`];
//! 5. tensors: buffer lengths are compared with what the shape implies *before* copying, and
//!    payloads are checked with [`Tensor::check_data`];
//! 6. [`Model::validate`] on the assembled graph.
//!
//! Digest-valid but hostile files (someone can always recompute a SHA-256) are still handled by
//! steps 4–6: every count is compared with the bytes left before anything is allocated for it.

use crate::error::{Error, Result};
use crate::format::codes::{self, encoding, flag, section, signature as sig};
use crate::format::cursor::Cursor;
use crate::format::digest;
use crate::format::encrypt::{self, DecryptionKey, Sealed};
use crate::format::trust::{self, KeyId, PublicKey, SigBlock};
use crate::format::{FileInfo, SectionInfo, SignatureInfo, TensorInfo, FORMAT_MAJOR, FORMAT_MINOR};
use crate::graph::Graph;
use crate::model::{Model, Quant};

mod graph;
mod meta;
mod tensors;

use graph::*;
use meta::*;
use tensors::*;

pub(crate) struct Header {
    pub major: u16,
    pub minor: u16,
    pub flags: u32,
    pub section_count: usize,
    pub digest: [u8; 32],
    /// A signed file's SIGNATURE section: its file offset and contents (not yet verified).
    pub signature: Option<(usize, SigBlock)>,
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Checks magic, version, length and digest; returns the header. Shared by [`read`] and
/// [`crate::format::digest_hex`].
pub(crate) fn parse_header(bytes: &[u8]) -> Result<Header> {
    parse_header_opts(bytes, true)
}

/// [`parse_header`], with the SHA-256 check optional (`verify_digest = false` only for bytes
/// whose digest was checked earlier, e.g. at build time: see [`crate::format::read_trusted`]).
pub(crate) fn parse_header_opts(bytes: &[u8], verify_digest: bool) -> Result<Header> {
    let magic = &codes::MAGIC;
    if bytes.len() < magic.len() || bytes[..magic.len()] != magic[..] {
        if bytes.len() < magic.len() && magic.starts_with(bytes) {
            return Err(Error::bad_model(format!(
                "truncated: the file is {} bytes, shorter than the .mdm header ({} bytes)",
                bytes.len(),
                codes::HEADER_LEN
            )));
        }
        return Err(Error::bad_model(
            "not an .mdm model file (wrong magic bytes at offset 0); export the model with `mdeploy` to get one",
        ));
    }
    if bytes.len() < codes::HEADER_LEN {
        return Err(Error::bad_model(format!(
            "truncated: the file is {} bytes, shorter than the .mdm header ({} bytes)",
            bytes.len(),
            codes::HEADER_LEN
        )));
    }
    let major = le_u16(bytes, 8);
    let minor = le_u16(bytes, 10);
    if major != FORMAT_MAJOR {
        return Err(Error::unsupported(format!(
            "this model uses .mdm format version {major}.{minor}, but this mdeploy ({}) reads version {FORMAT_MAJOR}.x only: upgrade mdeploy to load it",
            env!("CARGO_PKG_VERSION")
        )));
    }
    let flags = le_u32(bytes, 12);
    let file_len = le_u64(bytes, 16);
    let actual = bytes.len() as u64;
    if file_len > actual {
        return Err(Error::bad_model(format!(
            "truncated: the header says the file is {file_len} bytes but only {actual} are present (the download or copy was cut short)"
        )));
    }
    if file_len < actual {
        return Err(Error::bad_model(format!(
            "the header says the file is {file_len} bytes but {actual} are present: {} extra bytes were appended, or the file is corrupt",
            actual - file_len
        )));
    }
    let section_count = le_u32(bytes, 24) as usize;
    let reserved = le_u32(bytes, 28);
    // A signed file's digest stops where its SIGNATURE section (the last one) starts, so that
    // section is found first. Only the last section table entry is read here; the whole table
    // is checked later.
    let signature = if flags & flag::SIGNED != 0 {
        Some(locate_signature(bytes, section_count)?)
    } else {
        None
    };
    let mut stored = [0u8; 32];
    stored.copy_from_slice(&bytes[codes::DIGEST_OFFSET..codes::DIGEST_OFFSET + codes::DIGEST_LEN]);
    let computed = match (verify_digest, &signature) {
        (false, _) => stored,
        (true, None) => digest::content_digest(bytes),
        (true, Some((at, _))) => digest::content_digest_upto(bytes, *at),
    };
    if computed != stored {
        return Err(Error::bad_model(format!(
            "the file is corrupt or was modified after it was written: its SHA-256 digest does not match (stored {}, computed {}); re-export or re-download the model",
            digest::hex(&stored),
            digest::hex(&computed)
        )));
    }
    let flags_known = flag::SIGNED | flag::ENCRYPTED;
    if flags & !flags_known != 0 {
        return Err(Error::unsupported(format!(
            "header flags {flags:#x} use bits this mdeploy does not know (format {major}.{minor}); upgrade mdeploy"
        )));
    }
    if reserved != 0 {
        return Err(Error::bad_model(format!(
            "header field at offset 28 is reserved and must be 0, found {reserved:#x}"
        )));
    }
    Ok(Header {
        major,
        minor,
        flags,
        section_count,
        digest: stored,
        signature,
    })
}

/// Finds a signed file's SIGNATURE section: the last section table entry, of kind SIGNATURE,
/// exactly [`sig::SECTION_LEN`] bytes, ending the file. Anything else (no such entry, the
/// section moved or resized) is `BAD_MODEL`: a signature that is not where the format puts it
/// is not a signature of this file.
fn locate_signature(bytes: &[u8], section_count: usize) -> Result<(usize, SigBlock)> {
    let fix = "the signature section was moved, removed or damaged; get the signed file again, or re-sign it with `mdeploy sign`";
    if section_count == 0 || section_count > codes::MAX_SECTIONS {
        return Err(Error::bad_model(format!(
            "header declares {section_count} sections; a file has 4 to {}",
            codes::MAX_SECTIONS
        )));
    }
    let table_end = codes::HEADER_LEN + section_count * codes::SECTION_ENTRY_LEN;
    if table_end > bytes.len() {
        return Err(Error::bad_model(format!(
            "truncated: the section table ({section_count} entries) runs past the end of the {}-byte file",
            bytes.len()
        )));
    }
    let e = table_end - codes::SECTION_ENTRY_LEN;
    let kind = le_u32(bytes, e);
    let offset = le_u64(bytes, e + 8);
    let len = le_u64(bytes, e + 16);
    if kind != section::SIGNATURE {
        return Err(Error::bad_model(format!(
            "the header flag SIGNED is set but the last section table entry (file offset {e}) is kind {kind} ({}), not SIGNATURE: {fix}",
            section::name(kind)
        )));
    }
    if len != sig::SECTION_LEN as u64
        || offset.checked_add(len) != Some(bytes.len() as u64)
        || offset < table_end as u64
        || offset % codes::SECTION_ALIGN as u64 != 0
    {
        return Err(Error::bad_model(format!(
            "the SIGNATURE section (table entry at file offset {e}) is bytes {offset}+{len}; it must be the {}-byte section that ends the {}-byte file: {fix}",
            sig::SECTION_LEN,
            bytes.len()
        )));
    }
    let at = offset as usize; // < bytes.len()
    Ok((at, SigBlock::parse(&bytes[at..], at)?))
}

#[derive(Clone, Copy)]
struct Section {
    kind: u32,
    offset: usize,
    len: usize,
}

impl Section {
    fn end(&self) -> usize {
        self.offset + self.len // checked when parsed
    }
}

struct Sections {
    meta: Section,
    body: Body,
    all: Vec<SectionInfo>,
}

enum Body {
    Plain { graph: Section, tensors: Section, data: Section },
    /// An encrypted file (flag `ENCRYPTED`): its ENCRYPTION section.
    Encrypted(Section),
}

fn parse_sections(bytes: &[u8], h: &Header) -> Result<Sections> {
    let n = h.section_count;
    if n == 0 || n > codes::MAX_SECTIONS {
        return Err(Error::bad_model(format!(
            "header declares {n} sections; a file has 4 to {} (META, GRAPH, TENSORS, DATA)",
            codes::MAX_SECTIONS
        )));
    }
    let table_len = n * codes::SECTION_ENTRY_LEN; // <= 32 * 24
    let table_end = codes::HEADER_LEN + table_len;
    if table_end > bytes.len() {
        return Err(Error::bad_model(format!(
            "truncated: the section table ({n} entries, bytes {}..{table_end}) runs past the end of the {}-byte file",
            codes::HEADER_LEN,
            bytes.len()
        )));
    }
    let mut c = Cursor::new(
        &bytes[codes::HEADER_LEN..table_end],
        codes::HEADER_LEN,
        "section table",
    );
    let mut found: [Option<Section>; 4] = [None; 4];
    let mut encryption: Option<Section> = None;
    let mut all = Vec::with_capacity(n);
    let mut prev_end = table_end;
    for i in 0..n {
        let at = c.offset();
        let kind = c.u32(format_args!("entry {i} kind"))?;
        let sflags = c.u32(format_args!("entry {i} flags"))?;
        let offset = c.u64(format_args!("entry {i} offset"))?;
        let len = c.u64(format_args!("entry {i} length"))?;
        let name = section::name(kind);
        let loc = || format!("section table entry {i} (kind {kind} {name}, at file offset {at})");
        if sflags & !section::FLAG_REQUIRED != 0 {
            return Err(Error::bad_model(format!(
                "{}: unknown section flag bits {sflags:#x}",
                loc()
            )));
        }
        let end = offset.checked_add(len).filter(|&e| e <= bytes.len() as u64);
        let (Some(end), Ok(offset)) = (end, usize::try_from(offset)) else {
            return Err(Error::bad_model(format!(
                "{}: bytes {offset}+{len} run past the end of the {}-byte file (truncated or corrupt)",
                loc(),
                bytes.len()
            )));
        };
        let end = end as usize; // <= bytes.len()
        let align = if kind == section::DATA {
            codes::DATA_ALIGN
        } else {
            codes::SECTION_ALIGN
        };
        if offset % align != 0 {
            return Err(Error::bad_model(format!(
                "{}: offset {offset} is not a multiple of {align}",
                loc()
            )));
        }
        if offset < prev_end {
            return Err(Error::bad_model(format!(
                "{}: offset {offset} overlaps the header, the section table or the previous section (which ends at {prev_end}); sections must be in file order",
                loc()
            )));
        }
        prev_end = end;
        let s = Section {
            kind,
            offset,
            len: end - offset,
        };
        all.push(SectionInfo {
            kind,
            name,
            offset: offset as u64,
            len: s.len as u64,
        });
        match kind {
            section::META | section::GRAPH | section::TENSORS | section::DATA => {
                let slot = &mut found[(kind - 1) as usize];
                if slot.is_some() {
                    return Err(Error::bad_model(format!(
                        "{}: duplicate {name} section",
                        loc()
                    )));
                }
                *slot = Some(s);
            }
            // The only SIGNATURE a file may hold is the one parse_header located: the last
            // entry, with the SIGNED flag. Any other is a duplicate or was moved.
            section::SIGNATURE if h.signature.as_ref().is_some_and(|(o, _)| *o == offset) && i + 1 == n => {}
            section::SIGNATURE => {
                return Err(Error::bad_model(format!(
                    "{}: a SIGNATURE section may appear only once, as the last section of a file whose header has the SIGNED flag: the signature was duplicated, moved or added by hand; re-sign the model with `mdeploy sign`",
                    loc()
                )));
            }
            section::ENCRYPTION if h.flags & flag::ENCRYPTED != 0 && encryption.is_none() => {
                encryption = Some(s);
            }
            section::ENCRYPTION => {
                return Err(Error::bad_model(format!(
                    "{}: an ENCRYPTION section may appear only once, in a file whose header has the ENCRYPTED flag: the file was assembled by hand or damaged; re-encrypt it with `mdeploy encrypt`",
                    loc()
                )));
            }
            _ if sflags & section::FLAG_REQUIRED != 0 => {
                return Err(Error::unsupported(format!(
                    "{}: a section this mdeploy does not know is marked required (written by a newer version, format {}.{}): upgrade mdeploy",
                    loc(),
                    h.major,
                    h.minor
                )));
            }
            _ => {} // optional section from a newer minor version: skipped, still digest-covered
        }
    }
    let get = |k: u32| {
        found[(k - 1) as usize].ok_or_else(|| {
            Error::bad_model(format!(
                "the {} section is missing from the section table",
                section::name(k)
            ))
        })
    };
    if h.flags & flag::ENCRYPTED != 0 {
        // An encrypted file shows META in clear and nothing else of the model.
        for k in [section::GRAPH, section::TENSORS, section::DATA] {
            if found[(k - 1) as usize].is_some() {
                return Err(Error::bad_model(format!(
                    "this model is encrypted but also has a clear {} section: an encrypted file holds only META and ENCRYPTION (and a SIGNATURE); re-encrypt it with `mdeploy encrypt`",
                    section::name(k)
                )));
            }
        }
        let enc = encryption.ok_or_else(|| {
            Error::bad_model("the header flag ENCRYPTED is set but there is no ENCRYPTION section: the file is damaged; get it again")
        })?;
        return Ok(Sections { meta: get(section::META)?, body: Body::Encrypted(enc), all });
    }
    Ok(Sections {
        meta: get(section::META)?,
        body: Body::Plain {
            graph: get(section::GRAPH)?,
            tensors: get(section::TENSORS)?,
            data: get(section::DATA)?,
        },
        all,
    })
}

fn cursor<'a>(bytes: &'a [u8], s: Section) -> Cursor<'a> {
    Cursor::new(&bytes[s.offset..s.end()], s.offset, section::name(s.kind))
}

/// Parses and validates a whole file; see [`crate::format::read`].
pub(crate) fn read_with_info(bytes: &[u8]) -> Result<(Model, FileInfo)> {
    read_with_info_opts(bytes, true, None, None)
}

/// An encrypted file's clear sections (header already parsed), for signing and decrypting.
pub(crate) fn sealed_sections<'a>(bytes: &'a [u8], h: &Header) -> Result<Sealed<'a>> {
    let s = parse_sections(bytes, h)?;
    match s.body {
        Body::Encrypted(e) => Ok(Sealed {
            meta: &bytes[s.meta.offset..s.meta.end()],
            meta_at: s.meta.offset,
            encryption: &bytes[e.offset..e.end()],
            at: e.offset,
        }),
        Body::Plain { .. } => Err(Error::bad_input("this model is not encrypted")),
    }
}

/// META from its bytes (an encrypted file's clear copy).
pub(crate) fn parse_meta_bytes(meta: &[u8], at: usize, minor: u16) -> Result<crate::model::Metadata> {
    let mut c = Cursor::new(meta, at, section::name(section::META));
    parse_meta(&mut c, minor > FORMAT_MINOR)
}

/// What `mdeploy info` can say about an encrypted file without its key: the clear META and the
/// key id it was encrypted for.
pub(crate) fn peek_encrypted(bytes: &[u8]) -> Result<Option<(crate::model::Metadata, FileInfo, KeyId)>> {
    let h = parse_header_opts(bytes, true)?;
    if h.flags & flag::ENCRYPTED == 0 {
        return Ok(None);
    }
    let sealed = sealed_sections(bytes, &h)?;
    let id = encrypt::key_id_of(&sealed)?;
    let meta = parse_meta_bytes(sealed.meta, sealed.meta_at, h.minor)?;
    let s = parse_sections(bytes, &h)?;
    Ok(Some((meta, file_info(bytes, &h, s.all, None), id)))
}

fn file_info(bytes: &[u8], h: &Header, sections: Vec<SectionInfo>, trusted: Option<&[PublicKey]>) -> FileInfo {
    FileInfo {
        version: (h.major, h.minor),
        flags: h.flags,
        file_len: bytes.len() as u64,
        digest_hex: digest::hex(&h.digest),
        signature: h.signature.as_ref().map(|(_, b)| SignatureInfo {
            algorithm: "ed25519",
            key_id: b.key_id.to_string(),
            verified: trusted.is_some(),
        }),
        sections,
        tensors: Vec::new(),
    }
}

/// The encrypted branch of [`read_with_info_opts`], a wasm function of its own: V8 compiles a
/// function on its first call, so a plain file's load never compiles it (wasm/DESIGN.md, "What
/// the load path compiles").
#[inline(never)]
fn open_encrypted(
    bytes: &[u8],
    h: &Header,
    meta: Section,
    e: Section,
    all: Vec<SectionInfo>,
    trusted: Option<&[PublicKey]>,
    decrypt: Option<&DecryptionKey>,
) -> Result<(Model, FileInfo)> {
    let sealed = Sealed {
        meta: &bytes[meta.offset..meta.end()],
        meta_at: meta.offset,
        encryption: &bytes[e.offset..e.end()],
        at: e.offset,
    };
    let outer = file_info(bytes, h, all, trusted);
    encrypt::open(&sealed, decrypt, outer)
}

/// [`read_with_info`] with the digest check optional (every structural check still runs) and
/// an optional trust policy: with `trusted`, the digest is always checked and the signature
/// verified before any section past the header is parsed.
pub(crate) fn read_with_info_opts(
    bytes: &[u8],
    verify_digest: bool,
    trusted: Option<&[PublicKey]>,
    decrypt: Option<&DecryptionKey>,
) -> Result<(Model, FileInfo)> {
    let h = parse_header_opts(bytes, verify_digest || trusted.is_some())?;
    if let Some(keys) = trusted {
        trust::check(keys, h.signature.as_ref().map(|(_, b)| b), &h.digest)?;
    }
    let s = parse_sections(bytes, &h)?;
    let (graph_s, tensors_s, data_s) = match s.body {
        Body::Plain { graph, tensors, data } => (graph, tensors, data),
        Body::Encrypted(e) => return open_encrypted(bytes, &h, s.meta, e, s.all, trusted, decrypt),
    };
    let newer_minor = h.minor > FORMAT_MINOR;
    let meta = parse_meta(&mut cursor(bytes, s.meta), newer_minor)?;

    let mut tc = cursor(bytes, tensors_s);
    // A record is at least 5 code bytes + one buffer (16 bytes).
    let n_tensors = tc.count("tensor count", codes::MAX_TENSORS, 21)?;
    let mut records = Vec::new();
    let mut prev_end = data_s.offset;
    for i in 0..n_tensors {
        records.push(parse_record(&mut tc, i, data_s, &mut prev_end)?);
    }
    tc.finish(false)?;

    let mut owners = vec![None; n_tensors];
    let (specs, output) = parse_graph(&mut cursor(bytes, graph_s), h.minor, n_tensors, &mut owners)?;

    let mut infos = Vec::with_capacity(n_tensors);
    let mut tensors = Vec::with_capacity(n_tensors);
    for (i, r) in records.into_iter().enumerate() {
        let (layer, role) = owners[i].unwrap_or((0, "unused"));
        infos.push(TensorInfo {
            layer,
            role,
            dtype: dtype_name(r.dtype, r.bits),
            encoding: encoding::name(r.encoding),
            quantization: match &r.quant {
                None => "none",
                Some(Quant::PerTensor { .. }) => "per-tensor",
                Some(Quant::PerChannel { .. }) => "per-channel",
            },
            shape: r.shape.clone(),
            offset: r.buffers.first().map_or(0, |b| b.0 as u64),
            stored_bytes: r.buffers.iter().map(|b| b.1 as u64).sum(),
        });
        let owner = Owner { node: h.minor >= 1, layer, role };
        tensors.push(Some(decode(bytes, r, i, owner)?));
    }
    // Each index was checked in range and used exactly once by parse_graph.
    let mut take = |t: usize| {
        tensors[t]
            .take()
            .ok_or_else(|| Error::bad_model(format!("tensor {t} used twice")))
    };
    let mut nodes = Vec::with_capacity(specs.len());
    for NodeSpec { mut node, tensors: idx } in specs {
        for (slot, t) in node.op.tensors_mut().into_iter().zip(idx) {
            *slot = take(t)?;
        }
        nodes.push(node);
    }
    let model = Model { meta, graph: Graph { nodes, output } };
    model.validate().map_err(|e| Error {
        kind: e.kind,
        message: format!(
            "the file parses but its model is inconsistent: {}",
            e.message
        ),
    })?;
    let mut info = file_info(bytes, &h, s.all, trusted);
    info.tensors = infos;
    Ok((model, info))
}
