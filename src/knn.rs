//! Exact cosine k-nearest neighbours: an image gets the classes of the training images whose
//! embeddings point the most nearly the same way.
//!
//! It needs no training and has no regularisation to tune, so it is the quickest check of how
//! well a backbone's embeddings separate the classes, and with few images per class it is often
//! as good as a fitted classifier. It keeps the whole training set, which is why a saved one is
//! as large as the training embeddings and why it cannot be exported as one ONNX graph with the
//! backbone ([`Classifier::dense_chain`] is `None`, and `headstart export` refuses it).
//!
//! # What it computes
//!
//! - **Similarity** is the cosine: the dot product of L2-normalised rows. Backbone embeddings
//!   carry the class mostly in their direction, their length mostly in contrast and scale. A zero
//!   row has no direction and stays zero, so its similarity to everything is 0.
//! - **Neighbours**: for each query, the `k` most similar training rows; equal similarities go to
//!   the lower training index, so the answer never depends on thread timing or sort internals.
//!   A zero query is equally similar to every row and so gets the `k` first training rows.
//! - **Votes**: with [`KnnWeights::Uniform`] each neighbour votes 1 for its class; with
//!   [`KnnWeights::Distance`] it votes `1 / (1 - cos + 1e-6)`, the inverse cosine distance
//!   (scikit-learn's `weights="distance"` with `metric="cosine"`). The `1e-6` keeps an exact
//!   duplicate of a training image (distance 0) finite: it then outweighs neighbours at distance
//!   0.1 a hundred thousand to one, so it decides the class, as it should. Distances that f32
//!   rounding makes slightly negative count as 0.
//! - **Probabilities** are the votes per class divided by their sum: rows sum to 1, and a class
//!   no neighbour belongs to gets exactly 0. A query holding NaN or infinity gets NaN
//!   probabilities, as the head and the baseline give, rather than a confident-looking vote.
//!
//! # How
//!
//! Queries are taken in blocks of 256 rows, and the training rows in tiles of 8192: one matrix product (ndarray's `dot`, i.e. matrixmultiply's SGEMM) per block
//! and tile gives all their cosines at once, and each query keeps a running top-k while the
//! tiles go by. Memory is thus bounded by the block and tile sizes, never by `n_query *
//! n_train`. Blocks run in parallel on the rayon pool: beside the products, picking the top k
//! of every row is a sizeable share of the time (see `benches/knn.rs`). Each block's products
//! then run on its own thread (`matrixmultiply::with_max_threads`, patched in
//! `vendor/matrixmultiply`), so the pool and matrixmultiply's threads do not compete.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::classifier::{check_set, Classifier, DenseChain, SetError, Tensor};
use crate::cosine::{check_unit_rows, normalise_rows, whole, TensorReader};

/// The format marker of k-nearest-neighbour files (see [`crate::artifact`]).
pub const FORMAT_VALUE: &str = "knn-cosine/1";

/// Queries per block: enough blocks to share among threads once there are a few hundred
/// queries, and enough rows that the matrix product runs near the machine's peak.
const QUERY_BLOCK: usize = 256;

/// Cosines checked against a query's bar at once (see `block_neighbours`).
const SCAN_CHUNK: usize = 64;

/// Training rows per tile of the product: with [`QUERY_BLOCK`], a block's cosines take at most
/// 8 MiB however large the training set is.
const TRAIN_TILE: usize = 8192;

/// Added to the cosine distance before inverting it for [`KnnWeights::Distance`], so that an
/// exact duplicate (distance 0) gets a large but finite vote.
pub const DISTANCE_EPSILON: f64 = 1e-6;

/// How the `k` neighbours' votes are weighted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KnnWeights {
    /// Each neighbour votes 1.
    Uniform,
    /// Each neighbour votes `1 / (cosine distance + 1e-6)`: nearer neighbours count more.
    Distance,
}

/// Hyper-parameters of k-nearest neighbours; checked by [`fit`](Self::fit). Serialisable so a
/// saved model can record how it was fitted; missing fields deserialise to their defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KnnParams {
    /// Neighbours per query, at least 1 and at most the number of training rows.
    pub k: usize,
    /// How their votes are weighted.
    pub weights: KnnWeights,
}

