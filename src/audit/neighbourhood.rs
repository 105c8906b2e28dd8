//! Every image's nearest other images, found once and shared by the near-duplicate, label and
//! outlier checks.

use ndarray::ArrayView2;

use crate::cosine::normalise_rows;
use crate::knn::nearest;

/// For each row of `x`, its `k` most similar other rows as (cosine, row), best first.
///
/// Exact search: one blocked matrix product of all rows against all rows (see
/// [`crate::knn`]), so the cost grows with the square of the number of images (BENCHMARKS.md,
/// "Data audit", has the times).
pub(crate) fn nearest_others(x: ArrayView2<f32>, k: usize) -> Vec<Vec<(f32, usize)>> {
    let (unit, _) = normalise_rows(x);
    // One more than asked, so that each row's own entry can be dropped. With several identical
    // rows the row itself need not come first, so it is removed by index, not by position.
    let found = nearest(unit.view(), unit.view(), (k + 1).min(x.nrows()));
    found
        .into_iter()
        .enumerate()
        .map(|(row, list)| list.into_iter().filter(|&(_, j)| j != row).take(k).collect())
        .collect()
}
