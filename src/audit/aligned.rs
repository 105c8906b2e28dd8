//! How alike two images' pixels are once one is aligned on the other: the check that tells a
//! resized, re-encoded, slightly cropped or brightened copy from a look-alike photo, which pooled
//! embeddings cannot (BENCHMARKS.md, "Data audit").
//!
//! Each image is a small grey thumbnail of the whole picture ([`crate::cache::fingerprints`]). The
//! similarity of `a` and `b` is the best normalised cross-correlation between all of `b` and a
//! window of `a` (or the other way round) over windows that crop up to about 15% of each side:
//! a copy cut from an image is a window of it at the same aspect. Normalised cross-correlation
//! ignores brightness and contrast changes, and the thumbnail's blur the JPEG noise and the
//! resampling. Windows are searched coarse to fine: a grid of steps of 5%, then twice the best
//! one's 26 neighbours at 1.25%, the refinement only for pairs whose coarse best is within
//! [`REFINE_MARGIN`] of the threshold.
//!
//! The constants were chosen with a NumPy prototype of this search on PIL thumbnails (grey,
//! box-filtered to 32, Gaussian blur 0.5) of flowers5 and 300 generated copies, and the
//! threshold measured with this code (BENCHMARKS.md, "Data audit").

use rayon::prelude::*;

pub use crate::cache::fingerprints::SIDE;
/// Samples per side of the windows compared.
const GRID: usize = 16;
/// The coarse search's step, as a share of the side.
const COARSE: f32 = 0.05;
/// The largest crop of the coarse search, as a share of the side.
const COARSE_CROP: f32 = 0.10;
/// The fine search's step.
const FINE: f32 = 0.0125;
/// Rounds of the fine search.
const ROUNDS: usize = 2;
/// Pairs whose coarse best is this far below the threshold are not refined. In the prototype on
/// flowers5 and its copies, the refinement added at most 0.11 to any pair, and every pair that
/// ended at 0.97 or more started from at least 0.89.
pub const REFINE_MARGIN: f32 = 0.15;

/// One window: the share of each side cropped, and the offsets of its top-left corner as
/// shares of the side (each between 0 and the crop).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Window {
    crop: f32,
    x: f32,
    y: f32,
}

impl Window {
    fn inside(&self) -> bool {
        // A little slack so that the grid's own points pass despite rounding.
        let eps = 1e-6;
        self.crop >= -eps && self.x >= -eps && self.y >= -eps && self.x <= self.crop + eps && self.y <= self.crop + eps
    }
}

/// An image's thumbnail ready for comparison: its pixels, and all of it sampled and normalised.
#[derive(Clone, Debug)]
pub struct Prepared {
    pixels: Vec<u8>,
    whole: Option<Vec<f32>>,
}

impl Prepared {
    /// From a `SIDE` x `SIDE` grey thumbnail, row by row.
    pub fn new(pixels: Vec<u8>) -> Prepared {
        assert_eq!(pixels.len(), SIDE * SIDE, "a thumbnail of SIDE x SIDE pixels");
        let mut whole = vec![0.0; GRID * GRID];
        sample(
            &pixels,
            Window {
                crop: 0.0,
                x: 0.0,
                y: 0.0,
            },
            &mut whole,
        );
        Prepared {
            pixels,
            whole: normalise(&mut whole).then_some(whole),
        }
    }
}

/// Fingerprints ready to compare, `None` where there is none.
pub fn prepare(grey: Vec<Option<Vec<u8>>>) -> Vec<Option<Prepared>> {
    grey.into_par_iter().map(|g| g.map(Prepared::new)).collect()
}

/// The similarity of two thumbnails, at most 1 (the same picture up to brightness and contrast),
/// or -1 when either is flat (a blank frame matches nothing by its pixels). `threshold` only
/// decides how much effort goes into a pair: a result well below it is the coarse search's.
pub fn similarity(a: &Prepared, b: &Prepared, threshold: f32) -> f32 {
    let (Some(whole_a), Some(whole_b)) = (&a.whole, &b.whole) else {
        return -1.0;
    };
    one_way(&a.pixels, whole_b, threshold).max(one_way(&b.pixels, whole_a, threshold))
}

