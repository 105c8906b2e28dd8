//! Decode coverage against PIL: every file of `tests/data/coverage` (written by its
//! `generate.py`: each claimed format in every colour type, bit depth, compression, planar
//! configuration, tiling and orientation that Pillow, tifffile and imagecodecs write, plus
//! hand-built BMPs, PNGs and JPEGs) is decoded with `headstart::preprocess::decode` and compared
//! with PIL's pixels for it (`exif_transpose`, then `convert("RGB")`), stored beside it.
//!
//! Two things are pinned. A file that decodes must have PIL's pixels within [`tolerance`]: a
//! wrong decode is worse than a skip, since nothing says so. (Where PIL itself misreads a file,
//! [`PIL_MISREADS`] names the file whose PIL pixels hold the same image, and says why.) And the set of files that are
//! skipped is exactly [`EXPECTED_SKIPS`], so that a regression fails the test and so does a
//! silent improvement (which must then be taken off the list, and the coverage table in
//! RELIABILITY.md updated).
//!
//! The per-format table RELIABILITY.md shows is printed by
//! `cargo test --release --test decode_coverage -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use headstart::preprocess::{decode, silence_caught_decoder_panics, DEFAULT_MAX_PIXELS};
use serde::Deserialize;

#[derive(Deserialize)]
struct Manifest {
    pillow: String,
    files: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    /// Relative to `tests/data/coverage`.
    file: String,
    /// As PIL names it: JPEG, PNG, GIF, WEBP, BMP, TIFF.
    format: String,
    width: u32,
    height: u32,
    /// A lossy compression (JPEG, lossy WebP, JPEG in TIFF): decoders may differ by more than
    /// rounding.
    lossy: bool,
}

/// Files that headstart skips, each with the reason. The reason is documentation; the test
/// checks the set of names. RELIABILITY.md, "Decode coverage against PIL", says why each kind
/// is left.
const EXPECTED_SKIPS: &[(&str, &str)] = &[
    (
        "jpeg/jpeg_lossless_sof3.jpg",
        "lossless JPEG (SOF3): neither zune-jpeg nor this libjpeg build reads it",
    ),
    (
        "jpeg/jpeg_lossless_sof3_grey.jpg",
        "lossless JPEG (SOF3): neither zune-jpeg nor this libjpeg build reads it",
    ),
    (
        "tiff/tiff_bilevel_pil_tiff_ccitt.tif",
        "CCITT modified Huffman (compression 2): not in the tiff crate",
    ),
    (
        "tiff/tiff_grey12_strip.tif",
        "12-bit samples: the tiff crate reads whole bytes or fewer than 8 bits only",
    ),
    (
        "tiff/tiff_grey12_tile.tif",
        "12-bit samples: the tiff crate reads whole bytes or fewer than 8 bits only",
    ),
];

/// Files PIL decodes wrongly, each with the file whose PIL pixels are the same image read right,
/// and why. The test checks that PIL's pixels for the two differ, then holds headstart's decode
/// of the first to the second's.
const PIL_MISREADS: &[(&str, &str, &str)] = &[
    (
        "tiff/tiff_cielab8_separate_strip.tif",
        "tiff/tiff_cielab8_strip.tif",
        "CIELab in separate planes: PIL reads each plane as unsigned bytes, so a* and b* lose \
         their sign (its contiguous path flips the sign bit, as TIFF's signed samples need); the \
         strip holds the same image's samples contiguously",
    ),
    (
        "tiff/tiff_cielab8_separate_tile.tif",
        "tiff/tiff_cielab8_tile.tif",
        "CIELab in separate planes, tiled: as above",
    ),
];

/// The largest difference per channel allowed between headstart's and PIL's pixels.
///
/// - Lossless data: 1, for rounding (16 to 8 bits is `v / 257` rounded in `image`, the high
///   byte in PIL; CMYK and YCbCr conversions round differently).
/// - Lossy data (JPEG, lossy WebP, JPEG in TIFF): 4. Decoders may differ by more than rounding:
///   libjpeg-turbo (PIL) and zune-jpeg (headstart) use different integer IDCTs and chroma
///   upsampling, libwebp and image-webp different upsampling. On this corpus the largest
///   difference is 2 (JPEG, JPEG in TIFF) and 0 (WebP).
fn tolerance(entry: &Entry) -> u8 {
    if entry.lossy {
        4
    } else {
        1
    }
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/coverage")
}

#[derive(Default)]
struct Row {
    files: usize,
    decoded: usize,
    skipped: Vec<String>,
}

