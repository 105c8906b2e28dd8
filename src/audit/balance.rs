//! Class balance: images per class and split, and how far apart the splits' class
//! distributions are.

use super::{Balance, SplitDistance};
use crate::cache::Entry;
use crate::dataset::Split;

/// Counts per split (those with images, in train, val, test order) and class, and the total
/// variation distance between every two splits' class proportions: half the sum of the absolute
/// differences, 0 for the same distribution and 1 for disjoint ones.
pub(crate) fn balance(entries: &[Entry], classes: &[String]) -> Balance {
    let splits: Vec<Split> = Split::ALL
        .into_iter()
        .filter(|s| entries.iter().any(|e| e.sample.split == *s))
        .collect();
    let counts: Vec<Vec<usize>> = splits
        .iter()
        .map(|&split| {
            let mut row = vec![0; classes.len()];
            for e in entries.iter().filter(|e| e.sample.split == split) {
                if let Some(count) = row.get_mut(e.sample.class) {
                    *count += 1;
                }
            }
            row
        })
        .collect();
    let proportions: Vec<Vec<f64>> = counts
        .iter()
        .map(|row| {
            let total = row.iter().sum::<usize>().max(1) as f64;
            row.iter().map(|&c| c as f64 / total).collect()
        })
        .collect();
    let mut distance = Vec::new();
    for a in 0..splits.len() {
        for b in a + 1..splits.len() {
            let sum: f64 = proportions[a]
                .iter()
                .zip(&proportions[b])
                .map(|(p, q)| (p - q).abs())
                .sum();
            distance.push(SplitDistance {
                a: splits[a],
                b: splits[b],
                total_variation: sum / 2.0,
            });
        }
    }
    Balance {
        splits,
        classes: classes.to_vec(),
        counts,
        distance,
    }
}
