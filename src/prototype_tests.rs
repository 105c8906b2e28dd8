use std::collections::BTreeMap;

use super::*;
use crate::artifact;
use crate::export::{export, ExportError, ExportOptions};
use crate::knn::tests::{card, cycling, gaussian};
use approx::assert_abs_diff_eq;
use ndarray::{array, s};

fn golden_data() -> (Array2<f32>, Vec<usize>, Array2<f32>) {
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
    let q = array![[0.8f32, 0.3, 0.2], [0.1, 0.6, 0.7], [-0.5, 0.9, 0.1], [0.0, 0.0, 0.0]];
    (x, vec![0, 0, 1, 1, 2, 2, 0, 3], q)
}

// Golden values from numpy 2.4:
//
// import numpy as np
// X = np.array([[1.0, 0.2, 0.0], [0.9, 0.5, 0.1], [0.2, 1.0, 0.3], [0.1, 0.8, -0.2],
//               [0.0, 0.3, 1.0], [-0.3, 0.1, 0.9], [0.7, -0.4, 0.5], [0.4, 0.6, 0.6]])
// y = np.array([0, 0, 1, 1, 2, 2, 0, 3])
// Q = np.array([[0.8, 0.3, 0.2], [0.1, 0.6, 0.7], [-0.5, 0.9, 0.1], [0.0, 0.0, 0.0]])
// unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-300)
// Xn, Qn = unit(X), unit(Q)
// present = [0, 1, 2, 3]  # class 4 never occurs in y
// for s in [0.0, 0.5]:
//     P = np.array([(1 - s) * Xn[y == c].mean(0) + s * Xn.mean(0) for c in present])
//     logits = 10 * Qn @ unit(P).T
//     p = np.exp(logits - logits.max(1, keepdims=True))
//     p /= p.sum(1, keepdims=True)
//     p = np.hstack([p, np.zeros((len(Q), 1))])  # absent class 4: probability 0
//     print(s, np.array2string(p, precision=8, separator=", ", floatmode="fixed"))
#[test]
fn matches_a_numpy_computation_with_and_without_shrinkage() {
    let (x, y, q) = golden_data();
    let golden: [(f32, [[f64; 5]; 4]); 2] = [
        (
            0.0,
            [
                [8.89009908e-01, 7.30325193e-03, 2.30987290e-04, 1.03455853e-01, 0.0],
                [1.73141212e-03, 4.66036704e-02, 2.53964148e-01, 6.97700770e-01, 0.0],
                [1.02966457e-05, 9.64490454e-01, 1.19406487e-02, 2.35586010e-02, 0.0],
                [0.25, 0.25, 0.25, 0.25, 0.0],
            ],
        ),
        (
            0.5,
            [
                [8.25837484e-01, 4.49640607e-02, 5.35539423e-03, 1.23843061e-01, 0.0],
                [1.70779425e-02, 1.35156689e-01, 4.98031270e-01, 3.49734099e-01, 0.0],
                [6.85923071e-04, 8.80134283e-01, 5.82589078e-02, 6.09208860e-02, 0.0],
                [0.25, 0.25, 0.25, 0.25, 0.0],
            ],
        ),
    ];
    for (shrinkage, expected) in golden {
        let model = PrototypeParams { shrinkage }.fit(x.view(), &y, 5).unwrap();
        let got = model.predict_proba(q.view());
        for (g, e) in got.iter().zip(expected.as_flattened()) {
            assert_abs_diff_eq!(f64::from(*g), *e, epsilon = 1e-6);
        }
        // The absent class: probability exactly 0, prototype row zero.
        assert!(got.column(4).iter().all(|&p| p == 0.0));
        assert!(model.prototypes().row(4).iter().all(|&v| v == 0.0));
    }
}

