//! IDX parsing: round trip, and untrusted input gives errors (never panics, never over-allocates).

use mdeploy_core::data::{
    parse_idx_images, parse_idx_labels, write_idx_images, write_idx_labels, Dataset,
};
use mdeploy_core::ErrorKind;

fn sample() -> (Vec<u8>, Vec<u8>) {
    let pixels: Vec<f32> = (0..3 * 4 * 5).map(|i| (i % 256) as f32 / 255.0).collect();
    (
        write_idx_images(&pixels, 3, 4, 5),
        write_idx_labels(&[7, 0, 9]),
    )
}

#[test]
fn round_trip_gives_back_the_pixels_and_labels() {
    let (img, lab) = sample();
    let d = Dataset::from_idx(&img, &lab).unwrap();
    assert_eq!(d.n, 3);
    assert_eq!(d.sample_shape, [1, 4, 5]);
    assert_eq!(d.labels, vec![7, 0, 9]);
    assert_eq!(d.image(1)[0], 20.0 / 255.0);
    assert!(d.images.iter().all(|v| (0.0..=1.0).contains(v)));
}

fn message(r: Result<impl std::fmt::Debug, mdeploy_core::Error>) -> String {
    let e = r.expect_err("must be rejected");
    assert_ne!(
        e.kind,
        ErrorKind::BadModel,
        "input errors are BAD_INPUT/UNSUPPORTED"
    );
    e.message
}

#[test]
fn truncated_files_are_rejected() {
    let (img, lab) = sample();
    for cut in [0, 3, 4, 10, 15, img.len() - 1] {
        let m = message(parse_idx_images(&img[..cut]));
        assert!(
            m.contains("short") || m.contains("truncated"),
            "cut {cut}: {m}"
        );
    }
    assert!(message(parse_idx_labels(&lab[..lab.len() - 1])).contains("truncated"));
}

#[test]
fn wrong_magic_gzip_and_swapped_files_are_rejected() {
    let (img, lab) = sample();
    let mut bad = img.clone();
    bad[0] = 0x50; // e.g. a PNG or text file
    assert!(message(parse_idx_images(&bad)).contains("magic"));
    let mut gz = vec![0x1f, 0x8b, 8, 0];
    gz.extend_from_slice(&img);
    assert!(message(parse_idx_images(&gz)).contains("gunzip"));
    // Labels given where images are expected and vice versa.
    assert!(message(parse_idx_images(&lab)).contains("swapped"));
    assert!(message(parse_idx_labels(&img)).contains("swapped"));
    let mut float = img.clone();
    float[2] = 0x0d;
    assert_eq!(
        parse_idx_images(&float).unwrap_err().kind,
        ErrorKind::Unsupported
    );
}

#[test]
fn count_mismatch_between_images_and_labels_is_rejected() {
    let (img, _) = sample();
    let m = message(Dataset::from_idx(&img, &write_idx_labels(&[1, 2])));
    assert!(m.contains("3 images") && m.contains("2 labels"), "{m}");
    // Trailing bytes after the declared payload are a mismatch too.
    let mut long = img.clone();
    long.push(0);
    assert!(message(parse_idx_images(&long)).contains("trailing"));
}

#[test]
fn huge_declared_dimensions_fail_without_allocating() {
    // 4 billion images of 65535×65535 in a 16-byte file: must fail on the size check, not
    // try to allocate.
    let mut huge = vec![0, 0, 8, 3];
    for d in [u32::MAX, 65535, 65535] {
        huge.extend_from_slice(&d.to_be_bytes());
    }
    let m = message(parse_idx_images(&huge));
    assert!(m.contains("truncated") || m.contains("overflow"), "{m}");
    let mut labels = vec![0, 0, 8, 1];
    labels.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(message(parse_idx_labels(&labels)).contains("truncated"));
    // Zero-sized or absurd image sides.
    let mut zero = vec![0, 0, 8, 3];
    for d in [0u32, 0, 28] {
        zero.extend_from_slice(&d.to_be_bytes());
    }
    assert!(message(parse_idx_images(&zero)).contains("each side"));
}
