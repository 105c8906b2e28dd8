//! Depthwise k×k convolution, stride 1, padded to keep the size, over channels-last maps: each
//! channel has its own k×k filter. Loops run over channels innermost, where the values are
//! contiguous, and over images in parallel. ONNX's weight is `[C, 1, k, k]`; the loops use its
//! transpose `[k·k, C]`.
//!
//! `y[n,h,w,c] = b[c] + Σ_{i,j} W[c,i,j] · x[n, h+i-p, w+j-p, c]`, zero outside the map.

use rayon::prelude::*;

/// Shape of a depthwise layer's maps and filter.
#[derive(Clone, Copy, Debug)]
pub(super) struct Shape {
    pub(super) height: usize,
    pub(super) width: usize,
    pub(super) channels: usize,
    pub(super) kernel: usize,
    pub(super) pad: usize,
}

impl Shape {
    /// The input pixels `(h, w, tap)` reads for each output pixel of row `h`, as (output column,
    /// input pixel index, tap index) triples; padding taps are left out.
    fn taps(&self, h: usize) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let k = self.kernel;
        (0..self.width).flat_map(move |w| {
            (0..k * k).filter_map(move |tap| {
                let (ih, iw) = (
                    (h + tap / k).checked_sub(self.pad)?,
                    (w + tap % k).checked_sub(self.pad)?,
                );
                (ih < self.height && iw < self.width).then_some((w, ih * self.width + iw, tap))
            })
        })
    }
}

/// ONNX `[C, 1, k, k]` to `[k·k, C]`, or back with `back`.
pub(super) fn transpose(w: &[f32], channels: usize, taps: usize, back: bool) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for c in 0..channels {
        for t in 0..taps {
            match back {
                false => out[t * channels + c] = w[c * taps + t],
                true => out[c * taps + t] = w[t * channels + c],
            }
        }
    }
    out
}

/// `y` for `n` images `x`; `wt` is the filter as `[k·k, C]`.
pub(super) fn forward(x: &[f32], wt: &[f32], b: Option<&[f32]>, shape: Shape, y: &mut [f32]) {
    let c = shape.channels;
    let image = shape.height * shape.width * c;
    y.par_chunks_mut(image).zip(x.par_chunks(image)).for_each(|(y, x)| {
        for h in 0..shape.height {
            for px in y[h * shape.width * c..(h + 1) * shape.width * c].chunks_exact_mut(c) {
                match b {
                    Some(b) => px.copy_from_slice(b),
                    None => px.fill(0.0),
                }
            }
            for (w, input, tap) in shape.taps(h) {
                let out = &mut y[(h * shape.width + w) * c..][..c];
                let (x, f) = (&x[input * c..][..c], &wt[tap * c..][..c]);
                for ((o, &x), &f) in out.iter_mut().zip(x).zip(f) {
                    *o += x * f;
                }
            }
        }
    });
}

/// Gradients of [`forward`]: `dwt` (as `[k·k, C]`) and `db` are written, `dx` is added to.
/// Each image's share of `dwt` and `db` is summed in image order, so the result does not
/// depend on how the images were spread over threads.
pub(super) fn backward(
    x: &[f32],
    wt: &[f32],
    dy: &[f32],
    shape: Shape,
    dwt: &mut [f32],
    db: Option<&mut [f32]>,
    dx: Option<&mut [f32]>,
) {
    let c = shape.channels;
    let image = shape.height * shape.width * c;
    let per_image = |x: &[f32], dy: &[f32], mut dx: Option<&mut [f32]>| {
        let mut dwt = vec![0.0f32; wt.len()];
        let mut db = vec![0.0f32; c];
        for h in 0..shape.height {
            for g in dy[h * shape.width * c..(h + 1) * shape.width * c].chunks_exact(c) {
                db.iter_mut().zip(g).for_each(|(d, &g)| *d += g);
            }
            for (w, input, tap) in shape.taps(h) {
                let g = &dy[(h * shape.width + w) * c..][..c];
                let (xs, f) = (&x[input * c..][..c], &wt[tap * c..][..c]);
                let d = &mut dwt[tap * c..][..c];
                for ((d, &g), &x) in d.iter_mut().zip(g).zip(xs) {
                    *d += g * x;
                }
                if let Some(dx) = dx.as_deref_mut() {
                    for ((d, &g), &f) in dx[input * c..][..c].iter_mut().zip(g).zip(f) {
                        *d += g * f;
                    }
                }
            }
        }
        (dwt, db)
    };
    let parts: Vec<(Vec<f32>, Vec<f32>)> = match dx {
        Some(dx) => dx
            .par_chunks_mut(image)
            .zip(x.par_chunks(image).zip(dy.par_chunks(image)))
            .map(|(dx, (x, dy))| per_image(x, dy, Some(dx)))
            .collect(),
        None => x
            .par_chunks(image)
            .zip(dy.par_chunks(image))
            .map(|(x, dy)| per_image(x, dy, None))
            .collect(),
    };
    dwt.fill(0.0);
    let mut bias = vec![0.0f32; c];
    for (part_w, part_b) in &parts {
        dwt.iter_mut().zip(part_w).for_each(|(d, &p)| *d += p);
        bias.iter_mut().zip(part_b).for_each(|(d, &p)| *d += p);
    }
    if let Some(db) = db {
        db.copy_from_slice(&bias);
    }
}
