//! Images to embeddings in batches, shared by `extract` (which caches them) and `predict` (which
//! classifies them): decoding and resizing run on the rayon pool one batch ahead of ONNX
//! Runtime, through a channel of two batches, so the network does not wait for images. A file
//! that cannot be read or decoded, or that the network turns into NaN, is reported and the run
//! goes on.

use std::path::PathBuf;

use fast_image_resize::Resizer;
use rayon::prelude::*;

use crate::backbone::{Backbone, BackboneError};
use crate::dataset::Skipped;
use crate::preprocess::{decode_at_least, normalise, Decoded, PreprocessError, Preprocessing};
pub use crate::views::Render;

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

/// A decoded batch: the input tensor, the inputs in it as (job index, render), and the jobs
/// that failed with their reasons.
struct Batch {
    pixels: Vec<f32>,
    inputs: Vec<(usize, Render)>,
    failed: Vec<(usize, String)>,
}

/// One image file and the network inputs to make of it: its plain crop, or views of it. The file
/// is read and decoded once for all of them.
#[derive(Debug, Clone)]
pub struct Job {
    /// The image file.
    pub file: PathBuf,
    /// The inputs to make, each embedded as one row.
    pub renders: Vec<Render>,
}

/// Makes one network input's RGB bytes for `(job index, render, decoded image)`;
/// [`plain_crop`] for the plain centre crop and its mirror, [`crate::views::render`] for views.
pub type Renderer<'a> = dyn Fn(usize, Render, &Decoded, &mut Resizer) -> Result<Vec<u8>, PreprocessError> + Sync + 'a;

/// The [`Renderer`] of the plain crop and its mirror image, for jobs without augmented views.
pub fn plain_crop(
    spec: Preprocessing,
) -> impl Fn(usize, Render, &Decoded, &mut Resizer) -> Result<Vec<u8>, PreprocessError> + Sync {
    move |_, what, decoded, resizer| crate::views::render(decoded, &[0; 32], what, None, &spec, resizer)
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
    let jobs: Vec<Job> = files
        .iter()
        .map(|file| Job {
            file: file.clone(),
            renders: vec![Render::Centre],
        })
        .collect();
    let render = plain_crop(backbone.preprocessing);
    let mut indices = Vec::new();
    embed_jobs(
        backbone,
        &jobs,
        &render,
        &|_, _, _| {},
        batch_size,
        max_pixels,
        progress,
        |inputs, dim, rows| {
            indices.clear();
            indices.extend(inputs.iter().map(|&(i, _)| i));
            on_batch(&indices, dim, rows)
        },
    )
}

/// Sees each decoded image once, by job index, before its inputs are made: `extract` keeps the
/// image's pixel fingerprint this way without decoding it again.
pub type OnDecoded<'a> = dyn Fn(usize, &Decoded, &mut Resizer) + Sync + 'a;