/// The best correlation of a window of `pixels` with `whole` (normalised).
fn one_way(pixels: &[u8], whole: &[f32], threshold: f32) -> f32 {
    let mut buffer = vec![0.0; GRID * GRID];
    let mut score = |w: Window| -> f32 {
        sample(pixels, w, &mut buffer);
        if normalise(&mut buffer) {
            buffer.iter().zip(whole).map(|(a, b)| a * b).sum()
        } else {
            -1.0
        }
    };
    let mut best = (
        -1.0f32,
        Window {
            crop: 0.0,
            x: 0.0,
            y: 0.0,
        },
    );
    let steps = (COARSE_CROP / COARSE).round() as usize;
    for c in 0..=steps {
        for i in 0..=c {
            for j in 0..=c {
                let w = Window {
                    crop: c as f32 * COARSE,
                    x: i as f32 * COARSE,
                    y: j as f32 * COARSE,
                };
                let s = score(w);
                if s > best.0 {
                    best = (s, w);
                }
            }
        }
    }
    if best.0 < threshold - REFINE_MARGIN {
        return best.0;
    }
    for _ in 0..ROUNDS {
        let centre = best.1;
        for dc in [-FINE, 0.0, FINE] {
            for dx in [-FINE, 0.0, FINE] {
                for dy in [-FINE, 0.0, FINE] {
                    let w = Window {
                        crop: centre.crop + dc,
                        x: centre.x + dx,
                        y: centre.y + dy,
                    };
                    if w == centre || !w.inside() {
                        continue;
                    }
                    let s = score(w);
                    if s > best.0 {
                        best = (s, w);
                    }
                }
            }
        }
    }
    best.0
}

/// Samples `GRID` x `GRID` points evenly over the window, bilinearly, into `out`.
fn sample(pixels: &[u8], w: Window, out: &mut [f32]) {
    let scale = 1.0 - w.crop;
    let side = SIDE as f32;
    let coords = |offset: f32| {
        std::array::from_fn::<(usize, f32), GRID, _>(|k| {
            let u = (offset + scale * (k as f32 + 0.5) / GRID as f32) * side - 0.5;
            let i = (u.floor().max(0.0) as usize).min(SIDE - 2);
            (i, (u - i as f32).clamp(0.0, 1.0))
        })
    };
    let (xs, ys) = (coords(w.x), coords(w.y));
    for (row, &(y, fy)) in out.chunks_exact_mut(GRID).zip(&ys) {
        let (top, bottom) = (&pixels[y * SIDE..], &pixels[(y + 1) * SIDE..]);
        for (o, &(x, fx)) in row.iter_mut().zip(&xs) {
            let (tl, tr) = (f32::from(top[x]), f32::from(top[x + 1]));
            let (bl, br) = (f32::from(bottom[x]), f32::from(bottom[x + 1]));
            let t = tl + (tr - tl) * fx;
            let b = bl + (br - bl) * fx;
            *o = t + (b - t) * fy;
        }
    }
}

