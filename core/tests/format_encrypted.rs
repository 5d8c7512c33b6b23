//! Encrypted `.mdm` files (ChaCha20-Poly1305, META in clear) on the real default models:
//! round trip, no key, another key, tampered ciphertext or clear metadata (with the digest
//! recomputed, as anyone can), encrypt-then-sign under a trust policy, and `peek_encrypted`.

use mdeploy_core::format::{self, codes, DecryptionKey, ReadOptions, SecretKey};
use mdeploy_core::ErrorKind;
use mdeploy_testkit::mnist::default_model_files as default_models;

// Fixed test keys and nonces: reproducible, and obviously nobody's real key. (The CLI takes both
// from the operating system's CSPRNG.)
fn key(n: u8) -> DecryptionKey {
    DecryptionKey::from_bytes(&[n; 32])
}
const NONCE: [u8; 12] = [3; 12];

fn with_key(k: &DecryptionKey) -> ReadOptions {
    ReadOptions { decryption_key: Some(k.clone()), ..Default::default() }
}

fn err(r: mdeploy_core::Result<(mdeploy_core::Model, format::FileInfo)>) -> mdeploy_core::Error {
    match r {
        Ok(_) => panic!("loaded a file that must be refused"),
        Err(e) => e,
    }
}

#[test]
fn every_default_model_encrypts_and_decrypts_to_the_same_model() {
    let k = key(1);
    for (file, bytes) in default_models() {
        let original = format::read(&bytes).unwrap();
        let sealed = format::encrypt(&bytes, &k, &NONCE).unwrap();
        assert_eq!(&sealed[12..16], &codes::flag::ENCRYPTED.to_le_bytes(), "{file}");
        // No tensor byte is in clear: the largest f32 weight run of the original does not
        // appear in the encrypted file.
        let (_, info) = format::read_with_info(&bytes).unwrap();
        let t = info.tensors.iter().max_by_key(|t| t.stored_bytes).unwrap();
        let probe = &bytes[t.offset as usize..t.offset as usize + 64];
        assert!(!sealed.windows(64).any(|w| w == probe), "{file}: weights in clear");

        let (model, info) = format::read_with_options(&sealed, &with_key(&k)).unwrap();
        assert_eq!(model, original, "{file}");
        assert_eq!(info.tensors.len(), format::read_with_info(&bytes).unwrap().1.tensors.len());
        // decrypt() gives the plain canonical file back.
        let plain = format::decrypt(&sealed, &k).unwrap();
        assert_eq!(plain, format::write(&original).unwrap(), "{file}");
        // Without the key: the clear metadata and the key id, nothing else.
        let (meta, _, id) = format::peek_encrypted(&sealed).unwrap().unwrap();
        assert_eq!(meta, original.meta);
        assert_eq!(id, k.key_id());
        assert!(format::peek_encrypted(&bytes).unwrap().is_none());
    }
}

#[test]
fn no_key_another_key_or_tampering_is_decrypt_failed() {
    let k = key(1);
    let other = key(2);
    let (file, bytes) = &default_models()[1];
    let sealed = format::encrypt(bytes, &k, &NONCE).unwrap();
    let id = k.key_id().to_string();

    for e in [err(format::read_with_info(&sealed)), err(format::read_with_options(&sealed, &ReadOptions::default()))] {
        assert_eq!(e.kind, ErrorKind::DecryptFailed, "{e}");
        assert_eq!(e.code(), "DECRYPT_FAILED");
        assert!(e.message.contains("encrypted") && e.message.contains(&id) && e.message.contains("decryption key"), "{e}");
    }
    let e = err(format::read_with_options(&sealed, &with_key(&other)));
    assert_eq!(e.kind, ErrorKind::DecryptFailed, "{e}");
    assert!(e.message.contains(&id) && e.message.contains(&other.key_id().to_string()), "{e}");

    // A key with the right id but other bytes cannot be made (the id is a hash of the key), so
    // authentication failure is tested by changing the file and recomputing its digest: a bit of
    // the ciphertext, of the tag, of the nonce, or of the clear META (associated data).
    let n = u32::from_le_bytes(sealed[24..28].try_into().unwrap()) as usize;
    let entry = |i: usize| {
        let e = 64 + 24 * i;
        let off = u64::from_le_bytes(sealed[e + 8..e + 16].try_into().unwrap()) as usize;
        let len = u64::from_le_bytes(sealed[e + 16..e + 24].try_into().unwrap()) as usize;
        (off, len)
    };
    assert_eq!(n, 2);
    let (meta_off, meta_len) = entry(0);
    let (enc_off, enc_len) = entry(1);
    let nonce_at = enc_off + 16;
    for (what, at) in [
        ("ciphertext", enc_off + codes::encryption::HEADER_LEN + 100),
        ("ciphertext end", enc_off + enc_len / 2),
        ("tag", enc_off + enc_len - 1),
        ("nonce", nonce_at),
        ("clear model name", meta_off + 4),
        ("clear META end", meta_off + meta_len - 1),
    ] {
        let mut t = sealed.clone();
        t[at] ^= 0x10;
        let e = err(format::read_with_options(&t, &with_key(&k)));
        assert_eq!(e.kind, ErrorKind::BadModel, "{what}: the digest catches it first: {e}");
        let t = mdeploy_testkit::reseal(t);
        let e = err(format::read_with_options(&t, &with_key(&k)));
        assert_eq!(e.kind, ErrorKind::DecryptFailed, "{file} {what}: {e}");
        assert!(e.message.contains("changed after it was encrypted"), "{e}");
    }
    // Encrypting twice, or refusing what is already encrypted.
    let e = format::encrypt(&sealed, &k, &NONCE).unwrap_err();
    assert!(e.message.contains("already encrypted"), "{e}");
}

