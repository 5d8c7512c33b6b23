//! Signed `.mdm` files and the reader's trust policy, on the real default models
//! (`models/defaults.json`): sign and verify round trip, every byte of the signed range flipped
//! (as it is, and with the digest recomputed as an attacker would), wrong and unknown keys,
//! a signature moved, stripped or re-labelled, unsigned files under a policy.
//! (Two SIGNATURE sections, validly signed, are refused in `core/model/src/format/tests.rs`,
//! which can write that layout.)

use mdeploy_core::format::{self, codes, PublicKey, ReadOptions, SecretKey};
use mdeploy_core::ErrorKind;
use sha2::{Digest, Sha256};

fn default_models() -> Vec<(String, Vec<u8>)> {
    let models = mdeploy_testkit::mnist::default_model_files();
    assert!(models.len() >= 5, "defaults.json lists {} models", models.len());
    models
}

// Test keys from fixed seeds: reproducible, and obviously not anyone's real key.
fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

fn policy(keys: &[&SecretKey]) -> ReadOptions {
    ReadOptions { trusted_keys: Some(keys.iter().map(|k| k.public_key()).collect()), ..Default::default() }
}

/// What an attacker without the key can do: recompute a signed file's digest (everything but
/// the digest field and the SIGNATURE section, which ends the file).
fn reseal_signed(mut b: Vec<u8>) -> Vec<u8> {
    let end = b.len() - codes::signature::SECTION_LEN;
    let mut h = Sha256::new();
    h.update(&b[..32]);
    h.update(&b[64..end]);
    let d = h.finalize();
    b[32..64].copy_from_slice(&d);
    b
}

fn untrusted(r: mdeploy_core::Result<(mdeploy_core::Model, format::FileInfo)>) -> mdeploy_core::Error {
    match r {
        Ok(_) => panic!("loaded a file the policy must refuse"),
        Err(e) => e,
    }
}

#[test]
fn every_default_model_signs_and_verifies_and_loads_the_same_model() {
    let a = key(1);
    let b = key(2);
    for (file, bytes) in default_models() {
        let original = format::read(&bytes).unwrap();
        let signed = format::sign(&bytes, &a).unwrap();
        // One more table entry (24 bytes, often absorbed by the padding before the 64-aligned
        // DATA) and the section at the end.
        assert!(signed.len() >= bytes.len() + codes::signature::SECTION_LEN, "{file}");
        assert!(signed.len() <= bytes.len() + codes::signature::SECTION_LEN + 64 + 8, "{file}");
        assert_eq!(&signed[12..16], &codes::flag::SIGNED.to_le_bytes());

        // Under a policy trusting a (alone or with b), the same model comes back, verified.
        for opts in [policy(&[&a]), policy(&[&b, &a])] {
            let (model, info) = format::read_with_options(&signed, &opts).unwrap();
            assert_eq!(model, original, "{file}");
            let s = info.signature.expect("signed");
            assert_eq!(s.key_id, a.public_key().key_id().to_string(), "{file}");
            assert!(s.verified && s.algorithm == "ed25519", "{file}: {s:?}");
            assert_eq!(info.flags & codes::flag::SIGNED, codes::flag::SIGNED);
        }
        // Without a policy a signed file loads too, reported as not verified.
        let (model, info) = format::read_with_info(&signed).unwrap();
        assert_eq!(model, original, "{file}");
        assert!(!info.signature.unwrap().verified, "{file}");
        assert_eq!(format::read(&signed).unwrap(), original, "{file}");
        // The digest shown for a signed file is the one the signature covers, and it is stable.
        assert_eq!(format::digest_hex(&signed).unwrap(), info.digest_hex);
        // Signing is deterministic (Ed25519), and re-signing replaces the signature.
        assert_eq!(format::sign(&signed, &a).unwrap(), signed, "{file}");
        let by_b = format::sign(&signed, &b).unwrap();
        let (_, info) = format::read_with_options(&by_b, &policy(&[&b])).unwrap();
        assert_eq!(info.signature.unwrap().key_id, b.public_key().key_id().to_string());
    }
}

#[test]
fn an_unsigned_file_or_an_unknown_key_is_untrusted_under_a_policy() {
    let a = key(1);
    let b = key(2);
    for (file, bytes) in default_models() {
        let e = untrusted(format::read_with_options(&bytes, &policy(&[&a])));
        assert_eq!(e.kind, ErrorKind::Untrusted, "{file}: {e}");
        assert_eq!(e.code(), "UNTRUSTED");
        assert!(e.message.contains("not signed") && e.message.contains("mdeploy sign"), "{e}");
        // An empty policy trusts nobody.
        let e = untrusted(format::read_with_options(&bytes, &ReadOptions { trusted_keys: Some(vec![]), ..Default::default() }));
        assert_eq!(e.kind, ErrorKind::Untrusted, "{e}");

        let by_b = format::sign(&bytes, &b).unwrap();
        let e = untrusted(format::read_with_options(&by_b, &policy(&[&a])));
        assert_eq!(e.kind, ErrorKind::Untrusted, "{file}: {e}");
        let b_id = b.public_key().key_id().to_string();
        assert!(e.message.contains(&b_id) && e.message.contains("not a trusted key"), "{e}");
        assert!(e.message.contains(&a.public_key().key_id().to_string()), "names the trusted ids: {e}");
    }
}