/// Zero mean and unit length in place; false for a flat (or nearly flat) sample.
fn normalise(v: &mut [f32]) -> bool {
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    v.iter_mut().for_each(|x| *x -= mean);
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    // Under a tenth of a grey level of spread per sample: nothing to correlate.
    if norm < 0.1 * (v.len() as f32).sqrt() {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth random picture of `SIDE` x `SIDE`, made by bilinear sampling of a coarse random
    /// grid, so that windows of it can be resampled like a photo: `window` picks the part of
    /// the underlying picture (crop and offsets, as in [`Window`]) and `gain` scales the values.
    fn picture(seed: u64, crop: f32, x: f32, y: f32, gain: f32) -> Vec<u8> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let coarse: Vec<f32> = (0..SIDE * SIDE).map(|_| rng.gen_range(0.0..255.0)).collect();
        // Smooth the noise with a 5x5 box so that sub-pixel shifts change it gently.
        let mut smooth = vec![0.0; SIDE * SIDE];
        for r in 0..SIDE {
            for c in 0..SIDE {
                let mut sum = 0.0;
                let mut n = 0.0;
                for dr in r.saturating_sub(2)..(r + 3).min(SIDE) {
                    for dc in c.saturating_sub(2)..(c + 3).min(SIDE) {
                        sum += coarse[dr * SIDE + dc];
                        n += 1.0;
                    }
                }
                smooth[r * SIDE + c] = sum / n;
            }
        }
        let mut out = vec![0; SIDE * SIDE];
        let scale = 1.0 - crop;
        for r in 0..SIDE {
            for c in 0..SIDE {
                let u =
                    ((x + scale * (c as f32 + 0.5) / SIDE as f32) * SIDE as f32 - 0.5).clamp(0.0, SIDE as f32 - 1.001);
                let v =
                    ((y + scale * (r as f32 + 0.5) / SIDE as f32) * SIDE as f32 - 0.5).clamp(0.0, SIDE as f32 - 1.001);
                let (i, j) = (u.floor() as usize, v.floor() as usize);
                let (fx, fy) = (u - i as f32, v - j as f32);
                let p = |a: usize, b: usize| smooth[b * SIDE + a];
                let t = p(i, j) + (p(i + 1, j) - p(i, j)) * fx;
                let b = p(i, j + 1) + (p(i + 1, j + 1) - p(i, j + 1)) * fx;
                out[r * SIDE + c] = ((t + (b - t) * fy) * gain).round().clamp(0.0, 255.0) as u8;
            }
        }
        out
    }

    #[test]
    fn a_cropped_brightened_copy_matches_and_another_picture_does_not() {
        let original = Prepared::new(picture(1, 0.0, 0.0, 0.0, 1.0));
        // 8% cropped off, shifted off the coarse grid, 10% brighter.
        let copy = Prepared::new(picture(1, 0.08, 0.03, 0.06, 1.1));
        let other = Prepared::new(picture(2, 0.0, 0.0, 0.0, 1.0));
        let same = similarity(&original, &copy, 0.97);
        assert!(same > 0.97, "copy scored {same}");
        // The other way round finds the same window.
        assert!((similarity(&copy, &original, 0.97) - same).abs() < 1e-6);
        let different = similarity(&original, &other, 0.97);
        assert!(different < 0.5, "another picture scored {different}");
        // An image is itself.
        assert!(similarity(&original, &original, 0.97) > 0.9999);
    }

    #[test]
    fn the_refinement_raises_a_copy_off_the_grid() {
        let original = Prepared::new(picture(3, 0.0, 0.0, 0.0, 1.0));
        let copy = Prepared::new(picture(3, 0.075, 0.0375, 0.0125, 1.0));
        let coarse_only = similarity(&original, &copy, 2.0 + REFINE_MARGIN);
        let refined = similarity(&original, &copy, 0.97);
        assert!(refined > coarse_only, "refined {refined}, coarse {coarse_only}");
        assert!(refined > 0.97, "refined {refined}");
    }

    #[test]
    fn a_flat_image_matches_nothing() {
        let flat = Prepared::new(vec![128; SIDE * SIDE]);
        let picture = Prepared::new(picture(4, 0.0, 0.0, 0.0, 1.0));
        assert_eq!(similarity(&flat, &picture, 0.97), -1.0);
        assert_eq!(similarity(&flat, &flat, 0.97), -1.0);
    }

    #[test]
    fn windows_sample_the_grid_they_cover() {
        // A left-to-right ramp: the whole image's samples rise evenly; a window that crops 50%
        // from the right covers the left half's values.
        let ramp: Vec<u8> = (0..SIDE * SIDE).map(|i| (i % SIDE) as u8).collect();
        let mut whole = vec![0.0; GRID * GRID];
        sample(
            &ramp,
            Window {
                crop: 0.0,
                x: 0.0,
                y: 0.0,
            },
            &mut whole,
        );
        assert!(
            (whole[0] - 0.5).abs() < 1e-5 && (whole[GRID - 1] - 30.5).abs() < 1e-5,
            "{:?}",
            &whole[..GRID]
        );
        let mut left = vec![0.0; GRID * GRID];
        sample(
            &ramp,
            Window {
                crop: 0.5,
                x: 0.0,
                y: 0.0,
            },
            &mut left,
        );
        assert!(
            (left[0] - 0.0).abs() < 1e-5 && (left[GRID - 1] - 15.0).abs() < 1e-5,
            "{:?}",
            &left[..GRID]
        );
    }
}
