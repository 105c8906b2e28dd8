use super::*;
use crate::artifact::{self, ArtifactError};
use approx::assert_abs_diff_eq;
use safetensors::tensor::{Dtype, TensorView};

/// Deterministic standard-normal samples (xorshift + Box-Muller), so the
/// tests need no RNG crate and never flake.
struct Normal(u64);

impl Normal {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn sample(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

/// `n` points around one centre per class (`spread` apart), labels cycling
/// through `classes`.
fn blobs(n: usize, d: usize, classes: &[usize], spread: f32, seed: u64) -> (Array2<f32>, Vec<usize>) {
    let mut rng = Normal(seed);
    let y: Vec<usize> = (0..n).map(|i| classes[i % classes.len()]).collect();
    let x = Array2::from_shape_fn((n, d), |(i, j)| {
        let centre = if j % 7 == y[i] % 7 { spread } else { 0.0 };
        3.0 + 2.0 * (centre + rng.sample())
    });
    (x, y)
}

#[test]
fn default_alphas_span_c_from_0_01_to_1000() {
    let alphas = BaselineParams::default_alphas();
    assert_eq!(alphas.len(), 11);
    assert_abs_diff_eq!(1.0 / alphas[0], 0.01, epsilon = 1e-12);
    assert_abs_diff_eq!(1.0 / alphas[10], 1000.0, epsilon = 1e-9);
}

/// A single long linfa run on the standardised data, for reference.
fn linfa_reference(
    x: &Array2<f32>,
    y: &[usize],
    alpha: f64,
) -> (Array2<f64>, linfa_logistic::MultiFittedLogisticRegression<f64, usize>) {
    let (mean, std) = standardisation(x.view());
    let x_std: Array2<f64> = standardise(x.view(), &mean, &std);
    let dataset = DatasetBase::new(x_std.view(), Array1::from(y.to_vec()));
    let model = MultiLogisticRegression::default()
        .alpha(alpha)
        .max_iterations(1000)
        .gradient_tolerance(1e-6)
        .fit(&dataset)
        .unwrap();
    (x_std, model)
}

#[test]
fn params_round_trip_through_json_and_default_missing_fields() {
    let params = BaselineParams::default().alphas(vec![0.5, 2.0]).max_iterations(50);
    let json = serde_json::to_string(&params).unwrap();
    assert_eq!(serde_json::from_str::<BaselineParams>(&json).unwrap(), params);
    let partial: BaselineParams = serde_json::from_str(r#"{"tolerance": 0.001}"#).unwrap();
    assert_eq!(partial, BaselineParams::default().tolerance(0.001));
}

#[test]
fn predictions_match_linfa_for_the_same_parameters() {
    let (x, y) = blobs(120, 6, &[0, 1, 2], 0.7, 1);
    let (x_std, reference) = linfa_reference(&x, &y, 0.5);
    let mut params = reference.params().clone();
    params.push_row(reference.intercept().view()).unwrap();
    let (mean, std) = standardisation(x.view());
    let model = Baseline::from_linfa(&mean, &std, &params, reference.classes(), 3);
    let expected = reference.predict_probabilities(&x_std);
    let actual = model.predict_proba(x.view());
    assert_eq!(actual.dim(), (120, 3));
    for (a, e) in actual.iter().zip(expected.iter()) {
        assert_abs_diff_eq!(f64::from(*a), *e, epsilon = 1e-5);
    }
}

#[test]
fn fit_reaches_the_same_optimum_as_one_long_linfa_run() {
    let (x, y) = blobs(120, 6, &[0, 1, 2], 0.7, 1);
    let fitted = BaselineParams::default()
        .tolerance(1e-7)
        .fit(x.view(), &y, 3, None)
        .unwrap();
    assert_eq!(fitted.selection, AlphaSelection::Fallback);
    assert_eq!(fitted.chosen_alpha, DEFAULT_ALPHA);
    assert_eq!(fitted.sweep.len(), 1);
    assert!(fitted.sweep[0].val_accuracy.is_none());
    assert_eq!(fitted.sweep[0].status, FitStatus::Converged);
    let (x_std, reference) = linfa_reference(&x, &y, DEFAULT_ALPHA);
    let expected = reference.predict_probabilities(&x_std);
    let actual = fitted.model.predict_proba(x.view());
    for (a, e) in actual.iter().zip(expected.iter()) {
        assert_abs_diff_eq!(f64::from(*a), *e, epsilon = 1e-4);
    }
}

#[test]
fn classes_missing_from_training_get_zero_probability_and_columns_stay_aligned() {
    // linfa only sees labels {1, 4} and numbers its columns 0 and 1.
    let (x, y) = blobs(80, 8, &[4, 1], 4.0, 2);
    let fitted = BaselineParams::default().fit(x.view(), &y, 6, None).unwrap();
    let probs = fitted.model.predict_proba(x.view());
    assert_eq!(probs.ncols(), 6);
    for row in probs.rows() {
        assert_abs_diff_eq!(row.sum(), 1.0, epsilon = 1e-5);
        for unseen in [0, 2, 3, 5] {
            assert_eq!(row[unseen], 0.0);
        }
    }
    assert_eq!(accuracy(probs.view(), &y), 1.0);
}

#[test]
fn learns_a_separable_problem_and_reports_the_sweep() {
    let (x, y) = blobs(150, 10, &[0, 1, 2], 3.0, 3);
    let (vx, vy) = blobs(60, 10, &[0, 1, 2], 3.0, 4);
    let fitted = BaselineParams::default()
        .fit(x.view(), &y, 3, Some((vx.view(), &vy)))
        .unwrap();
    assert_eq!(fitted.selection, AlphaSelection::Validation);
    assert_eq!(fitted.sweep.len(), 11);
    assert!(fitted.sweep.windows(2).all(|w| w[0].alpha > w[1].alpha));
    for point in &fitted.sweep {
        assert_abs_diff_eq!(point.alpha * point.c, 1.0, epsilon = 1e-12);
        assert_eq!(point.status, FitStatus::Converged, "{point:?}");
    }
    assert_eq!(accuracy(fitted.model.predict_proba(vx.view()).view(), &vy), 1.0);
}

#[test]
fn sweep_keeps_the_alpha_with_the_best_validation_score() {
    // Few samples, many noisy features: the weakest L2 overfits the noise.
    let (x, y) = blobs(60, 300, &[0, 1], 0.25, 5);
    let (vx, vy) = blobs(400, 300, &[0, 1], 0.25, 6);
    let fitted = BaselineParams::default()
        .fit(x.view(), &y, 2, Some((vx.view(), &vy)))
        .unwrap();
    let best = fitted.sweep.iter().filter_map(|p| p.val_accuracy).fold(0.0, f64::max);
    let chosen = fitted.sweep.iter().find(|p| p.alpha == fitted.chosen_alpha).unwrap();
    assert_eq!(chosen.val_accuracy, Some(best));
    let weakest = fitted.sweep.last().unwrap();
    assert!(weakest.val_accuracy.unwrap() < best, "{:#?}", fitted.sweep);
    let probs = fitted.model.predict_proba(vx.view());
    assert_abs_diff_eq!(accuracy(probs.view(), &vy), best);
}

/// The largest logit of the batch minus the lowest per-sample
/// log-sum-exp: above ~34.5, unpatched linfa-logistic 0.8.1 got the loss
/// and gradient of the lowest samples wrong.
fn logit_spread(model: &Baseline, x: ArrayView2<f32>) -> f32 {
    let logits = standardise::<f32>(x, &model.mean, &model.std).dot(&model.weights) + &model.intercept;
    let global_max = logits.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let lowest_log_sum = logits
        .rows()
        .into_iter()
        .map(|row| {
            let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            max + row.iter().map(|v| (v - max).exp()).sum::<f32>().ln()
        })
        .fold(f32::INFINITY, f32::min);
    global_max - lowest_log_sum
}

/// Fails on the published linfa-logistic 0.8.1 (without Cargo.toml's
/// `[patch.crates-io]`): its batch-wide maximum in log-sum-exp makes L-BFGS
/// stop far from this optimum. The golden probabilities come from
/// scikit-learn 1.9.1 on the same standardised data:
///
/// ```python
/// import numpy as np
/// from sklearn.linear_model import LogisticRegression
/// from sklearn.preprocessing import StandardScaler
/// x = np.array([[-3.0, 0.5], [-2.6, -0.4], [-2.2, 0.1], [-1.8, 0.9], [-0.9, -0.7], [-0.5, 0.3],
///               [-0.1, -0.2], [0.3, 0.8], [0.7, -0.9], [1.5, 0.4], [1.9, -0.3], [2.4, 0.6],
///               [2.8, -0.1], [3.2, 0.2], [40.0, 0.0], [-40.0, 0.0]])
/// y = np.array([0, 0, 0, 1, 0, 1, 1, 2, 1, 1, 2, 2, 2, 2, 2, 0])
/// xs = StandardScaler().fit_transform(x)
/// m = LogisticRegression(C=1000, solver="lbfgs", tol=1e-12, max_iter=100000).fit(xs, y)
/// for row in m.predict_proba(xs):
///     print("[" + ", ".join(f"{p:.6e}" for p in row) + "],")
/// ```
#[test]
fn fit_matches_scikit_learn_when_logits_are_far_apart_linfa_patch() {
    let x = ndarray::array![
        [-3.0f32, 0.5],
        [-2.6, -0.4],
        [-2.2, 0.1],
        [-1.8, 0.9],
        [-0.9, -0.7],
        [-0.5, 0.3],
        [-0.1, -0.2],
        [0.3, 0.8],
        [0.7, -0.9],
        [1.5, 0.4],
        [1.9, -0.3],
        [2.4, 0.6],
        [2.8, -0.1],
        [3.2, 0.2],
        [40.0, 0.0],
        [-40.0, 0.0]
    ];
    let y = [0, 0, 0, 1, 0, 1, 1, 2, 1, 1, 2, 2, 2, 2, 2, 0];
    let expected = ndarray::array![
        [9.368067e-01, 6.291385e-02, 2.794341e-04],
        [9.954753e-01, 4.517615e-03, 7.062497e-06],
        [8.942616e-01, 1.049952e-01, 7.432527e-04],
        [8.020958e-02, 8.714978e-01, 4.829261e-02],
        [8.653144e-01, 1.331566e-01, 1.529047e-03],
        [2.589397e-02, 8.624402e-01, 1.116658e-01],
        [6.907966e-02, 8.505021e-01, 8.041825e-02],
        [1.815915e-04, 4.839075e-01, 5.159110e-01],
        [1.325875e-01, 7.978603e-01, 6.955223e-02],
        [1.697033e-05, 2.444984e-01, 7.554846e-01],
        [1.710792e-04, 3.895575e-01, 6.102715e-01],
        [1.293442e-07, 5.527610e-02, 9.447238e-01],
        [1.531855e-06, 1.034658e-01, 8.965327e-01],
        [4.739601e-08, 3.541120e-02, 9.645888e-01],
        [1.650627e-76, 6.770219e-26, 1.000000e+00],
        [1.000000e+00, 3.555202e-48, 6.020729e-75]
    ];
    let fitted = BaselineParams::default()
        .fallback_alpha(1e-3)
        // 1e-9 at this alpha (the tolerance is scaled by alpha below 1).
        .tolerance(1e-6)
        .fit(x.view(), &y, 3, None)
        .unwrap();
    assert_eq!(fitted.sweep[0].status, FitStatus::Converged, "{:?}", fitted.sweep);
    // The premise: the optimum has samples far below the batch's largest logit.
    assert!(logit_spread(&fitted.model, x.view()) > 40.0);
    let actual = fitted.model.predict_proba(x.view());
    for (a, e) in actual.iter().zip(expected.iter()) {
        assert_abs_diff_eq!(f64::from(*a), *e, epsilon = 1e-4);
    }
}

#[test]
fn weak_alphas_on_separable_noise_converge_and_the_whole_grid_is_fitted() {
    // Pure noise with more parameters than samples is separable, so weak
    // L2 drives the logits far apart: this stalled unpatched linfa-logistic.
    let (x, y) = blobs(1000, 400, &[0, 1, 2, 3], 0.0, 13);
    let (vx, vy) = blobs(60, 400, &[0, 1, 2, 3], 0.0, 14);
    let alphas = vec![1e-4, 10.0, 1e-2, 1.0];
    let fitted = BaselineParams::default()
        .alphas(alphas)
        .fit(x.view(), &y, 4, Some((vx.view(), &vy)))
        .unwrap();
    assert_eq!(fitted.sweep.len(), 4);
    for point in &fitted.sweep {
        assert_eq!(point.status, FitStatus::Converged, "{:#?}", fitted.sweep);
        // The tolerance is finer in proportion to alpha below 1, so the weak
        // fits get close to their optimum on this flat surface.
        assert!(point.gradient_norm <= 1e-4 * point.alpha.min(1.0), "{point:?}");
    }
    let weakest = fitted.sweep.last().unwrap();
    assert_eq!(weakest.alpha, 1e-4);
    assert_eq!(weakest.train_accuracy, 1.0);
    assert!(fitted.model.predict_proba(vx.view()).iter().all(|p| p.is_finite()));
}

#[test]
fn save_and_load_round_trip() {
    let (x, y) = blobs(60, 5, &[0, 2], 1.0, 7);
    let model = BaselineParams::default().fit(x.view(), &y, 3, None).unwrap().model;
    let loaded = artifact::saved_and_loaded(&model);
    assert_eq!(loaded.format(), Some(FORMAT_VALUE));
    assert_eq!(Baseline::from_tensors(loaded.tensors()).unwrap(), model);
    assert_eq!(loaded.predict_proba(x.view()), model.predict_proba(x.view()));
}

#[test]
fn save_and_load_errors_name_the_problem() {
    let (x, y) = blobs(20, 3, &[0, 1], 1.0, 8);
    let model = BaselineParams::default().fit(x.view(), &y, 2, None).unwrap().model;
    let dir = tempfile::tempdir().unwrap();

    let reserved = BTreeMap::from([(artifact::FORMAT_KEY.to_owned(), "x".to_owned())]);
    let err = artifact::save(&dir.path().join("m"), &model, reserved).unwrap_err();
    assert!(matches!(err, ArtifactError::ReservedMetadataKey(_)));

    let missing = dir.path().join("nope/m.safetensors");
    let err = artifact::load(&missing).unwrap_err();
    assert!(matches!(err, ArtifactError::Read { .. }), "{err}");
    // A missing folder is created; a folder that cannot exist is a write error.
    artifact::save(&missing, &model, BTreeMap::new()).unwrap();
    let under_a_file = missing.join("m.safetensors");
    let err = artifact::save(&under_a_file, &model, BTreeMap::new()).unwrap_err();
    assert!(err.to_string().contains("m.safetensors/m.safetensors"), "{err}");
    let err = artifact::load(&under_a_file).unwrap_err();
    assert!(matches!(err, ArtifactError::Read { .. }), "{err}");

    let other = dir.path().join("other.safetensors");
    let data = [0u8; 8];
    let view = TensorView::new(Dtype::F32, vec![2], &data).unwrap();
    safetensors::serialize_to_file([("w", view)], &None, &other).unwrap();
    let err = artifact::load(&other).unwrap_err();
    assert!(err.to_string().contains("headstart_format"), "{err}");
}

#[test]
fn the_folded_layer_reproduces_predict_proba() {
    let (x, y) = blobs(80, 6, &[0, 1, 3], 1.0, 13);
    let model = BaselineParams::default().fit(x.view(), &y, 4, None).unwrap().model;
    let chain = Classifier::dense_chain(&model).unwrap();
    assert_eq!((chain.layers.len(), chain.activation), (1, Activation::Softmax));
    let mut logits = x.dot(&chain.layers[0].weight) + &chain.layers[0].bias;
    for mut row in logits.rows_mut() {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row /= sum;
    }
    let expected = model.predict_proba(x.view());
    for (&f, &e) in logits.iter().zip(&expected) {
        assert_abs_diff_eq!(f, e, epsilon = 1e-5);
    }
}

#[test]
fn invalid_inputs_are_rejected_with_the_offending_parameter() {
    let (x, y) = blobs(20, 3, &[0, 1], 1.0, 9);
    let params = BaselineParams::default();
    let err = params.fit(x.view(), &y[..19], 2, None).unwrap_err();
    assert!(matches!(
        err,
        BaselineError::Set(SetError::LabelCount {
            rows: 20,
            labels: 19,
            ..
        })
    ));
    let err = params.fit(x.view(), &y, 1, None).unwrap_err();
    assert!(matches!(
        err,
        BaselineError::Set(SetError::LabelOutOfRange { label: 1, .. })
    ));
    let err = params.fit(x.view(), &[0; 20], 2, None).unwrap_err();
    assert!(matches!(err, BaselineError::TooFewClasses { found: 1 }));
    let mut bad = x.clone();
    bad[[3, 2]] = f32::NAN;
    let err = params.fit(bad.view(), &y, 2, None).unwrap_err();
    assert!(matches!(
        err,
        BaselineError::Set(SetError::NonFinite { row: 3, col: 2, .. })
    ));
    let err = params
        .fit(x.view(), &y, 2, Some((x.slice(ndarray::s![.., ..2]), &y)))
        .unwrap_err();
    assert!(matches!(err, BaselineError::FeatureMismatch { expected: 3, found: 2 }));
    let err = BaselineParams::default()
        .alphas(vec![])
        .fit(x.view(), &y, 2, None)
        .unwrap_err();
    assert!(err.to_string().contains("alphas"), "{err}");
    let err = BaselineParams::default()
        .max_iterations(0)
        .fit(x.view(), &y, 2, None)
        .unwrap_err();
    assert!(err.to_string().contains("max_iterations"), "{err}");
    assert_eq!(err.parameter(), Some("max_iterations"));
    let err = BaselineParams::default()
        .tolerance(-1.0)
        .fit(x.view(), &y, 2, None)
        .unwrap_err();
    assert!(err.to_string().contains("`tolerance`"), "{err}");
    assert_eq!(err.parameter(), Some("tolerance"));
}

#[test]
fn constant_features_do_not_blow_up() {
    let (mut x, y) = blobs(30, 4, &[0, 1], 2.0, 10);
    x.column_mut(1).fill(0.1);
    let (mean, std) = standardisation(x.view());
    assert_eq!(std[1], 1.0);
    assert_abs_diff_eq!(mean[1], 0.1);
    let fitted = BaselineParams::default().fit(x.view(), &y, 2, None).unwrap();
    assert!(fitted.model.predict_proba(x.view()).iter().all(|p| p.is_finite()));
}

/// Run with `cargo test --release -- --ignored --nocapture sweep_timing`.
#[test]
#[ignore = "timing measurement, takes a while"]
fn sweep_timing() {
    for (name, spread) in [("pure noise", 0.0), ("class structure", 0.3)] {
        let (x, y) = blobs(3225, 1280, &[0, 1, 2, 3, 4], spread, 11);
        let (vx, vy) = blobs(800, 1280, &[0, 1, 2, 3, 4], spread, 12);
        let started = Instant::now();
        let fitted = BaselineParams::default()
            .fit(x.view(), &y, 5, Some((vx.view(), &vy)))
            .unwrap();
        println!(
            "{name}: total {:.1}s, chosen alpha {}",
            started.elapsed().as_secs_f64(),
            fitted.chosen_alpha
        );
        for p in &fitted.sweep {
            println!(
                "  C={:>8.3} train={:.3} val={:.3} loss={:.3} grad={:.2e} {:?} {:.1}s",
                p.c,
                p.train_accuracy,
                p.val_accuracy.unwrap(),
                p.val_loss.unwrap(),
                p.gradient_norm,
                p.status,
                p.seconds
            );
        }
    }
}

#[test]
fn path_start_extrapolates_in_log_alpha_at_most_one_step() {
    let older = ndarray::array![[1.0, -1.0]];
    let newest = ndarray::array![[2.0, -3.0]];
    assert_eq!(path_start::<ndarray::Ix2>(&[], 0.1), None);
    assert_eq!(path_start(&[(1.0, newest.clone())], 0.1), Some(newest.clone()));
    let path = [(10.0, older), (1.0, newest)];
    // the same step in ln alpha as the last one: one whole step on
    assert_abs_diff_eq!(
        path_start(&path, 0.1).unwrap(),
        ndarray::array![[3.0, -5.0]],
        epsilon = 1e-12
    );
    // half that step: half as far
    assert_abs_diff_eq!(
        path_start(&path, 10f64.powf(-0.5)).unwrap(),
        ndarray::array![[2.5, -4.0]],
        epsilon = 1e-12
    );
    // a longer step is not extrapolated past one step
    assert_abs_diff_eq!(
        path_start(&path, 0.001).unwrap(),
        ndarray::array![[3.0, -5.0]],
        epsilon = 1e-12
    );
}

/// The multi-label set of `one_vs_rest_matches_scikit_learn`: 40 rows of 4 features, three
/// labels from linear rules (22, 14 and 18 positives, so linfa's positive class is "present"
/// for some labels and "absent" for others).
fn multi_label_set() -> (Array2<f32>, Array2<f32>) {
    let x = Array2::from_shape_fn((40, 4), |(i, j)| ((i * 7 + j * 3) as f64).sin() + 0.1 * j as f64);
    let y = Array2::from_shape_fn((40, 3), |(i, l)| {
        let present = match l {
            0 => x[[i, 0]] + 0.3 * x[[i, 2]] > 0.0,
            1 => x[[i, 1]] - 0.5 * x[[i, 3]] > 0.1,
            _ => x[[i, 2]] > 0.5,
        };
        f32::from(u8::from(present))
    });
    (x.mapv(|v| v as f32), y)
}

/// Golden values from scikit-learn 1.9.1 on the standardised set of [`multi_label_set`]:
/// ```python
/// x = np.array([[np.sin(i * 7 + j * 3) + 0.1 * j for j in range(4)] for i in range(40)])
/// y = np.stack([(x[:, 0] + 0.3 * x[:, 2] > 0), (x[:, 1] - 0.5 * x[:, 3] > 0.1), (x[:, 2] > 0.5)], 1).astype(int)
/// xs = (x - x.mean(0)) / x.std(0)
/// m = OneVsRestClassifier(LogisticRegression(C=2.0, tol=1e-12, max_iter=10000)).fit(xs, y)
/// m.predict_proba(xs[:5]).flatten()
/// ```
#[test]
fn one_vs_rest_matches_scikit_learn() {
    let (x, y) = multi_label_set();
    let fit = BaselineParams::default()
        .fallback_alpha(0.5)
        .tolerance(1e-7)
        .fit_multi_label(x.view(), y.view(), None)
        .unwrap();
    assert_eq!(fit.selection, AlphaSelection::Fallback);
    assert_eq!(fit.sweep[0].status, FitStatus::Converged, "{:?}", fit.sweep[0]);
    let want = [
        0.2536498, 0.1954069, 0.0241081, 0.977848, 0.0077125, 0.805119, 0.9989735, 0.0012444, 0.9924138, 0.998743,
        0.0024571, 0.9930647, 0.9636966, 0.0411712, 0.8382448,
    ];
    let got = fit.model.predict_proba(x.slice(ndarray::s![..5, ..]));
    for (g, w) in got.iter().zip(want) {
        assert_abs_diff_eq!(*g, w, epsilon = 1e-4);
    }

    // The file says it is one-vs-rest, and reads back as such.
    let loaded = artifact::saved_and_loaded(&fit.model);
    assert_eq!(loaded.format(), Some(MULTI_LABEL_FORMAT));
    assert_eq!(loaded.predict_proba(x.view()), fit.model.predict_proba(x.view()));
    assert_eq!(loaded.dense_chain().unwrap().activation, Activation::Sigmoid);
}

#[test]
fn one_vs_rest_chooses_alpha_by_validation_map_and_handles_constant_labels() {
    let (x, mut y) = multi_label_set();
    // A label no training image has, and one every image has.
    let mut extra = Array2::zeros((40, 2));
    extra.column_mut(1).fill(1.0);
    y = ndarray::concatenate![Axis(1), y, extra];
    let (train, val) = (ndarray::s![..30, ..], ndarray::s![30.., ..]);
    let fit = BaselineParams::default()
        .fit_multi_label(x.slice(train), y.slice(train), Some((x.slice(val), y.slice(val))))
        .unwrap();
    assert_eq!(fit.sweep.len(), BaselineParams::default_alphas().len());
    let best = fit.sweep.iter().map(|p| p.val_map.unwrap()).fold(f64::MIN, f64::max);
    let chosen = fit.sweep.iter().find(|p| p.alpha == fit.chosen_alpha).unwrap();
    assert_eq!(chosen.val_map, Some(best));
    let probs = fit.model.predict_proba(x.view());
    assert!(probs.column(3).iter().all(|&p| p == 0.0));
    assert!(probs.column(4).iter().all(|&p| p == 1.0));
}

/// Checks the rules of a widened sweep of `grid` with `limit` steps per side: the grid's own
/// points are all there and unmarked, the added ones lie past its edges by its outermost step,
/// the chosen alpha is the best of them all, and a side stopped short of its limit only when
/// its outermost point was not chosen.
fn assert_widened_as_documented(fit: &FittedBaseline, grid: &[f64], limit: usize) {
    let alphas: Vec<f64> = fit.sweep.iter().map(|p| p.alpha).collect();
    assert!(alphas.windows(2).all(|w| w[0] > w[1]), "{alphas:?}");
    let kept: Vec<f64> = fit.sweep.iter().filter(|p| !p.widened).map(|p| p.alpha).collect();
    assert_eq!(kept, grid);
    let (strong, weak) = (grid[0] / grid[1], grid[grid.len() - 2] / grid[grid.len() - 1]);
    let stronger: Vec<&SweepPoint> = fit.sweep.iter().filter(|p| p.alpha > grid[0]).collect();
    let weaker: Vec<&SweepPoint> = fit.sweep.iter().filter(|p| p.alpha < grid[grid.len() - 1]).collect();
    assert!(stronger.iter().chain(&weaker).all(|p| p.widened));
    for (i, p) in stronger.iter().rev().enumerate() {
        assert_abs_diff_eq!(p.alpha, grid[0] * strong.powi(i as i32 + 1), epsilon = 1e-9 * p.alpha);
    }
    for (i, p) in weaker.iter().enumerate() {
        assert_abs_diff_eq!(
            p.alpha,
            grid[grid.len() - 1] / weak.powi(i as i32 + 1),
            epsilon = 1e-9 * p.alpha
        );
    }
    let chosen = fit.sweep.iter().find(|p| p.alpha == fit.chosen_alpha).unwrap();
    let key = |p: &SweepPoint| (p.val_map.or(p.val_accuracy).unwrap(), -p.val_loss.unwrap());
    assert!(fit.sweep.iter().all(|p| key(p) <= key(chosen)), "{:#?}", fit.sweep);
    if fit.chosen_alpha == alphas[0] {
        assert_eq!(stronger.len(), limit, "{:#?}", fit.sweep);
    }
    if fit.chosen_alpha == alphas[alphas.len() - 1] {
        assert_eq!(weaker.len(), limit, "{:#?}", fit.sweep);
    }
}

/// Two classes on one feature, 3 to 1, with validation images of the majority class lying on
/// the minority's side of the boundary: the training data puts them in the minority, and only
/// an L2 strong enough to flatten the slope leaves the (unpenalised) intercept's majority.
fn needs_strong_l2() -> (Array2<f32>, Vec<usize>, Array2<f32>, Vec<usize>) {
    let mut rng = Normal(21);
    let y: Vec<usize> = (0..40).map(|i| usize::from(i % 4 == 0)).collect();
    let x = Array2::from_shape_fn(
        (40, 1),
        |(i, _)| if y[i] == 1 { 1.0 } else { -1.0 } + 0.3 * rng.sample(),
    );
    let vx = Array2::from_shape_fn((10, 1), |_| 0.5 + 0.1 * rng.sample());
    (x, y, vx, vec![0; 10])
}

/// The two-class baseline on `grid`, widened at most `widen` steps a side, C chosen on `vx`.
fn fit_on_grid(
    grid: &[f64],
    widen: usize,
    x: &Array2<f32>,
    y: &[usize],
    vx: &Array2<f32>,
    vy: &[usize],
) -> FittedBaseline {
    BaselineParams::default()
        .alphas(grid.to_vec())
        .widen(widen)
        .fit(x.view(), y, 2, Some((vx.view(), vy)))
        .unwrap()
}

#[test]
fn a_best_alpha_on_the_strong_edge_widens_the_grid_past_it() {
    let (x, y, vx, vy) = needs_strong_l2();
    let grid = [1.0, 0.1];
    let fit = fit_on_grid(&grid, BaselineParams::DEFAULT_WIDEN, &x, &y, &vx, &vy);
    assert_widened_as_documented(&fit, &grid, BaselineParams::DEFAULT_WIDEN);
    assert!(fit.chosen_alpha > 1.0, "{:#?}", fit.sweep);
    let chosen = fit.sweep.iter().find(|p| p.alpha == fit.chosen_alpha).unwrap();
    assert!(chosen.val_accuracy > fit.sweep.iter().find(|p| p.alpha == 1.0).unwrap().val_accuracy);

    let kept = fit_on_grid(&grid, 0, &x, &y, &vx, &vy);
    assert_eq!(kept.sweep.len(), 2);
    assert!(kept.sweep.iter().all(|p| !p.widened));
}

#[test]
fn a_best_alpha_on_the_weak_edge_widens_the_grid_past_it() {
    // Few samples, many noisy features (as above), seen through a grid of strong L2 only.
    let (x, y) = blobs(60, 300, &[0, 1], 0.25, 5);
    let (vx, vy) = blobs(400, 300, &[0, 1], 0.25, 6);
    let grid = [1e4, 1e3];
    let fit = fit_on_grid(&grid, BaselineParams::DEFAULT_WIDEN, &x, &y, &vx, &vy);
    assert_widened_as_documented(&fit, &grid, BaselineParams::DEFAULT_WIDEN);
    assert!(fit.chosen_alpha < 1e3, "{:#?}", fit.sweep);
}

#[test]
fn one_vs_rest_widens_its_grid_past_an_edge() {
    let (x, y) = multi_label_set();
    let (train, val) = (ndarray::s![..30, ..], ndarray::s![30.., ..]);
    for grid in [[1e4, 1e3], [1e-3, 1e-4]] {
        let fit = BaselineParams::default()
            .alphas(grid.to_vec())
            .fit_multi_label(x.slice(train), y.slice(train), Some((x.slice(val), y.slice(val))))
            .unwrap();
        assert_widened_as_documented(&fit, &grid, BaselineParams::DEFAULT_WIDEN);
        assert!(fit.sweep.iter().any(|p| p.widened), "{:#?}", fit.sweep);
    }
}