#[test]
fn a_key_id_swapped_to_a_trusted_key_does_not_verify() {
    // The file is signed by b; the attacker writes a's key id into the SIGNATURE section.
    let a = key(1);
    let b = key(2);
    let (_, bytes) = &default_models()[0];
    let mut forged = format::sign(bytes, &b).unwrap();
    let at = forged.len() - codes::signature::SECTION_LEN + 8;
    forged[at..at + 8].copy_from_slice(&a.public_key().key_id().0);
    let e = untrusted(format::read_with_options(&forged, &policy(&[&a])));
    assert_eq!(e.kind, ErrorKind::Untrusted, "{e}");
    assert!(e.message.contains("does not verify") && e.message.contains(&a.public_key().key_id().to_string()), "{e}");
}

#[test]
fn a_flipped_byte_anywhere_is_refused_under_a_policy() {
    let a = key(1);
    let opts = policy(&[&a]);
    // The smallest default model keeps this quick: every byte up to DATA and of the SIGNATURE
    // section, and every 61st byte of DATA (each byte of DATA is hashed the same way).
    let models = default_models();
    let (file, bytes) = models.iter().min_by_key(|(_, b)| b.len()).unwrap();
    let signed = format::sign(bytes, &a).unwrap();
    let (_, info) = format::read_with_info(&signed).unwrap();
    let data = info.sections.iter().find(|s| s.name == "DATA").unwrap();
    let sig_at = signed.len() - codes::signature::SECTION_LEN;
    let table_end = 64 + 24 * info.sections.len();
    let positions: Vec<usize> = (0..data.offset as usize + 64)
        .chain((data.offset as usize..sig_at).step_by(61))
        .chain(sig_at..signed.len())
        .collect();
    let mut kinds = std::collections::BTreeMap::<(&str, &str), usize>::new();
    for &i in &positions {
        for bit in [0x01u8, 0x80] {
            let mut flipped = signed.clone();
            flipped[i] ^= bit;
            // As it is: refused (mostly the digest, BAD_MODEL; in the SIGNATURE section the
            // signature itself).
            let e = untrusted(format::read_with_options(&flipped, &opts));
            // With the digest recomputed: past the header and section table nothing is parsed
            // before the signature check, so that is what refuses it, naming the key id.
            let resealed = reseal_signed(flipped.clone());
            if (32..64).contains(&i) {
                // Resealing rewrites the digest field: the flip is undone.
                *kinds.entry(("digest", e.code())).or_default() += 1;
                continue;
            }
            let e2 = untrusted(format::read_with_options(&resealed, &opts));
            if i >= table_end {
                let in_sig_header = (sig_at..sig_at + 8).contains(&i);
                if !in_sig_header {
                    assert_eq!(e2.kind, ErrorKind::Untrusted, "{file} byte {i}: {e2}");
                }
            }
            let where_ = if i < 64 { "header" } else if i < table_end { "table" } else if i < sig_at { "sections" } else { "signature" };
            *kinds.entry((where_, e.code())).or_default() += 1;
            *kinds.entry((where_, e2.code())).or_default() += 1;
        }
    }
    println!("{file}: {} positions, {kinds:?}", positions.len());
    // Flipping a bit of the key id or the signature itself: the digest still matches, the
    // signature does not.
    assert!(kinds.get(&("signature", "UNTRUSTED")).copied().unwrap_or(0) >= 2 * 2 * 72, "{kinds:?}");
    assert!(kinds.get(&("sections", "UNTRUSTED")).copied().unwrap_or(0) > 100, "{kinds:?}");
}