#[test]
fn decodes_what_pil_decodes_with_the_same_pixels_or_skips_only_the_listed_files() {
    // A decoder panic is a skipped file here too; its reason is in the table.
    silence_caught_decoder_panics();
    let manifest: Manifest =
        serde_json::from_str(&std::fs::read_to_string(corpus().join("manifest.json")).unwrap()).unwrap();
    assert!(
        manifest.files.len() > 200,
        "the corpus is missing: run tests/data/coverage/generate.py"
    );
    let expected: BTreeSet<&str> = EXPECTED_SKIPS.iter().map(|(file, _)| *file).collect();
    let mut table: BTreeMap<&str, Row> = BTreeMap::new();
    let mut skipped = BTreeSet::new();
    let mut wrong = Vec::new();
    let mut worst: BTreeMap<(&str, bool), u8> = BTreeMap::new();
    for entry in &manifest.files {
        let bytes = std::fs::read(corpus().join(&entry.file)).unwrap();
        let pil = |file: &str| std::fs::read(corpus().join(format!("{file}.rgb"))).unwrap();
        let want = match PIL_MISREADS.iter().find(|(file, ..)| *file == entry.file) {
            Some((file, right, why)) => {
                assert_ne!(pil(file), pil(right), "PIL reads {file} right now: {why}");
                pil(right)
            }
            None => pil(&entry.file),
        };
        let row = table.entry(entry.format.as_str()).or_default();
        row.files += 1;
        match decode(&bytes, DEFAULT_MAX_PIXELS) {
            Err(e) => {
                row.skipped.push(format!("{}: {e}", entry.file));
                skipped.insert(entry.file.as_str());
            }
            Ok(got) if got.dimensions() != (entry.width, entry.height) => wrong.push(format!(
                "{}: {:?} instead of PIL's {}x{}",
                entry.file,
                got.dimensions(),
                entry.width,
                entry.height
            )),
            Ok(got) => {
                let diff = got
                    .as_raw()
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| a.abs_diff(*b))
                    .max()
                    .unwrap();
                let worst = worst.entry((entry.format.as_str(), entry.lossy)).or_default();
                *worst = (*worst).max(diff);
                if diff > tolerance(entry) {
                    let at = got
                        .as_raw()
                        .iter()
                        .zip(&want)
                        .position(|(a, b)| a.abs_diff(*b) == diff)
                        .unwrap();
                    let (pixel, channel) = (at / 3, at % 3);
                    wrong.push(format!(
                        "{}: differs from PIL by {diff} (allowed {}), first at x {} y {} channel {channel}: {:?} vs PIL's {:?}",
                        entry.file,
                        tolerance(entry),
                        pixel as u32 % entry.width,
                        pixel as u32 / entry.width,
                        &got.as_raw()[pixel * 3..pixel * 3 + 3],
                        &want[pixel * 3..pixel * 3 + 3],
                    ));
                } else {
                    row.decoded += 1;
                }
            }
        }
    }

    println!(
        "Decode coverage against PIL {} (tests/data/coverage):\n",
        manifest.pillow
    );
    println!("| format | files | decoded, PIL's pixels | skipped |");
    println!("|---|---|---|---|");
    let mut total = Row::default();
    for (format, row) in &table {
        println!("| {format} | {} | {} | {} |", row.files, row.decoded, row.skipped.len());
        total.files += row.files;
        total.decoded += row.decoded;
        total.skipped.extend(row.skipped.iter().cloned());
    }
    println!(
        "| all | {} | {} ({:.1}%) | {} |\n",
        total.files,
        total.decoded,
        100.0 * total.decoded as f64 / total.files as f64,
        total.skipped.len()
    );
    println!("Largest difference from PIL (format, lossy): {worst:?}\n");
    println!("Skipped:");
    for line in &total.skipped {
        println!("  {line}");
    }

    let regressions: Vec<_> = skipped.difference(&expected).collect();
    let improvements: Vec<_> = expected.difference(&skipped).collect();
    assert!(
        wrong.is_empty(),
        "decoded with pixels other than PIL's:\n{}",
        wrong.join("\n")
    );
    assert!(
        regressions.is_empty(),
        "skipped, but not in EXPECTED_SKIPS: {regressions:#?}"
    );
    assert!(
        improvements.is_empty(),
        "decoded now (with PIL's pixels): take them off EXPECTED_SKIPS and update RELIABILITY.md: {improvements:#?}"
    );
}
