//! The random changes that make one augmented view: a random resized crop, a horizontal flip
//! and a mild colour jitter, in the spirit of torchvision's `RandomResizedCrop`,
//! `RandomHorizontalFlip` and `ColorJitter`.
//!
//! Every draw comes from a generator seeded by the image's content, the view's index and the
//! settings' seed, so a view is the same whichever run, thread or batch computes it, and raising
//! the number of views leaves the earlier ones as they were.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::ContentKey;
use crate::preprocess::Crop;

/// How augmented views are drawn. The defaults are mild on purpose: a frozen network's features
/// move far with a tight crop, and the head only sees each view once per epoch at most.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AugmentSettings {
    /// Share of the image's area the crop covers, drawn uniformly in `[min, max]`, within (0, 1].
    /// torchvision's default starts at 0.08, which suits training a network from scratch, not
    /// features of a frozen one; 0.35 keeps the object in view in most photos.
    pub scale: (f64, f64),
    /// The crop's width over height, drawn log-uniformly in `[min, max]`, > 0.
    pub ratio: (f64, f64),
    /// Mirror left to right with probability 1/2.
    pub flip: bool,
    /// Brightness, contrast and saturation are each scaled by a factor drawn in `[1 - j, 1 + j]`,
    /// j in [0, 1).
    pub jitter: f64,
    /// Seeds every view's draws (with the image's content and the view's index).
    pub seed: u64,
}

impl Default for AugmentSettings {
    fn default() -> Self {
        AugmentSettings {
            scale: (0.35, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            flip: true,
            jitter: 0.1,
            seed: 0,
        }
    }
}

/// Why augmentation settings are not usable; names the flag to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AugmentError {
    /// `--augment-scale` is not `min,max` with 0 < min <= max <= 1.
    #[error("--augment-scale {0},{1}: give min,max with 0 < min <= max <= 1 (share of the image's area)")]
    Scale(f64, f64),
    /// `--augment-ratio` is not `min,max` with 0 < min <= max.
    #[error("--augment-ratio {0},{1}: give min,max with 0 < min <= max (width over height)")]
    Ratio(f64, f64),
    /// `--augment-jitter` is outside [0, 1).
    #[error("--augment-jitter {0}: give a value in [0, 1) (0 turns colour jitter off)")]
    Jitter(f64),
}

impl AugmentSettings {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), AugmentError> {
        let (lo, hi) = self.scale;
        if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
            return Err(AugmentError::Scale(lo, hi));
        }
        let (lo, hi) = self.ratio;
        if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
            return Err(AugmentError::Ratio(lo, hi));
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(AugmentError::Jitter(self.jitter));
        }
        Ok(())
    }
}

/// What one view does to the image; drawn by [`Draw::new`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    /// The part of the upright image that becomes the network's input.
    pub crop: Crop,
    /// Whether the input is mirrored left to right.
    pub flip: bool,
    /// Brightness, contrast and saturation factors, in that order of application.
    pub colour: [f64; 3],
}

impl Draw {
    /// The draws of view `index` of the image with content `key`, `width` x `height` pixels
    /// upright.
    pub fn new(settings: &AugmentSettings, key: &ContentKey, index: u32, width: u32, height: u32) -> Draw {
        let mut rng = view_rng(settings.seed, key, index);
        let crop = random_crop(&mut rng, settings, width as f64, height as f64);
        let flip = settings.flip && rng.gen_bool(0.5);
        let j = settings.jitter;
        let mut factor = || if j > 0.0 { rng.gen_range(1.0 - j..=1.0 + j) } else { 1.0 };
        let colour = [factor(), factor(), factor()];
        Draw { crop, flip, colour }
    }
}

fn view_rng(seed: u64, key: &ContentKey, index: u32) -> ChaCha8Rng {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update(key);
    hasher.update(index.to_le_bytes());
    ChaCha8Rng::from_seed(hasher.finalize().into())
}

/// torchvision's `RandomResizedCrop.get_params`: up to 10 tries at an area share and a
/// log-uniform aspect ratio that fit inside the image, else the centred crop of the ratio range
/// clamped to the image's own.
fn random_crop(rng: &mut ChaCha8Rng, settings: &AugmentSettings, w: f64, h: f64) -> Crop {
    let area = w * h;
    let (log_lo, log_hi) = (settings.ratio.0.ln(), settings.ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.gen_range(settings.scale.0..=settings.scale.1);
        let ratio = rng.gen_range(log_lo..=log_hi).exp();
        let (cw, ch) = ((target * ratio).sqrt(), (target / ratio).sqrt());
        if cw <= w && ch <= h {
            let left = rng.gen_range(0.0..=w - cw);
            let top = rng.gen_range(0.0..=h - ch);
            return Crop {
                left,
                top,
                width: cw,
                height: ch,
            };
        }
    }
    let own = w / h;
    let (cw, ch) = if own < settings.ratio.0 {
        (w, w / settings.ratio.0)
    } else if own > settings.ratio.1 {
        (h * settings.ratio.1, h)
    } else {
        (w, h)
    };
    Crop {
        left: (w - cw) / 2.0,
        top: (h - ch) / 2.0,
        width: cw,
        height: ch,
    }
}

/// Mirrors square RGB pixels (`size * size * 3` bytes) left to right, in place.
pub fn flip_horizontally(pixels: &mut [u8], size: usize) {
    for row in pixels.chunks_exact_mut(size * 3) {
        let (mut a, mut b) = (0, size - 1);
        while a < b {
            for c in 0..3 {
                row.swap(a * 3 + c, b * 3 + c);
            }
            a += 1;
            b -= 1;
        }
    }
}

