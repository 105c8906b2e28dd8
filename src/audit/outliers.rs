//! Outliers: images far from every other image, such as a blank frame or a screenshot in a
//! class of photos.
//!
//! An image's score is the mean cosine similarity to its nearest neighbours, so it is low only
//! when nothing in the data set, of any class, looks like it. An image is reported when its
//! score lies more than [`SPREAD`] robust standard deviations (1.4826 times the median absolute
//! deviation, which one odd image cannot inflate) below the median score.

use super::{ImageRef, Outlier};

/// How many robust standard deviations below the median score an image must lie to be
/// reported. With EfficientNet-Lite0: of hymenoptera's 398 files the one that is no photo (a
/// "not found" placeholder) lies 6.6 below and no photo beyond 4.5; of flowers5's 4,064 photos
/// one lies beyond 5 (5.4: a black-and-white dandelion on a book page), the next at 4.4; of a
/// 6,000-image CIFAR-10 subset none is beyond 3.7.
pub const SPREAD: f32 = 5.0;

/// The images whose neighbourhood is far emptier than is usual in this data set, least
/// similar first.
pub(crate) fn outliers(neighbours: &[Vec<(f32, usize)>], image: &impl Fn(usize) -> ImageRef) -> Vec<Outlier> {
    let scores: Vec<f32> = neighbours
        .iter()
        .map(|list| match list.len() {
            0 => f32::NAN,
            n => list.iter().map(|(cos, _)| cos).sum::<f32>() / n as f32,
        })
        .collect();
    let mut finite: Vec<f32> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    if finite.len() < 3 {
        return Vec::new();
    }
    let centre = median(&mut finite);
    let mut deviations: Vec<f32> = finite.iter().map(|s| (s - centre).abs()).collect();
    let spread = 1.4826 * median(&mut deviations);
    let bar = centre - SPREAD * spread;
    let mut found: Vec<Outlier> = scores
        .iter()
        .enumerate()
        .filter(|(_, &s)| s < bar || !s.is_finite())
        .map(|(i, &score)| {
            let ImageRef { path, split, class } = image(i);
            Outlier {
                path,
                split,
                class,
                score,
                deviations: if spread > 0.0 {
                    (centre - score) / spread
                } else {
                    f32::INFINITY
                },
            }
        })
        .collect();
    found.sort_by(|a, b| a.score.total_cmp(&b.score));
    found
}

fn median(values: &mut [f32]) -> f32 {
    values.sort_by(f32::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}