/// The prototypes themselves, by hand: class 3 has the single row (0.4, 0.6, 0.6), whose
/// direction is (2, 3, 3) / sqrt(22); with shrinkage 1 every present class gets the direction
/// of the mean of all normalised rows.
#[test]
fn prototypes_are_unit_class_means_shrunk_towards_the_overall_mean() {
    let (x, y, _) = golden_data();
    let model = PrototypeParams::default().fit(x.view(), &y, 5).unwrap();
    let norm = 22f32.sqrt();
    for (got, want) in model
        .prototypes()
        .row(3)
        .iter()
        .zip([2.0 / norm, 3.0 / norm, 3.0 / norm])
    {
        assert_abs_diff_eq!(*got, want, epsilon = 1e-6);
    }
    let all = PrototypeParams { shrinkage: 1.0 }.fit(x.view(), &y, 5).unwrap();
    let (xn, _) = normalise_rows(x.view());
    let mean = xn.mean_axis(ndarray::Axis(0)).unwrap();
    let mean = &mean / mean.dot(&mean).sqrt();
    for class in 0..4 {
        for (got, want) in all.prototypes().row(class).iter().zip(&mean) {
            assert_abs_diff_eq!(got, want, epsilon = 1e-6);
        }
    }
    // Identical prototypes: every present class equally likely, whatever the query.
    let p = all.predict_proba(gaussian(3, 3, 1).view());
    for row in p.rows() {
        for &v in row.slice(s![..4]) {
            assert_abs_diff_eq!(v, 0.25, epsilon = 1e-6);
        }
    }
}

#[test]
fn only_the_direction_of_training_and_query_rows_counts() {
    let x = gaussian(40, 6, 2);
    let y = cycling(40, 4);
    let model = PrototypeParams { shrinkage: 0.2 }.fit(x.view(), &y, 4).unwrap();
    let scaled_rows = &x * &Array1::from_iter((0..40).map(|i| 0.1 + i as f32)).insert_axis(ndarray::Axis(1));
    let scaled = PrototypeParams { shrinkage: 0.2 }
        .fit(scaled_rows.view(), &y, 4)
        .unwrap();
    for (a, b) in scaled.prototypes().iter().zip(model.prototypes()) {
        assert_abs_diff_eq!(a, b, epsilon = 1e-6);
    }
    let q = gaussian(10, 6, 3);
    let a = model.predict_proba(q.view());
    let b = model.predict_proba((&q * 1000.0).view());
    for (a, b) in a.iter().zip(&b) {
        assert_abs_diff_eq!(a, b, epsilon = 1e-6);
    }
    for row in a.rows() {
        assert_abs_diff_eq!(row.sum(), 1.0, epsilon = 1e-6);
    }
}

#[test]
fn non_finite_queries_get_nan() {
    let model = PrototypeParams::default()
        .fit(gaussian(20, 4, 4).view(), &cycling(20, 2), 2)
        .unwrap();
    let mut q = gaussian(2, 4, 5);
    q[[1, 3]] = f32::NEG_INFINITY;
    let p = model.predict_proba(q.view());
    assert!(p.row(0).iter().all(|v| v.is_finite()));
    assert!(p.row(1).iter().all(|v| v.is_nan()));
}

#[test]
fn invalid_parameters_and_data_are_rejected_naming_the_problem() {
    let x = gaussian(12, 3, 6);
    let y = cycling(12, 2);
    for shrinkage in [-0.1, 1.5, f32::NAN, f32::INFINITY] {
        let err = PrototypeParams { shrinkage }.fit(x.view(), &y, 2).unwrap_err();
        assert!(matches!(err, PrototypeError::InvalidShrinkage(_)), "{err}");
        assert!(err.to_string().contains("`shrinkage`"), "{err}");
        assert_eq!(err.parameter(), Some("shrinkage"));
    }
    let err = PrototypeParams::default()
        .fit(Array2::zeros((0, 3)).view(), &[], 2)
        .unwrap_err();
    assert!(matches!(err, PrototypeError::EmptyTrainingSet), "{err}");
    let mut bad = x.clone();
    bad[[2, 0]] = f32::NAN;
    let err = PrototypeParams::default().fit(bad.view(), &y, 2).unwrap_err();
    assert!(
        matches!(err, PrototypeError::Set(SetError::NonFinite { row: 2, col: 0, .. })),
        "{err}"
    );
    assert_eq!(err.parameter(), None);
    let err = PrototypeParams::default().fit(x.view(), &y, 1).unwrap_err();
    assert!(
        matches!(err, PrototypeError::Set(SetError::LabelOutOfRange { .. })),
        "{err}"
    );
}