impl Default for KnnParams {
    /// `k = 10`, uniform votes: the common choice for kNN evaluation of embeddings, and few
    /// enough neighbours to work with 10 images per class.
    fn default() -> Self {
        Self {
            k: 10,
            weights: KnnWeights::Uniform,
        }
    }
}

/// Why k-nearest neighbours could not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum KnnError {
    /// `k` is zero.
    #[error("`k` must be at least 1: it is the number of neighbours that vote")]
    ZeroK,
    /// `k` exceeds the training rows.
    #[error("`k` = {k} but only {n_train} training images: use k <= {n_train}")]
    KTooLarge {
        /// The `k` asked for.
        k: usize,
        /// Training rows given.
        n_train: usize,
    },
    /// No training rows were given.
    #[error("the training set is empty: pass at least one embedding row")]
    EmptyTrainingSet,
    /// The embeddings or labels are unusable (shape, non-finite values, label range).
    #[error(transparent)]
    Set(#[from] SetError),
}

impl KnnError {
    /// The [`KnnParams`] field this error is about, as its message names it in backticks;
    /// `None` for errors about the data.
    pub fn parameter(&self) -> Option<&'static str> {
        match self {
            KnnError::ZeroK | KnnError::KTooLarge { .. } => Some("k"),
            _ => None,
        }
    }
}

impl KnnParams {
    /// "Fits" k-nearest neighbours on `x`/`y` (class indices in `0..n_classes`): checks them
    /// and keeps the L2-normalised rows and their labels.
    pub fn fit(&self, x: ArrayView2<f32>, y: &[usize], n_classes: usize) -> Result<Knn, KnnError> {
        if self.k == 0 {
            return Err(KnnError::ZeroK);
        }
        check_set("training", x, y, n_classes)?;
        if x.nrows() == 0 {
            return Err(KnnError::EmptyTrainingSet);
        }
        if self.k > x.nrows() {
            return Err(KnnError::KTooLarge {
                k: self.k,
                n_train: x.nrows(),
            });
        }
        Ok(Knn {
            train: normalise_rows(x).0,
            labels: y.to_vec(),
            n_classes,
            k: self.k,
            weights: self.weights,
        })
    }
}

/// Fitted k-nearest neighbours: the L2-normalised training rows, their labels, `k` and the
/// weighting. See the [module documentation](self) for what it computes.
#[derive(Clone, Debug, PartialEq)]
pub struct Knn {
    /// `[n_train, features]`, each row of unit length or zero.
    train: Array2<f32>,
    /// One class index per training row.
    labels: Vec<usize>,
    n_classes: usize,
    k: usize,
    weights: KnnWeights,
}

impl Knn {
    /// Neighbours per query.
    pub fn k(&self) -> usize {
        self.k
    }

    /// How the neighbours' votes are weighted.
    pub fn weights(&self) -> KnnWeights {
        self.weights
    }

    /// Training rows it holds.
    pub fn n_train(&self) -> usize {
        self.train.nrows()
    }

