use super::*;
use crate::artifact::{self, Card};
use crate::backbone::BackboneRecord;
use crate::export::{export, ExportError, ExportOptions};
use approx::assert_abs_diff_eq;
use ndarray::{array, s, Array2};

/// Deterministic standard-normal `[n, d]` samples (xorshift + Box-Muller), so the tests need
/// no RNG crate and never flake.
pub(crate) fn gaussian(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    Array2::from_shape_simple_fn((n, d), || {
        let (u, v) = (uniform(), uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    })
}

/// Labels cycling through `0..n_classes`.
pub(crate) fn cycling(n: usize, n_classes: usize) -> Vec<usize> {
    (0..n).map(|i| i % n_classes).collect()
}

/// Cosines of every query with every training row, in f64, by a plain double loop.
fn brute_cosines(train: &Array2<f32>, queries: &Array2<f32>) -> Array2<f64> {
    let unit = |row: ndarray::ArrayView1<f32>| {
        let v: Vec<f64> = row.iter().map(|&x| f64::from(x)).collect();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.into_iter()
            .map(|x| if norm > 0.0 { x / norm } else { 0.0 })
            .collect::<Vec<_>>()
    };
    let t: Vec<Vec<f64>> = train.rows().into_iter().map(unit).collect();
    let mut out = Array2::zeros((queries.nrows(), train.nrows()));
    for (i, q) in queries.rows().into_iter().enumerate() {
        let q = unit(q);
        for (j, t) in t.iter().enumerate() {
            out[[i, j]] = q.iter().zip(t).map(|(a, b)| a * b).sum();
        }
    }
    out
}

/// The reference classifier: sort all training rows by cosine (ties to the lower index),
/// take `k`, vote.
fn brute_proba(
    train: &Array2<f32>,
    y: &[usize],
    n_classes: usize,
    queries: &Array2<f32>,
    k: usize,
    weights: KnnWeights,
) -> Array2<f64> {
    let cosines = brute_cosines(train, queries);
    let mut out = Array2::zeros((queries.nrows(), n_classes));
    for (i, row) in cosines.rows().into_iter().enumerate() {
        let mut order: Vec<usize> = (0..train.nrows()).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        for &j in &order[..k] {
            out[[i, y[j]]] += match weights {
                KnnWeights::Uniform => 1.0,
                KnnWeights::Distance => 1.0 / ((1.0 - row[j]).max(0.0) + 1e-6),
            };
        }
        let total = out.row(i).sum();
        out.row_mut(i).mapv_inplace(|v| v / total);
    }
    out
}

#[test]
fn probabilities_match_a_brute_force_reference() {
    let (n_train, d, n_classes) = (200, 16, 5);
    let mut train = gaussian(n_train, d, 1);
    train.row_mut(17).fill(0.0);
    let y = cycling(n_train, n_classes);
    let mut queries = gaussian(60, d, 2);
    queries.row_mut(3).fill(0.0);
    // An exact duplicate of a training row: with distance weights it dominates its vote.
    queries.row_mut(4).assign(&train.row(42));
    for k in [1, 5, 37, n_train] {
        for weights in [KnnWeights::Uniform, KnnWeights::Distance] {
            let knn = KnnParams { k, weights }.fit(train.view(), &y, n_classes).unwrap();
            let got = knn.predict_proba(queries.view());
            let expected = brute_proba(&train, &y, n_classes, &queries, k, weights);
            for (g, e) in got.iter().zip(&expected) {
                assert_abs_diff_eq!(f64::from(*g), e, epsilon = 1e-5);
            }
            for row in got.rows() {
                assert_abs_diff_eq!(row.sum(), 1.0, epsilon = 1e-5);
            }
        }
    }
    // The zero query ties with every row at cosine 0, so it gets the first k rows.
    let knn = KnnParams {
        k: 5,
        weights: KnnWeights::Uniform,
    }
    .fit(train.view(), &y, n_classes)
    .unwrap();
    assert_eq!(knn.predict_proba(queries.slice(s![3..4, ..])).row(0).to_vec(), [0.2; 5]);
    let knn = KnnParams {
        k: 10,
        weights: KnnWeights::Distance,
    }
    .fit(train.view(), &y, n_classes)
    .unwrap();
    assert!(knn.predict_proba(queries.slice(s![4..5, ..]))[[0, y[42]]] > 0.999);
}

/// Many training rows (more than one tile) and queries (more than one block): the neighbours
/// found are a true top k. Cosines within f32 rounding of the k-th may legitimately swap, so
/// this checks the cosines rather than the indices.
#[test]
fn neighbours_across_tiles_and_blocks_are_a_true_top_k() {
    let (n_train, d) = (TRAIN_TILE + 900, 8);
    let train = gaussian(n_train, d, 3);
    let y = cycling(n_train, 3);
    let queries = gaussian(QUERY_BLOCK + 40, d, 4);
    let cosines = brute_cosines(&train, &queries);
    for k in [1, 10, 300] {
        let knn = KnnParams {
            k,
            weights: KnnWeights::Uniform,
        }
        .fit(train.view(), &y, 3)
        .unwrap();
        let (tops, finite) = block_neighbours(knn.train.view(), queries.view(), knn.k);
        assert!(finite.iter().all(|&f| f));
        for (i, top) in tops.iter().enumerate() {
            assert_eq!(top.len(), k);
            let row = cosines.row(i);
            let mut sorted: Vec<f64> = row.to_vec();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let kth = sorted[k - 1];
            let mut seen = std::collections::HashSet::new();
            for (rank, &(cos, j)) in top.iter().enumerate() {
                assert!(seen.insert(j), "row {j} picked twice");
                assert_abs_diff_eq!(f64::from(cos), row[j], epsilon = 1e-5);
                assert!(
                    row[j] >= kth - 1e-5,
                    "query {i}: row {j} (cos {}) is below the k-th {kth}",
                    row[j]
                );
                assert_abs_diff_eq!(row[j], sorted[rank], epsilon = 1e-5);
            }
        }
    }
    // And predict_proba across blocks agrees with one block at a time.
    let knn = KnnParams::default().fit(train.view(), &y, 3).unwrap();
    let all = knn.predict_proba(queries.view());
    let last = knn.predict_proba(queries.slice(s![QUERY_BLOCK.., ..]));
    assert_eq!(all.slice(s![QUERY_BLOCK.., ..]), last);
}

#[test]
fn equal_cosines_go_to_the_lower_training_index() {
    // Rows 1, 2 and 4 point the same way as the query; 0 and 3 are orthogonal to it.
    let train = array![[0.0f32, 1.0], [2.0, 0.0], [1.0, 0.0], [0.0, -1.0], [5.0, 0.0]];
    let y = [0, 1, 2, 0, 3];
    let knn = KnnParams {
        k: 2,
        weights: KnnWeights::Uniform,
    }
    .fit(train.view(), &y, 4)
    .unwrap();
    let (tops, _) = block_neighbours(knn.train.view(), array![[3.0f32, 0.0]].view(), knn.k);
    assert_eq!(tops[0].iter().map(|&(_, j)| j).collect::<Vec<_>>(), [1, 2]);
    // A zero training row ties at cosine 0 with the orthogonal rows; index order again.
    let train = array![[0.0f32, 1.0], [0.0, 0.0], [1.0, 0.0]];
    let knn = KnnParams {
        k: 3,
        weights: KnnWeights::Uniform,
    }
    .fit(train.view(), &[0, 1, 2], 3)
    .unwrap();
    let (tops, _) = block_neighbours(knn.train.view(), array![[1.0f32, 0.0]].view(), knn.k);
    assert_eq!(tops[0].iter().map(|&(_, j)| j).collect::<Vec<_>>(), [2, 0, 1]);
}

// Golden values from scikit-learn 1.9.1:
//
// import numpy as np
// from sklearn.neighbors import KNeighborsClassifier
// X = np.array([[1.0, 0.2, 0.0], [0.9, 0.5, 0.1], [0.2, 1.0, 0.3], [0.1, 0.8, -0.2],
//               [0.0, 0.3, 1.0], [-0.3, 0.1, 0.9], [0.7, -0.4, 0.5], [0.4, 0.6, 0.6]])
// y = np.array([0, 0, 1, 1, 2, 2, 0, 3])
// Q = np.array([[0.8, 0.3, 0.2], [0.1, 0.6, 0.7], [-0.5, 0.9, 0.1], [0.6, -0.2, 0.9]])
// for k in [3, 5]:
//     for w in ["uniform", "distance"]:
//         knn = KNeighborsClassifier(n_neighbors=k, metric="cosine", weights=w).fit(X, y)
//         print(k, w, np.array2string(knn.predict_proba(Q), precision=8, separator=", "))
//     print(knn.kneighbors(Q, n_neighbors=k + 1)[0].round(4))
//
// scikit-learn weighs by 1 / distance, headstart by 1 / (distance + 1e-6). The data have no
// zero distances (the nearest neighbour is 0.0195 away) and no ties at the k-th neighbour, so
// the two agree to ~3e-6.
#[test]
fn matches_scikit_learn_kneighbors_classifier() {
    let x = array![
        [1.0f32, 0.2, 0.0],
        [0.9, 0.5, 0.1],
        [0.2, 1.0, 0.3],
        [0.1, 0.8, -0.2],
        [0.0, 0.3, 1.0],
        [-0.3, 0.1, 0.9],
        [0.7, -0.4, 0.5],
        [0.4, 0.6, 0.6]
    ];
    let y = [0, 0, 1, 1, 2, 2, 0, 3];
    let q = array![[0.8f32, 0.3, 0.2], [0.1, 0.6, 0.7], [-0.5, 0.9, 0.1], [0.6, -0.2, 0.9]];
    let golden: [(usize, KnnWeights, [[f64; 4]; 4]); 4] = [
        (
            3,
            KnnWeights::Uniform,
            [
                [0.66666667, 0.0, 0.0, 0.33333333],
                [0.0, 0.33333333, 0.33333333, 0.33333333],
                [0.0, 0.66666667, 0.0, 0.33333333],
                [0.33333333, 0.0, 0.33333333, 0.33333333],
            ],
        ),
        (
            3,
            KnnWeights::Distance,
            [
                [0.94999392, 0.0, 0.0, 0.05000608],
                [0.0, 0.18221778, 0.31614762, 0.50163460],
                [0.0, 0.82791533, 0.0, 0.17208467],
                [0.63189485, 0.0, 0.21092415, 0.15718099],
            ],
        ),
        (
            5,
            KnnWeights::Uniform,
            [
                [0.6, 0.2, 0.0, 0.2],
                [0.2, 0.2, 0.4, 0.2],
                [0.0, 0.4, 0.4, 0.2],
                [0.4, 0.0, 0.4, 0.2],
            ],
        ),
        (
            5,
            KnnWeights::Distance,
            [
                [0.92672248, 0.02623596, 0.0, 0.04704156],
                [0.04734297, 0.15590989, 0.36753658, 0.42921056],
                [0.0, 0.63401241, 0.23420622, 0.13178137],
                [0.59676415, 0.0, 0.27733157, 0.12590427],
            ],
        ),
    ];
    for (k, weights, expected) in golden {
        let knn = KnnParams { k, weights }.fit(x.view(), &y, 4).unwrap();
        let got = knn.predict_proba(q.view());
        for (g, e) in got.iter().zip(expected.as_flattened()) {
            assert_abs_diff_eq!(f64::from(*g), *e, epsilon = 1e-5);
        }
    }
}

#[test]
fn non_finite_queries_get_nan_and_unvoted_classes_get_zero() {
    let train = gaussian(30, 4, 5);
    let y = cycling(30, 2);
    let knn = KnnParams {
        k: 3,
        weights: KnnWeights::Distance,
    }
    .fit(train.view(), &y, 4)
    .unwrap();
    let mut q = gaussian(3, 4, 6);
    q[[1, 2]] = f32::NAN;
    q[[2, 0]] = f32::INFINITY;
    let p = knn.predict_proba(q.view());
    assert!(p.row(0).iter().all(|v| v.is_finite()));
    assert!(p.slice(s![1.., ..]).iter().all(|v| v.is_nan()));
    // Classes 2 and 3 have no training rows, so no neighbour ever votes for them.
    assert_eq!(p.slice(s![0, 2..]).to_vec(), [0.0, 0.0]);
    assert_eq!(knn.predict_proba(Array2::<f32>::zeros((0, 4)).view()).shape(), [0, 4]);
}

#[test]
fn invalid_parameters_and_data_are_rejected_naming_the_problem() {
    let x = gaussian(30, 4, 7);
    let y = cycling(30, 3);
    let err = KnnParams {
        k: 0,
        ..KnnParams::default()
    }
    .fit(x.view(), &y, 3)
    .unwrap_err();
    assert!(matches!(err, KnnError::ZeroK));
    assert!(err.to_string().contains("`k`"), "{err}");
    assert_eq!(err.parameter(), Some("k"));

    let err = KnnParams {
        k: 50,
        ..KnnParams::default()
    }
    .fit(x.view(), &y, 3)
    .unwrap_err();
    assert!(matches!(err, KnnError::KTooLarge { k: 50, n_train: 30 }));
    assert_eq!(err.to_string(), "`k` = 50 but only 30 training images: use k <= 30");
    assert_eq!(err.parameter(), Some("k"));

    let err = KnnParams::default()
        .fit(Array2::zeros((0, 4)).view(), &[], 3)
        .unwrap_err();
    assert!(matches!(err, KnnError::EmptyTrainingSet));

    let mut bad = x.clone();
    bad[[4, 1]] = f32::NAN;
    let err = KnnParams::default().fit(bad.view(), &y, 3).unwrap_err();
    assert!(
        matches!(err, KnnError::Set(SetError::NonFinite { row: 4, col: 1, .. })),
        "{err}"
    );
    assert_eq!(err.parameter(), None);

    let err = KnnParams::default().fit(x.view(), &y, 2).unwrap_err();
    assert!(
        matches!(err, KnnError::Set(SetError::LabelOutOfRange { label: 2, .. })),
        "{err}"
    );
    let err = KnnParams::default().fit(x.view(), &y[..29], 3).unwrap_err();
    assert!(matches!(err, KnnError::Set(SetError::LabelCount { .. })), "{err}");
}

#[test]
fn params_round_trip_through_json_and_default_missing_fields() {
    let params = KnnParams {
        k: 7,
        weights: KnnWeights::Distance,
    };
    let json = serde_json::to_string(&params).unwrap();
    assert_eq!(json, r#"{"k":7,"weights":"distance"}"#);
    assert_eq!(serde_json::from_str::<KnnParams>(&json).unwrap(), params);
    let partial: KnnParams = serde_json::from_str(r#"{"k": 3}"#).unwrap();
    assert_eq!(
        partial,
        KnnParams {
            k: 3,
            weights: KnnWeights::Uniform
        }
    );
}

#[test]
fn save_and_load_round_trip() {
    let mut x = gaussian(40, 6, 8);
    x.row_mut(5).fill(0.0);
    let y = cycling(40, 3);
    let knn = KnnParams {
        k: 4,
        weights: KnnWeights::Distance,
    }
    .fit(x.view(), &y, 4)
    .unwrap();
    let loaded = artifact::saved_and_loaded(&knn);
    assert_eq!(loaded.format(), Some(FORMAT_VALUE));
    assert_eq!(Knn::from_tensors(loaded.tensors()).unwrap(), knn);
    let q = gaussian(25, 6, 9);
    assert_eq!(loaded.predict_proba(q.view()), knn.predict_proba(q.view()));
    assert_eq!((loaded.n_features(), loaded.n_classes()), (6, 4));
}

#[test]
fn damaged_tensors_are_refused_with_a_reason() {
    let knn = KnnParams {
        k: 3,
        weights: KnnWeights::Uniform,
    }
    .fit(gaussian(10, 4, 10).view(), &cycling(10, 2), 2)
    .unwrap();
    let with = |name: &str, shape: Vec<usize>, data: Vec<f32>| -> String {
        let mut tensors = knn.tensors();
        let t = tensors.iter_mut().find(|t| t.0 == name).unwrap();
        (t.1, t.2) = (shape, data);
        Knn::from_tensors(tensors).unwrap_err()
    };
    let unit = knn.tensors()[0].2.clone();
    assert!(with("train", vec![10, 3], unit.clone()).contains("values"));
    assert!(with("train", vec![40], unit.clone()).contains("2 dimensions"));
    assert!(with("train", vec![0, 4], vec![]).contains("no rows"));
    assert!(with("train", vec![10, 4], vec![0.7; 40]).contains("length"));
    assert!(with("labels", vec![9], vec![0.0; 9]).contains("expected [10]"));
    assert!(with("labels", vec![10], vec![2.0; 10]).contains("class index below 2"));
    assert!(with("labels", vec![10], vec![0.5; 10]).contains("class index"));
    assert!(with("k", vec![1], vec![11.0]).contains("from 0 to 10"));
    assert!(with("k", vec![1], vec![0.0]).contains("at least one"));
    assert!(with("k", vec![2], vec![1.0, 1.0]).contains("expected [1]"));
    assert!(with("weights", vec![1], vec![2.0]).contains("\"weights\""));
    assert!(with("n_classes", vec![1], vec![f32::NAN]).contains("non-finite"));
    let mut tensors = knn.tensors();
    tensors.retain(|t| t.0 != "k");
    assert!(Knn::from_tensors(tensors).unwrap_err().contains("\"k\" is missing"));
    let mut tensors = knn.tensors();
    tensors.push(("extra".to_owned(), vec![1], vec![0.0]));
    assert!(Knn::from_tensors(tensors).unwrap_err().contains("unexpected"));
}

/// A card as `train` would write it, for a classifier of `kind` on `dim`-d embeddings.
pub(crate) fn card(kind: &str, classes: usize, dim: usize) -> Card {
    Card {
        thresholds: None,
        kind: kind.to_owned(),
        classes: (0..classes).map(|c| format!("class{c}")).collect(),
        backbone: BackboneRecord::fake(dim),
        settings: serde_json::json!({}),
        history: Vec::new(),
        best_epoch: None,
        sweep: Vec::new(),
    }
}

/// `export` refuses the file before it looks for the backbone (which here does not exist), so
/// the user learns the real reason.
#[test]
fn export_refuses_it_as_not_one_graph() {
    let knn = KnnParams {
        k: 2,
        ..KnnParams::default()
    }
    .fit(gaussian(6, 4, 11).view(), &cycling(6, 2), 2)
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("knn.safetensors");
    artifact::save(&path, &knn, card("knn", 2, 4).to_metadata()).unwrap();
    let err = export(&ExportOptions {
        head: path,
        out_dir: dir.path().join("export"),
    })
    .unwrap_err();
    assert!(
        matches!(&err, ExportError::NotOneGraph { kind, .. } if kind == "knn"),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("holds a `knn` classifier, which cannot be one ONNX graph"),
        "{message}"
    );
    assert!(
        message.contains("only a head or a baseline can be exported"),
        "{message}"
    );
    assert!(!dir.path().join("export").exists());
}

#[test]
fn is_send_sync_clone_and_debug() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Knn>();
    check::<KnnParams>();
}

/// The patch in vendor/matrixmultiply (PATCH.md): parallel query blocks hold each product to
/// its own thread, a lone block keeps matrixmultiply's threads, and the limit ends with the
/// scope. Does not compile without the patch.
#[test]
fn parallel_blocks_keep_each_product_on_its_own_thread() {
    let global = matrixmultiply::max_threads();
    matrixmultiply::with_max_threads(gemm_threads(4), || {
        assert_eq!(matrixmultiply::max_threads(), 1);
        // Scopes nest downward only, and other threads keep the global maximum.
        matrixmultiply::with_max_threads(gemm_threads(1), || assert_eq!(matrixmultiply::max_threads(), 1));
        assert_eq!(std::thread::spawn(matrixmultiply::max_threads).join().unwrap(), global);
    });
    matrixmultiply::with_max_threads(gemm_threads(1), || assert_eq!(matrixmultiply::max_threads(), global));
    assert_eq!(matrixmultiply::max_threads(), global);
    let unwound = std::panic::catch_unwind(|| matrixmultiply::with_max_threads(1, || panic!("inside")));
    assert!(unwound.is_err());
    assert_eq!(matrixmultiply::max_threads(), global);
}