#[test]
fn params_round_trip_through_json_and_default_missing_fields() {
    let params = PrototypeParams { shrinkage: 0.25 };
    let json = serde_json::to_string(&params).unwrap();
    assert_eq!(serde_json::from_str::<PrototypeParams>(&json).unwrap(), params);
    assert_eq!(
        serde_json::from_str::<PrototypeParams>("{}").unwrap(),
        PrototypeParams::default()
    );
}

#[test]
fn save_and_load_round_trip() {
    let x = gaussian(30, 5, 7);
    let y: Vec<usize> = cycling(30, 3).into_iter().map(|c| [0, 1, 3][c]).collect();
    let model = PrototypeParams { shrinkage: 0.3 }.fit(x.view(), &y, 4).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prototype.safetensors");
    let metadata = BTreeMap::from([("note".to_owned(), "x".to_owned())]);
    artifact::save(&path, &model, metadata.clone()).unwrap();
    let (loaded, loaded_metadata) = artifact::load(&path).unwrap();
    assert_eq!(loaded.format(), Some(FORMAT_VALUE));
    assert_eq!(loaded_metadata, metadata);
    assert_eq!(Prototype::from_tensors(loaded.tensors()).unwrap(), model);
    let q = gaussian(9, 5, 8);
    assert_eq!(loaded.predict_proba(q.view()), model.predict_proba(q.view()));
    assert_eq!((loaded.n_features(), loaded.n_classes()), (5, 4));
}

#[test]
fn damaged_tensors_are_refused_with_a_reason() {
    let model = PrototypeParams::default()
        .fit(gaussian(10, 4, 9).view(), &[0, 0, 0, 0, 0, 1, 1, 1, 1, 1], 3)
        .unwrap();
    let with = |name: &str, shape: Vec<usize>, data: Vec<f32>| -> String {
        let mut tensors = model.tensors();
        let t = tensors.iter_mut().find(|t| t.0 == name).unwrap();
        (t.1, t.2) = (shape, data);
        Prototype::from_tensors(tensors).unwrap_err()
    };
    let rows = model.tensors()[0].2.clone();
    assert!(with("prototypes", vec![4, 4], rows.clone()).contains("values"));
    assert!(with("prototypes", vec![12], rows.clone()).contains("2 dimensions"));
    assert!(with("prototypes", vec![3, 4], vec![0.9; 12]).contains("length"));
    assert!(with("counts", vec![2], vec![5.0, 5.0]).contains("expected [3]"));
    assert!(with("counts", vec![3], vec![5.0, -1.0, 0.0]).contains("whole numbers"));
    assert!(with("counts", vec![3], vec![0.0; 3]).contains("no class"));
    // Class 2 had no rows, so its prototype must be zero.
    let mut shifted = rows.clone();
    shifted.rotate_left(4);
    assert!(with("prototypes", vec![3, 4], shifted).contains("class 2 has no training rows"));
    let mut tensors = model.tensors();
    tensors.push(("scale".to_owned(), vec![1], vec![10.0]));
    assert!(Prototype::from_tensors(tensors).unwrap_err().contains("unexpected"));
}

#[test]
fn export_refuses_it_as_not_one_graph() {
    let model = PrototypeParams::default()
        .fit(gaussian(6, 4, 10).view(), &cycling(6, 2), 2)
        .unwrap();
    assert_eq!(model.dense_chain(), None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prototype.safetensors");
    artifact::save(&path, &model, card("prototype", 2, 4).to_metadata()).unwrap();
    let err = export(&ExportOptions {
        head: path,
        out_dir: dir.path().join("export"),
    })
    .unwrap_err();
    assert!(
        matches!(&err, ExportError::NotOneGraph { kind, .. } if kind == "prototype"),
        "{err}"
    );
    assert!(err.to_string().contains("holds a `prototype` classifier"), "{err}");
}

#[test]
fn is_send_sync_clone_and_debug() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Prototype>();
    check::<PrototypeParams>();
}