#[test]
fn a_signature_moved_stripped_or_relabelled_is_refused() {
    let a = key(1);
    let (_, bytes) = &default_models()[1];
    let signed = format::sign(bytes, &a).unwrap();
    let n = u32::from_le_bytes(signed[24..28].try_into().unwrap()) as usize;
    let last = 64 + 24 * (n - 1);

    // The SIGNATURE entry relabelled as an unknown optional section (as if to make an older
    // reader skip it): the SIGNED flag finds no signature at the end.
    let mut relabelled = signed.clone();
    relabelled[last..last + 4].copy_from_slice(&77u32.to_le_bytes());
    let relabelled = reseal_signed(relabelled);
    // The section moved: the entry points 8 bytes earlier (into DATA's bytes).
    let mut moved = signed.clone();
    let off = u64::from_le_bytes(moved[last + 8..last + 16].try_into().unwrap());
    moved[last + 8..last + 16].copy_from_slice(&(off - 8).to_le_bytes());
    let moved = reseal_signed(moved);
    // The flag cleared and the file resealed as unsigned: the SIGNATURE section is now out of
    // place.
    let mut stripped = signed.clone();
    stripped[12] &= !(codes::flag::SIGNED as u8);
    let stripped = mdeploy_testkit::reseal(stripped);
    for (what, f) in [("relabelled", &relabelled), ("moved", &moved), ("stripped", &stripped)] {
        for opts in [ReadOptions::default(), policy(&[&a])] {
            let e = untrusted(format::read_with_options(f, &opts));
            if what == "stripped" && opts.trusted_keys.is_some() {
                // Unsigned as far as the header says: the policy refuses it before the section
                // table is read.
                assert_eq!(e.kind, ErrorKind::Untrusted, "{what}: {e}");
                assert!(e.message.contains("not signed"), "{e}");
                continue;
            }
            assert_eq!(e.kind, ErrorKind::BadModel, "{what}: {e}");
            assert!(e.message.contains("SIGNATURE") || e.message.contains("SIGNED"), "{what}: {e}");
            assert!(e.message.contains("sign"), "{what} says what to do: {e}");
        }
    }
}

#[test]
fn key_files_round_trip_and_name_mistakes() {
    let a = key(9);
    let pub_text = a.public_key().to_text();
    let sec_text = a.to_text();
    assert!(pub_text.starts_with("mdeploy-ed25519-public ") && pub_text.ends_with('\n'));
    assert_eq!(PublicKey::from_text(&pub_text).unwrap(), a.public_key());
    let back = SecretKey::from_text(&sec_text).unwrap();
    assert_eq!(back.public_key(), a.public_key());
    // Swapped files, damage and weak keys name what is wrong.
    let e = PublicKey::from_text(&sec_text).unwrap_err();
    assert!(e.message.contains("secret key") && e.message.contains(".pub"), "{e}");
    let e = SecretKey::from_text(&pub_text).unwrap_err();
    assert!(e.message.contains("public key") && e.message.contains(".key"), "{e}");
    let e = PublicKey::from_text(&pub_text[..pub_text.len() - 3]).unwrap_err();
    assert!(e.message.contains("64 hex digits"), "{e}");
    let e = PublicKey::from_text("hello").unwrap_err();
    assert!(e.message.contains("mdeploy keygen"), "{e}");
    // The identity point (small order): every signature would verify against it.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let e = PublicKey::from_bytes(&identity).unwrap_err();
    assert!(e.message.contains("weak"), "{e}");
    // The key id is the first 8 bytes of SHA-256 of the public key.
    let d = Sha256::digest(a.public_key().to_bytes());
    assert_eq!(a.public_key().key_id().0, d[..8]);
}

/// `format::signed_message` is what a host verifying Ed25519 itself (the npm package, with
/// WebCrypto) is given: checked here with ed25519-dalek directly, so the message is the one the
/// reader's policy verifies, byte for byte, and the checks before it are the reader's.
#[test]
fn signed_message_is_what_the_policy_verifies() {
    use ed25519_dalek::{Signature, VerifyingKey};
    let a = key(1);
    let vk = VerifyingKey::from_bytes(&a.public_key().to_bytes()).unwrap();
    for (file, plain) in default_models() {
        assert_eq!(format::signed_message(&plain).unwrap(), None, "{file}: unsigned");
        let signed = format::sign(&plain, &a).unwrap();
        let m = format::signed_message(&signed).unwrap().expect("a signed file has a signature");
        assert_eq!(m.key_id, a.public_key().key_id(), "{file}");
        assert!(m.message.starts_with(codes::signature::CONTEXT), "{file}");
        assert_eq!(&m.message[m.message.len() - 32..], &signed[32..64], "{file}: the message ends with the digest");
        vk.verify_strict(&m.message, &Signature::from_bytes(&m.signature))
            .unwrap_or_else(|e| panic!("{file}: {e}"));

        // A changed byte with the digest recomputed: the message changes, the signature fails.
        let mut t = signed.clone();
        t[200] ^= 1;
        let t = reseal_signed(t);
        let m2 = format::signed_message(&t).unwrap().expect("still structurally signed");
        assert_ne!(m2.message, m.message, "{file}");
        assert!(vk.verify_strict(&m2.message, &Signature::from_bytes(&m2.signature)).is_err(), "{file}");
        assert_eq!(format::read_with_options(&t, &policy(&[&a])).unwrap_err().kind, ErrorKind::Untrusted, "{file}");

        // Without the digest recomputed it is corrupt, as `read` says.
        let mut c = signed.clone();
        c[200] ^= 1;
        assert_eq!(format::signed_message(&c).unwrap_err().kind, ErrorKind::BadModel, "{file}");
        assert_eq!(format::read(&c).unwrap_err().kind, ErrorKind::BadModel, "{file}");
    }
}
