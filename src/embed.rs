//! Images to embeddings in batches, shared by `extract` (which caches them) and `predict` (which
//! classifies them): decoding and resizing run on the rayon pool one batch ahead of ONNX
//! Runtime, through a channel of two batches, so the network does not wait for images. A file
//! that cannot be read or decoded, or that the network turns into NaN, is reported and the run
//! goes on.

use std::path::PathBuf;

use rayon::prelude::*;

use crate::backbone::{Backbone, BackboneError};
use crate::dataset::Skipped;
use crate::preprocess::preprocess;

/// Receives progress of the long part of the run; the CLI draws it, tests ignore it.
pub trait Progress: Sync {
    /// The long part of the run starts, with this many images to go.
    fn start(&self, _total: u64) {}
    /// This many more images are done, embedded or failed.
    fn advance(&self, _images: u64) {}
    /// A file was skipped; called as it happens so a long run shows problems early.
    fn skipped(&self, _file: &Skipped) {}
    /// Something the user should know that does not stop the run.
    fn warning(&self, _message: &str) {}
    /// The long part of the run is over.
    fn finish(&self) {}
}

/// No progress output.
pub struct Silent;
impl Progress for Silent {}

/// A decoded batch: the input tensor, the indices (into the file list) of the images in it, and
/// the files that failed with their reasons.
struct Batch {
    pixels: Vec<f32>,
    indices: Vec<usize>,
    failed: Vec<(usize, String)>,
}

/// Runs `files` through the backbone in batches of `batch_size`, decoding the next batch on the
/// rayon pool while the network works on the current one. `on_batch(indices, dim, rows)` gets
/// each batch's features as soon as they exist. Returns the files that could not be decoded,
/// or for which the network gave NaN or infinite values, by index, with the reason; they never
/// stop the run.
pub fn embed_files<E: From<BackboneError> + Send>(
    backbone: &mut Backbone,
    files: &[PathBuf],
    batch_size: usize,
    max_pixels: u64,
    progress: &dyn Progress,
    mut on_batch: impl FnMut(&[usize], usize, &[f32]) -> Result<(), E>,
) -> Result<Vec<(usize, String)>, E> {
    let spec = backbone.preprocessing;
    let per_image = spec.len();
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(2);
    let mut failed = Vec::new();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let indices: Vec<usize> = (0..files.len()).collect();
            for chunk in indices.chunks(batch_size.max(1)) {
                let mut pixels = vec![0f32; chunk.len() * per_image];
                let results: Vec<Result<(), String>> = pixels
                    .par_chunks_mut(per_image)
                    .zip(chunk.par_iter())
                    .map_init(fast_image_resize::Resizer::new, |resizer, (out, &i)| {
                        let bytes = std::fs::read(&files[i]).map_err(|e| format!("cannot read: {e}"))?;
                        preprocess(&bytes, &spec, max_pixels, resizer, out).map_err(|e| e.to_string())
                    })
                    .collect();
                // Failed images leave a gap; close it so the tensor holds only good ones.
                let mut good = Vec::with_capacity(chunk.len());
                let mut bad = Vec::new();
                for (&i, result) in chunk.iter().zip(results) {
                    match result {
                        Ok(()) => {
                            let (from, to) = ((good.len() + bad.len()) * per_image, good.len() * per_image);
                            pixels.copy_within(from..from + per_image, to);
                            good.push(i);
                        }
                        Err(reason) => bad.push((i, reason)),
                    }
                }
                pixels.truncate(good.len() * per_image);
                if tx
                    .send(Batch {
                        pixels,
                        indices: good,
                        failed: bad,
                    })
                    .is_err()
                {
                    break;
                }
            }
        });
        // Owned here, the receiver is dropped as soon as an error returns below, which unblocks
        // the decoding thread that the scope then joins; outside, the two would wait forever.
        let rx = rx;
        for batch in rx.iter() {
            progress.advance(batch.failed.len() as u64);
            failed.extend(batch.failed);
            if batch.indices.is_empty() {
                continue;
            }
            let (dim, rows) = backbone.embed(&batch.pixels, batch.indices.len())?;
            let (indices, rows) = finite_rows(&batch.indices, dim, rows, &mut failed);
            if !indices.is_empty() {
                on_batch(&indices, dim, &rows)?;
            }
            progress.advance(batch.indices.len() as u64);
        }
        Ok::<_, E>(())
    })?;
    Ok(failed)
}

/// Keeps the rows without NaN or infinity; the others go to `failed`, so that a vector that
/// would poison every head trained on it is never cached or used.
fn finite_rows(
    indices: &[usize],
    dim: usize,
    rows: Vec<f32>,
    failed: &mut Vec<(usize, String)>,
) -> (Vec<usize>, Vec<f32>) {
    if rows.iter().all(|v| v.is_finite()) {
        return (indices.to_vec(), rows);
    }
    let mut kept = (Vec::new(), Vec::new());
    for (&i, row) in indices.iter().zip(rows.chunks_exact(dim)) {
        if row.iter().all(|v| v.is_finite()) {
            kept.0.push(i);
            kept.1.extend_from_slice(row);
        } else {
            failed.push((i, "the backbone gave NaN or infinite values for this image".into()));
        }
    }
    kept
}