#[test]
fn encrypt_then_sign_is_checked_before_decrypting() {
    let k = key(1);
    let a = SecretKey::from_seed(&[5; 32]);
    let b = SecretKey::from_seed(&[6; 32]);
    let (_, bytes) = &default_models()[0];
    let original = format::read(bytes).unwrap();
    let sealed = format::encrypt(bytes, &k, &NONCE).unwrap();
    // Signing needs no decryption key, and keeps the ciphertext as it is.
    let signed = format::sign(&sealed, &a).unwrap();
    assert_eq!(
        u32::from_le_bytes(signed[12..16].try_into().unwrap()),
        codes::flag::ENCRYPTED | codes::flag::SIGNED
    );
    let trust_a = ReadOptions {
        trusted_keys: Some(vec![a.public_key()]),
        decryption_key: Some(k.clone()),
    };
    let (model, info) = format::read_with_options(&signed, &trust_a).unwrap();
    assert_eq!(model, original);
    assert!(info.signature.unwrap().verified);
    // The signature is checked first: a file signed by another key is UNTRUSTED even with the
    // right decryption key, and a trusted one without the key is DECRYPT_FAILED.
    let by_b = format::sign(&sealed, &b).unwrap();
    assert_eq!(err(format::read_with_options(&by_b, &trust_a)).kind, ErrorKind::Untrusted);
    let no_key = ReadOptions { trusted_keys: Some(vec![a.public_key()]), decryption_key: None };
    assert_eq!(err(format::read_with_options(&signed, &no_key)).kind, ErrorKind::DecryptFailed);
    // Tampering with the ciphertext of a signed file (digest recomputed): the signature fails
    // before anything is decrypted.
    let mut t = signed.clone();
    let mid = t.len() / 2;
    t[mid] ^= 1;
    let end = t.len() - codes::signature::SECTION_LEN;
    let d = {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(&t[..32]);
        h.update(&t[64..end]);
        h.finalize()
    };
    t[32..64].copy_from_slice(&d);
    let e = err(format::read_with_options(&t, &trust_a));
    assert_eq!(e.kind, ErrorKind::Untrusted, "{e}");
    // decrypt() of a signed encrypted file gives the plain model.
    assert_eq!(format::decrypt(&signed, &k).unwrap(), format::write(&original).unwrap());
}

#[test]
fn key_files_round_trip_and_name_mistakes() {
    let k = key(7);
    let text = k.to_text();
    assert!(text.starts_with("mdeploy-chacha20poly1305-key "));
    assert_eq!(DecryptionKey::from_text(&text).unwrap().key_id(), k.key_id());
    let signing = SecretKey::from_seed(&[1; 32]).to_text();
    let e = DecryptionKey::from_text(&signing).unwrap_err();
    assert!(e.message.contains("signing key") && e.message.contains(".enckey"), "{e}");
    // Debug never shows the key.
    let shown = format!("{k:?}");
    assert!(shown.contains(&k.key_id().to_string()) && !shown.contains("0707070707"), "{shown}");
}

/// `decrypt_in_memory` (what the npm package's .wasm calls): the inner file as encrypted, after
/// the same checks as reading the encrypted file, with the same errors; `None` for a plain file.
#[test]
fn decrypt_in_memory_checks_as_reading_does_and_returns_the_inner_file() {
    let k = key(1);
    for (file, bytes) in default_models() {
        let original = format::read(&bytes).unwrap();
        let sealed = format::encrypt(&bytes, &k, &NONCE).unwrap();
        let plain = format::decrypt_in_memory(&sealed, &k).unwrap().expect("encrypted");
        assert_eq!(&plain[..], &format::write(&original).unwrap()[..], "{file}");
        assert_eq!(format::read(&plain).unwrap(), original, "{file}");
        assert!(format::decrypt_in_memory(&bytes, &k).unwrap().is_none(), "{file}: not encrypted");
    }
    let (_, bytes) = &default_models()[1];
    let sealed = format::encrypt(bytes, &k, &NONCE).unwrap();
    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let tampered = mdeploy_testkit::reseal(tampered);
    let mut truncated = sealed.clone();
    truncated.truncate(sealed.len() - 100);
    for (what, file, k) in [("another key", &sealed, key(2)), ("tampered", &tampered, k.clone()), ("truncated", &truncated, k.clone())] {
        let want = err(format::read_with_options(file, &with_key(&k)));
        let got = format::decrypt_in_memory(file, &k).err().unwrap_or_else(|| panic!("{what}: decrypted"));
        assert_eq!((got.kind, &got.message), (want.kind, &want.message), "{what}");
    }
}