/// [`embed_files`] for jobs of any number of inputs each: a batch holds the inputs of whole jobs,
/// about `batch_size` of them (a job with more inputs makes a batch of its own).
/// `on_batch(inputs, dim, rows)` gets each row's job index and render. A job whose file cannot
/// be decoded fails once, whatever its number of inputs; one whose inputs the network turns into
/// NaN or infinity fails once per such input.
#[allow(clippy::too_many_arguments)]
pub fn embed_jobs<E: From<BackboneError> + Send>(
    backbone: &mut Backbone,
    jobs: &[Job],
    render: &Renderer,
    on_decoded: &OnDecoded,
    batch_size: usize,
    max_pixels: u64,
    progress: &dyn Progress,
    mut on_batch: impl FnMut(&[(usize, Render)], usize, &[f32]) -> Result<(), E>,
) -> Result<Vec<(usize, String)>, E> {
    let spec = backbone.preprocessing;
    let per_image = spec.len();
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(2);
    let mut failed = Vec::new();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for chunk in batches(jobs, batch_size.max(1)) {
                let results: Vec<Result<Vec<f32>, String>> = chunk
                    .clone()
                    .into_par_iter()
                    .map_init(Resizer::new, |resizer, i| {
                        let job = &jobs[i];
                        let bytes = std::fs::read(&job.file).map_err(|e| format!("cannot read: {e}"))?;
                        let decoded =
                            decode_at_least(&bytes, max_pixels, spec.decode_side()).map_err(|e| e.to_string())?;
                        on_decoded(i, &decoded, resizer);
                        let mut out = vec![0f32; job.renders.len() * per_image];
                        for (&what, out) in job.renders.iter().zip(out.chunks_exact_mut(per_image)) {
                            let pixels = render(i, what, &decoded, resizer).map_err(|e| e.to_string())?;
                            normalise(&pixels, &spec, out);
                        }
                        Ok(out)
                    })
                    .collect();
                let mut batch = Batch {
                    pixels: Vec::new(),
                    inputs: Vec::new(),
                    failed: Vec::new(),
                };
                for (i, result) in chunk.zip(results) {
                    match result {
                        Ok(pixels) => {
                            batch.pixels.extend_from_slice(&pixels);
                            batch.inputs.extend(jobs[i].renders.iter().map(|&r| (i, r)));
                        }
                        Err(reason) => batch.failed.push((i, reason)),
                    }
                }
                if tx.send(batch).is_err() {
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
            if batch.inputs.is_empty() {
                continue;
            }
            let images = count_jobs(&batch.inputs);
            let (dim, rows) = backbone.embed(&batch.pixels, batch.inputs.len())?;
            let (inputs, rows) = finite_rows(&batch.inputs, dim, rows, &mut failed);
            if !inputs.is_empty() {
                on_batch(&inputs, dim, &rows)?;
            }
            progress.advance(images);
        }
        Ok::<_, E>(())
    })?;
    Ok(failed)
}

/// Consecutive ranges of jobs with about `batch_size` inputs each, never splitting a job.
fn batches(jobs: &[Job], batch_size: usize) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut inputs) = (0, 0);
    for (i, job) in jobs.iter().enumerate() {
        if inputs > 0 && inputs + job.renders.len() > batch_size {
            ranges.push(start..i);
            (start, inputs) = (i, 0);
        }
        inputs += job.renders.len();
    }
    if start < jobs.len() {
        ranges.push(start..jobs.len());
    }
    ranges
}

/// The number of distinct jobs among a batch's inputs (a job's inputs are adjacent).
fn count_jobs(inputs: &[(usize, Render)]) -> u64 {
    inputs.windows(2).filter(|w| w[0].0 != w[1].0).count() as u64 + u64::from(!inputs.is_empty())
}

/// Keeps the rows without NaN or infinity; the others go to `failed`, so that a vector that
/// would poison every head trained on it is never cached or used.
fn finite_rows(
    inputs: &[(usize, Render)],
    dim: usize,
    rows: Vec<f32>,
    failed: &mut Vec<(usize, String)>,
) -> (Vec<(usize, Render)>, Vec<f32>) {
    if rows.iter().all(|v| v.is_finite()) {
        return (inputs.to_vec(), rows);
    }
    let mut kept = (Vec::new(), Vec::new());
    for (&input, row) in inputs.iter().zip(rows.chunks_exact(dim)) {
        if row.iter().all(|v| v.is_finite()) {
            kept.0.push(input);
            kept.1.extend_from_slice(row);
        } else {
            failed.push((
                input.0,
                "the backbone gave NaN or infinite values for this image".into(),
            ));
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(inputs: usize) -> Job {
        Job {
            file: PathBuf::new(),
            renders: vec![Render::Centre; inputs],
        }
    }

    #[test]
    fn batches_hold_whole_jobs_of_about_the_batch_size() {
        let jobs: Vec<Job> = [1, 1, 1, 3, 5, 1].into_iter().map(job).collect();
        assert_eq!(batches(&jobs, 4), vec![0..3, 3..4, 4..5, 5..6]);
        assert_eq!(batches(&jobs, 100), vec![0..6]);
        assert_eq!(batches(&jobs[..0], 4), Vec::<std::ops::Range<usize>>::new());
        let inputs = [(0, Render::Centre), (0, Render::Mirrored), (2, Render::Centre)];
        assert_eq!(count_jobs(&inputs), 2);
        assert_eq!(count_jobs(&[]), 0);
    }
}
