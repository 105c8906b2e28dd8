//! HEIC and AVIF: found by the folder scan in every build; skipped with a reason that names the
//! `heif` feature without it; decoded by libheif, upright and within the pixel limit, with it.
//! The files and their reference pixels are in `tests/data/heif/` (made by `make.py` there).
//!
//! CI runs this file in both builds: `cargo test --release` and
//! `cargo test --release --features heif --test heif` (with libheif-dev installed).

mod common;

use std::path::PathBuf;

use common::{headstart, json, tiny_model};
use headstart::preprocess::{decode, decode_at_least, PreprocessError, DEFAULT_MAX_PIXELS};

/// The test files: name, format, and the size upright.
const FILES: [(&str, &str, (u32, u32)); 6] = [
    ("plain.heic", "HEIC", (64, 48)),
    ("rotated.heic", "HEIC", (48, 64)),
    ("deep.heic", "HEIC", (64, 48)),
    ("alpha.heic", "HEIC", (64, 48)),
    ("plain.avif", "AVIF", (64, 48)),
    ("rotated.avif", "AVIF", (48, 64)),
];

fn data(name: &str) -> PathBuf {
    common::repo().join("tests/data/heif").join(name)
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap()
}

/// A data set of two classes of three PNGs, with every HEIC and AVIF test file added to class
/// `c0`, one of them under an upper-case extension as phones name them.
fn dataset_with_heif(root: &std::path::Path) {
    for class in 0..2 {
        let dir = root.join(format!("c{class}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..3 {
            common::class_image(class, i, 40)
                .save(dir.join(format!("img{i}.png")))
                .unwrap();
        }
    }
    for (name, _, _) in FILES {
        let target = if name == "plain.heic" { "IMG_0001.HEIC" } else { name };
        std::fs::copy(data(name), root.join("c0").join(target)).unwrap();
    }
}

/// Every build lists `.heic`, `.heif`, `.hif` and `.avif` files as images: embedded with the
/// feature, skipped and named without it, never silently ignored.
#[test]
fn extract_reports_heic_and_avif_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    dataset_with_heif(&root);
    let out = headstart(&ws)
        .args(["--json", "extract", "--model", &tiny_model("tiny_nchw"), "--data"])
        .arg(&root)
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .code(if cfg!(feature = "heif") { 0 } else { 3 })
        .get_output()
        .clone();
    let s = json(&out.stdout);
    assert_eq!(s["ignored"].as_array().map_or(0, Vec::len), 0, "{s}");
    let skipped = s["skipped"].as_array().unwrap();
    if cfg!(feature = "heif") {
        assert_eq!(s["images"], 6 + FILES.len(), "{s}");
        assert!(skipped.is_empty(), "{skipped:?}");
    } else {
        assert_eq!(s["images"], 6, "{s}");
        assert_eq!(skipped.len(), FILES.len(), "{skipped:?}");
        for f in skipped {
            let (path, reason) = (f["path"].as_str().unwrap(), f["reason"].as_str().unwrap());
            let format = if path.to_lowercase().ends_with(".avif") {
                "AVIF"
            } else {
                "HEIC"
            };
            assert!(reason.starts_with(&format!("{format} image: ")), "{path}: {reason}");
            assert!(reason.contains("`heif` feature"), "{path}: {reason}");
        }
    }
}

/// Without the feature the bytes are still recognised (not "format not supported"), and the
/// reason says what to rebuild with.
#[cfg(not(feature = "heif"))]
#[test]
fn without_the_feature_heic_and_avif_are_refused_naming_it() {
    for (name, format, _) in FILES {
        for result in [
            decode(&bytes(name), DEFAULT_MAX_PIXELS),
            decode_at_least(&bytes(name), DEFAULT_MAX_PIXELS, 512).map(headstart::preprocess::Decoded::upright),
        ] {
            let err = result.unwrap_err();
            assert!(
                matches!(err, PreprocessError::NotInThisBuild { format: f } if f == format),
                "{name}: {err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!(
                    "{format} image: this build cannot decode {format}; rebuild with the `heif` feature: \
                     `cargo install --path . --locked --features heif` (needs libheif-dev)"
                )
            );
        }
    }
}