    /// Rebuilds it from its tensors (`train`, `labels`, and the one-value `k`, `weights` (0
    /// uniform, 1 distance) and `n_classes`); the error says what is wrong with them.
    pub fn from_tensors(tensors: Vec<Tensor>) -> Result<Knn, String> {
        let mut read = TensorReader::new(tensors);
        let train = read.matrix("train")?;
        let n_train = train.nrows();
        if n_train == 0 {
            return Err("tensor \"train\" has no rows".to_owned());
        }
        check_unit_rows("train", train.view())?;
        let n_classes = read.count("n_classes", usize::MAX)?;
        let labels = read
            .vector("labels", Some(n_train))?
            .iter()
            .map(|&v| {
                whole(v, n_classes.saturating_sub(1))
                    .filter(|_| n_classes > 0)
                    .ok_or_else(|| format!("label {v} in tensor \"labels\" is not a class index below {n_classes}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let k = read.count("k", n_train)?;
        if k == 0 {
            return Err("tensor \"k\" holds 0: at least one neighbour must vote".to_owned());
        }
        let weights = match read.count("weights", 1)? {
            0 => KnnWeights::Uniform,
            _ => KnnWeights::Distance,
        };
        read.finish()?;
        Ok(Knn {
            train,
            labels,
            n_classes,
            k,
            weights,
        })
    }

    /// The probabilities of one block of queries into `out`.
    fn predict_block(&self, x: ArrayView2<f32>, mut out: ArrayViewMut2<f32>) {
        let (best, finite) = block_neighbours(self.train.view(), x, self.k);
        let mut votes = vec![0.0f64; self.n_classes];
        for ((top, mut probs), ok) in best.into_iter().zip(out.rows_mut()).zip(finite) {
            if !ok {
                probs.fill(f32::NAN);
                continue;
            }
            votes.fill(0.0);
            for (cos, index) in top {
                votes[self.labels[index]] += match self.weights {
                    KnnWeights::Uniform => 1.0,
                    KnnWeights::Distance => 1.0 / ((1.0 - f64::from(cos)).max(0.0) + DISTANCE_EPSILON),
                };
            }
            let total: f64 = votes.iter().sum();
            for (p, v) in probs.iter_mut().zip(&votes) {
                *p = (v / total) as f32;
            }
        }
    }
}

/// Each query's `k` neighbours among `train` (rows of unit length or zero) as (cosine, training
/// index), best first, and whether the query was finite (a non-finite one has no neighbours).
/// Meant for one block of queries: its memory grows with `x.nrows()`.
fn block_neighbours(train: ArrayView2<f32>, x: ArrayView2<f32>, k: usize) -> (Vec<Vec<(f32, usize)>>, Vec<bool>) {
    let (queries, finite) = normalise_rows(x);
    let mut best: Vec<TopK> = (0..x.nrows()).map(|_| TopK::new(k)).collect();
    for (tile_index, tile) in train.axis_chunks_iter(Axis(0), TRAIN_TILE).enumerate() {
        let offset = tile_index * TRAIN_TILE;
        let cosines = queries.dot(&tile.t());
        for ((top, row), &ok) in best.iter_mut().zip(cosines.rows()).zip(&finite) {
            if !ok {
                continue;
            }
            // Most chunks hold nothing above the bar once the top k has filled; a compare of the
            // whole chunk (vectorised) skips them. A cosine equal to the bar cannot enter
            // either: it comes later, so its index is higher.
            for (c, chunk) in row
                .as_slice()
                .expect("rows of a fresh product are contiguous")
                .chunks(SCAN_CHUNK)
                .enumerate()
            {
                let bar = top.bar_cosine();
                if !chunk.iter().fold(false, |any, &cos| any | (cos > bar)) {
                    continue;
                }
                for (j, &cos) in chunk.iter().enumerate() {
                    top.offer(cos, offset + c * SCAN_CHUNK + j);
                }
            }
        }
    }
    (best.into_iter().map(TopK::into_sorted).collect(), finite)
}

/// Every query's `k` nearest rows of `train` (rows of unit length or zero) as (cosine, row),
/// best first, searched block by block in parallel as `predict_proba` does; a query holding NaN
/// or infinity gets none. What the data audit builds its neighbourhoods from.
pub(crate) fn nearest(train: ArrayView2<f32>, x: ArrayView2<f32>, k: usize) -> Vec<Vec<(f32, usize)>> {
    let blocks: Vec<_> = x.axis_chunks_iter(Axis(0), QUERY_BLOCK).collect();
    let threads = gemm_threads(blocks.len());
    blocks
        .into_par_iter()
        .map(|block| matrixmultiply::with_max_threads(threads, || block_neighbours(train, block, k).0))
        .collect::<Vec<_>>()
        .concat()
}

/// The threads each block's products may use: one when several blocks run side by side on the
/// rayon pool, which is then the parallelism (threaded products as well would oversubscribe the
/// cores: on 60,000 embeddings 17% of the time went to the scheduler), all for a lone block.
fn gemm_threads(blocks: usize) -> usize {
    if blocks > 1 {
        1
    } else {
        usize::MAX
    }
}

/// A query's running top k: the most similar training rows offered so far, as (cosine, index).
struct TopK {
    k: usize,
    /// At most `2 * k` (or 64) candidates, of which the best `k` are wanted.
    items: Vec<(f32, usize)>,
    /// The `k`-th best after the last pruning: anything not better can never enter the top k,
    /// which lets most rows be skipped with one comparison.
    bar: Option<(f32, usize)>,
}

/// Best first: higher cosine, then lower index.
fn rank(a: &(f32, usize), b: &(f32, usize)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            items: Vec::with_capacity(Self::capacity(k)),
            bar: None,
        }
    }

    /// Candidates held before pruning back to `k`: twice `k` makes pruning (linear in this)
    /// rare, and at least 64 avoids pruning at every step for tiny `k`.
    fn capacity(k: usize) -> usize {
        (2 * k).max(64)
    }

    /// The cosine a candidate must beat to enter; -inf until the top k has filled.
    fn bar_cosine(&self) -> f32 {
        self.bar.map_or(f32::NEG_INFINITY, |(cos, _)| cos)
    }

    fn offer(&mut self, cos: f32, index: usize) {
        // `+ 0.0` turns -0.0 (which a zero row can give) into 0.0: `total_cmp` orders -0.0
        // below 0.0, and the two must tie so that the lower index wins.
        let candidate = (cos + 0.0, index);
        if let Some(bar) = self.bar {
            if rank(&candidate, &bar).is_ge() {
                return;
            }
        }
        self.items.push(candidate);
        if self.items.len() >= Self::capacity(self.k) {
            self.prune();
        }
    }

    /// Keeps only the best `k` and raises the bar to the worst of them.
    fn prune(&mut self) {
        if self.items.len() > self.k {
            self.items.select_nth_unstable_by(self.k - 1, rank);
            self.items.truncate(self.k);
        }
        if self.items.len() == self.k {
            self.bar = Some(self.items[self.k - 1]);
        }
    }

    /// The best `k`, best first.
    fn into_sorted(mut self) -> Vec<(f32, usize)> {
        self.prune();
        self.items.sort_unstable_by(rank);
        self.items
    }
}

impl Classifier for Knn {
    fn n_features(&self) -> usize {
        self.train.ncols()
    }

    fn on_features(&self) -> &dyn Classifier {
        self
    }

    fn n_classes(&self) -> usize {
        self.n_classes
    }

    fn predict_proba(&self, x: ArrayView2<f32>) -> Array2<f32> {
        assert_eq!(
            x.ncols(),
            self.train.ncols(),
            "knn expects {} features per embedding, got {}",
            self.train.ncols(),
            x.ncols()
        );
        let mut out = Array2::zeros((x.nrows(), self.n_classes));
        let blocks: Vec<_> = out
            .axis_chunks_iter_mut(Axis(0), QUERY_BLOCK)
            .zip(x.axis_chunks_iter(Axis(0), QUERY_BLOCK))
            .collect();
        let threads = gemm_threads(blocks.len());
        blocks
            .into_par_iter()
            .for_each(|(out, x)| matrixmultiply::with_max_threads(threads, || self.predict_block(x, out)));
        out
    }

    /// `None`: the prediction searches the whole training set, which is no chain of layers.
    fn dense_chain(&self) -> Option<DenseChain> {
        None
    }

    fn format(&self) -> Option<&'static str> {
        Some(FORMAT_VALUE)
    }

    fn tensors(&self) -> Vec<Tensor> {
        let one = |name: &str, value: f32| (name.to_owned(), vec![1], vec![value]);
        vec![
            (
                "train".to_owned(),
                self.train.shape().to_vec(),
                self.train.iter().copied().collect(),
            ),
            (
                "labels".to_owned(),
                vec![self.labels.len()],
                self.labels.iter().map(|&l| l as f32).collect(),
            ),
            one("n_classes", self.n_classes as f32),
            one("k", self.k as f32),
            one(
                "weights",
                match self.weights {
                    KnnWeights::Uniform => 0.0,
                    KnnWeights::Distance => 1.0,
                },
            ),
        ]
    }
}

#[cfg(test)]
#[path = "knn_tests.rs"]
pub(crate) mod tests;
