//! The bodies of the fuzz targets: every reader of a file headstart writes, and the image
//! path. Each must return an error for bad bytes, never panic, hang or allocate without bound.
//! `tests/fuzz_corpus.rs` runs the committed corpus through these same functions in CI.

use std::path::Path;

use headstart::artifact::{self, Card};
use headstart::cache::{Manifest, Vectors};
use headstart::preprocess::{preprocess, Layout, Preprocessing, Preset};

/// A cache file (store or pending batch). What parses must survive a round trip unchanged.
pub fn cache_file(data: &[u8]) {
    if let Ok(vectors) = Vectors::decode(data) {
        let (bytes, _) = vectors.encode();
        assert_eq!(Vectors::decode(&bytes).as_ref(), Ok(&vectors));
    }
}

/// `dataset.json`. What parses must survive a round trip unchanged.
pub fn manifest(data: &[u8]) {
    if let Ok(manifest) = Manifest::from_slice(data) {
        assert_eq!(Manifest::from_slice(&manifest.to_bytes()).as_ref(), Ok(&manifest));
    }
}

/// `head.safetensors`: a classifier and its card; a classifier that loads must predict finite
/// probabilities.
pub fn head_file(data: &[u8]) {
    classifier_file(data);
}

/// `baseline.safetensors`, as [`head_file`]: every kind goes through the same loader.
pub fn baseline_file(data: &[u8]) {
    classifier_file(data);
}

fn classifier_file(data: &[u8]) {
    if let Ok((classifier, metadata)) = artifact::from_bytes(data) {
        let _ = Card::from_metadata(Path::new("fuzz"), &metadata);
        let x = ndarray::Array2::<f32>::zeros((1, classifier.n_features()));
        let p = classifier.predict_proba(x.view());
        assert!(p.iter().all(|v| v.is_finite()), "{p:?}");
    }
}

/// Image bytes to a network input, with a pixel limit that keeps a bomb from eating memory.
/// A decoder panic that `decode` catches is a skipped file, as in the binary, and so not a
/// finding; any other panic still reaches libFuzzer's hook, which aborts.
pub fn image(data: &[u8]) {
    // libFuzzer's hook aborts on every panic, caught or not: the binary's hook keeps it for
    // the panics that escape, or a planar tiled TIFF seed would stop fuzzing at once.
    headstart::preprocess::silence_caught_decoder_panics();
    let spec = Preprocessing {
        preset: Preset::Tflite,
        resize: 36,
        size: 32,
        layout: Layout::Nchw,
    };
    let mut out = vec![0f32; spec.len()];
    let mut resizer = fast_image_resize::Resizer::new();
    if preprocess(data, &spec, 1 << 22, &mut resizer, &mut out).is_ok() {
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