/// Each file's pixels against Python's decode of it (`<name>_<ext>.png`, see `make.py`):
/// within a level or two, except `rotated.avif`, whose 4:2:0 chroma Python's libavif upsamples
/// bilinearly and libheif by repeating samples (mean 2.2 levels measured; `make.py` says more).
#[cfg(feature = "heif")]
#[test]
fn pixels_match_the_python_decode() {
    for (name, _, size) in FILES {
        let ours = decode(&bytes(name), DEFAULT_MAX_PIXELS).unwrap();
        let reference = image::open(data(&name.replace('.', "_")).with_extension("png"))
            .unwrap()
            .into_rgb8();
        assert_eq!(ours.dimensions(), size, "{name}");
        assert_eq!(reference.dimensions(), size, "{name}");
        let diffs: Vec<u8> = ours
            .as_raw()
            .iter()
            .zip(reference.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        let max = *diffs.iter().max().unwrap();
        let mean = diffs.iter().map(|&d| d as f64).sum::<f64>() / diffs.len() as f64;
        if name == "rotated.avif" {
            assert!(mean < 3.0, "{name}: mean difference {mean:.3}");
        } else {
            assert!(max <= 2, "{name}: largest difference {max} (mean {mean:.3})");
        }
        // The reduced-decode entry point takes the same path for these formats.
        assert_eq!(
            decode_at_least(&bytes(name), DEFAULT_MAX_PIXELS, 8).unwrap().upright(),
            ours
        );
    }
}

/// The `rotated` files store a landscape picture with an `irot` box (and the HEIC also an EXIF
/// orientation tag saying the same, as iPhones write): upright, they are portrait with the
/// yellow mark at the top right. Applying the EXIF tag as well would put it at the bottom left.
#[cfg(feature = "heif")]
#[test]
fn rotated_files_come_out_upright_once() {
    let yellow = |p: &image::Rgb<u8>| p[0] > 200 && p[1] > 190 && p[2] < 60;
    for name in ["plain.heic", "plain.avif", "rotated.heic", "rotated.avif"] {
        let rgb = decode(&bytes(name), DEFAULT_MAX_PIXELS).unwrap();
        let (w, h) = rgb.dimensions();
        let (mark, others) = if name.starts_with("rotated") {
            assert_eq!((w, h), (48, 64), "{name}");
            ((w - 2, 1), [(1, 1), (1, h - 2), (w - 2, h - 2)])
        } else {
            assert_eq!((w, h), (64, 48), "{name}");
            ((1, 1), [(w - 2, 1), (1, h - 2), (w - 2, h - 2)])
        };
        assert!(yellow(rgb.get_pixel(mark.0, mark.1)), "{name}: no mark at {mark:?}");
        for (x, y) in others {
            assert!(!yellow(rgb.get_pixel(x, y)), "{name}: a mark at {:?}", (x, y));
        }
    }
}

/// The limit applies to the size upright, read before decoding.
#[cfg(feature = "heif")]
#[test]
fn images_above_the_pixel_limit_are_refused_before_decoding() {
    for (name, _, (w, h)) in FILES {
        let limit = w as u64 * h as u64;
        assert!(decode(&bytes(name), limit).is_ok(), "{name}");
        let err = decode(&bytes(name), limit - 1).unwrap_err();
        assert!(
            matches!(err, PreprocessError::TooLarge { width, height, limit: l } if (width, height) == (w, h) && l == limit - 1),
            "{name}: {err:?}"
        );
    }
}

/// Broken files are decode errors that name the format, never a crash.
#[cfg(feature = "heif")]
#[test]
fn broken_files_are_decode_errors() {
    for (name, format, _) in FILES {
        let whole = bytes(name);
        for cut in [whole.len() / 2, whole.len() - 20] {
            let err = decode(&whole[..cut], DEFAULT_MAX_PIXELS).unwrap_err();
            assert!(
                matches!(err, PreprocessError::Decode(_)),
                "{name} cut at {cut}: {err:?}"
            );
            assert!(err.to_string().contains(format), "{name} cut at {cut}: {err}");
        }
    }
    // A HEIF header and nothing else.
    let err = decode(&bytes("plain.heic")[..40], DEFAULT_MAX_PIXELS).unwrap_err();
    assert!(err.to_string().starts_with("cannot decode: "), "{err}");
}

/// Every single-byte corruption of every file: decoded or refused, never a crash (libheif and
/// its codecs are C and C++, out of `catch_unwind`'s reach).
#[cfg(feature = "heif")]
#[test]
fn flipped_bytes_are_decoded_or_refused() {
    // libde265 prints a line such as "SPS error: CB alignment" for some of them.
    let mut refused = 0;
    for (name, _, _) in FILES {
        let whole = bytes(name);
        for i in 0..whole.len() {
            let mut b = whole.clone();
            b[i] ^= 0x55;
            refused += decode(&b, DEFAULT_MAX_PIXELS).is_err() as usize;
        }
    }
    // Many are refused (a quarter of the first five files' flips with libheif 1.15); the rest only
    // change pixels.
    assert!(refused > 0);
}
