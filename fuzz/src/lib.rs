//! The bodies of the fuzz targets: every reader of a file headstart writes, and the image
//! path. Each must return an error for bad bytes, never panic, hang or allocate without bound.
//! `tests/fuzz_corpus.rs` runs the committed corpus through these same functions in CI.

use std::path::Path;

use headstart::baseline::Baseline;
use headstart::cache::{Manifest, Vectors};
use headstart::head::Head;
use headstart::preprocess::{preprocess, Layout, Preprocessing, Preset};
use headstart::train::Card;

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

/// `head.safetensors`: the head and its card; a head that loads must predict finite
/// probabilities.
pub fn head_file(data: &[u8]) {
    if let Ok((head, metadata)) = Head::from_bytes(data) {
        let _ = Card::from_metadata(Path::new("fuzz"), &metadata);
        let x = ndarray::Array2::<f32>::zeros((1, head.n_features()));
        let p = head.predict_proba(x.view());
        assert!(p.iter().all(|v| v.is_finite()), "{p:?}");
    }
}

/// `baseline.safetensors`, as [`head_file`].
pub fn baseline_file(data: &[u8]) {
    if let Ok((baseline, metadata)) = Baseline::from_bytes(data) {
        let _ = Card::from_metadata(Path::new("fuzz"), &metadata);
        let x = ndarray::Array2::<f32>::zeros((1, baseline.n_features()));
        let p = baseline.predict_proba(x.view());
        assert!(p.iter().all(|v| v.is_finite()), "{p:?}");
    }
}

/// Image bytes to a network input, with a pixel limit that keeps a bomb from eating memory.
pub fn image(data: &[u8]) {
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