/// Scales brightness, then contrast (around the mean grey level), then saturation (around each
/// pixel's grey), as torchvision's `adjust_*` functions do, rounding back to bytes.
pub fn jitter_colour(pixels: &mut [u8], [brightness, contrast, saturation]: [f64; 3]) {
    if [brightness, contrast, saturation] == [1.0; 3] {
        return;
    }
    let grey = |p: [f64; 3]| 0.2989 * p[0] + 0.587 * p[1] + 0.114 * p[2];
    let clamp = |v: f64| v.clamp(0.0, 255.0);
    let mut values: Vec<[f64; 3]> = pixels
        .chunks_exact(3)
        .map(|p| [0, 1, 2].map(|c| clamp(p[c] as f64 * brightness)))
        .collect();
    let mean = values.iter().map(|&p| grey(p)).sum::<f64>() / values.len().max(1) as f64;
    for p in &mut values {
        *p = p.map(|v| clamp((v - mean) * contrast + mean));
        let g = grey(*p);
        *p = p.map(|v| clamp(g + (v - g) * saturation));
    }
    for (out, p) in pixels.chunks_exact_mut(3).zip(values) {
        for c in 0..3 {
            out[c] = p[c].round() as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_is_the_same_for_the_same_seed_content_and_index_only() {
        let s = AugmentSettings::default();
        let key = [7u8; 32];
        let a = Draw::new(&s, &key, 3, 640, 480);
        assert_eq!(a, Draw::new(&s, &key, 3, 640, 480));
        assert_ne!(a, Draw::new(&s, &key, 4, 640, 480));
        assert_ne!(a, Draw::new(&s, &[8u8; 32], 3, 640, 480));
        assert_ne!(a, Draw::new(&AugmentSettings { seed: 1, ..s }, &key, 3, 640, 480));
    }

    #[test]
    fn crops_stay_inside_the_image_and_within_the_asked_area_and_ratio() {
        let s = AugmentSettings::default();
        let mut flips = 0;
        for i in 0..500 {
            let (w, h) = (640.0, 480.0);
            let d = Draw::new(&s, &[1u8; 32], i, w as u32, h as u32);
            let c = d.crop;
            assert!(c.left >= 0.0 && c.top >= 0.0, "{c:?}");
            assert!(c.left + c.width <= w + 1e-9 && c.top + c.height <= h + 1e-9, "{c:?}");
            let share = c.width * c.height / (w * h);
            assert!((s.scale.0 - 1e-9..=s.scale.1 + 1e-9).contains(&share), "{share}");
            let ratio = c.width / c.height;
            assert!((s.ratio.0 - 1e-9..=s.ratio.1 + 1e-9).contains(&ratio), "{ratio}");
            for f in d.colour {
                assert!((0.9 - 1e-12..=1.1 + 1e-12).contains(&f), "{f}");
            }
            flips += d.flip as usize;
        }
        assert!((200..300).contains(&flips), "{flips} of 500 views flipped");
    }

    #[test]
    fn a_crop_that_cannot_fit_falls_back_to_the_centre() {
        // A 10:1 strip with ratios of at most 4:3 and the full area asked: never fits.
        let s = AugmentSettings {
            scale: (1.0, 1.0),
            ..AugmentSettings::default()
        };
        let c = Draw::new(&s, &[0u8; 32], 0, 1000, 100).crop;
        assert!(
            (c.height - 100.0).abs() < 1e-9 && (c.width - 100.0 * 4.0 / 3.0).abs() < 1e-9,
            "{c:?}"
        );
        assert!((c.left - (1000.0 - c.width) / 2.0).abs() < 1e-9, "{c:?}");
    }

    #[test]
    fn settings_outside_their_ranges_name_their_flag() {
        let bad = |s: AugmentSettings| s.validate().unwrap_err().to_string();
        let d = AugmentSettings::default();
        assert!(bad(AugmentSettings { scale: (0.0, 1.0), ..d }).contains("--augment-scale"));
        assert!(bad(AugmentSettings { scale: (0.5, 1.2), ..d }).contains("--augment-scale"));
        assert!(bad(AugmentSettings { ratio: (2.0, 1.0), ..d }).contains("--augment-ratio"));
        assert!(bad(AugmentSettings { jitter: 1.0, ..d }).contains("--augment-jitter"));
        assert!(d.validate().is_ok());
    }

    #[test]
    fn flipping_mirrors_each_row_and_twice_is_nothing() {
        // 2 x 2 pixels: row 0 = red, green; row 1 = blue, white.
        let original = vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255];
        let mut p = original.clone();
        flip_horizontally(&mut p, 2);
        assert_eq!(p, vec![0, 255, 0, 255, 0, 0, 255, 255, 255, 0, 0, 255]);
        flip_horizontally(&mut p, 2);
        assert_eq!(p, original);
    }

    #[test]
    fn colour_jitter_matches_torchvision_on_float_pixels() {
        // Golden values from torchvision 0.29.2 (torch 2.15.0) on the same pixels as floats:
        //   x = torch.tensor([[[51, 204]], [[102, 26]], [[153, 128]]], dtype=torch.float32) / 255
        //   y = TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(x, 1.1), 0.9), 1.05)
        //   (y * 255).round()  ->  R 59 218, G 112 33, B 165 139
        let mut p = [51, 102, 153, 204, 26, 128];
        jitter_colour(&mut p, [1.1, 0.9, 1.05]);
        let want = [59, 112, 165, 218, 33, 139];
        for (got, want) in p.iter().zip(want) {
            assert_eq!(*got, want, "{p:?}");
        }
        let mut same = [1, 2, 3];
        jitter_colour(&mut same, [1.0; 3]);
        assert_eq!(same, [1, 2, 3]);
    }
}
