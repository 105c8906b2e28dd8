use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::journal::Journal;
use super::leaderboard;
use super::space::{Space, SpaceError, TrialSpec};
use super::trial::{self, Outcome, Stat};
use crate::head::HeadParams;
use crate::knn::{KnnParams, KnnWeights};

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("c{i}")).collect()
}

/// `per_class` points per class around well separated centres in `d` dimensions; folds cycle.
fn blobs(classes: usize, per_class: usize, d: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = classes * per_class;
    let y: Vec<usize> = (0..n).map(|i| i % classes).collect();
    let x = Array2::from_shape_fn((n, d), |(i, j)| {
        let centre = if j % classes == y[i] { 2.0 } else { 0.0 };
        centre + rng.gen_range(-1.0f32..1.0)
    });
    (x, y)
}

#[test]
fn a_toml_space_expands_to_its_grid_in_a_fixed_order() {
    let text = r#"
        [knn]
        weights = ["uniform", "distance"]
        k = [1, 5]
        [mlp]
        hidden = ["none", 256, [512, 256]]
        learning_rate = [3e-4, 1e-3]
        [logistic]
        c = [0.1, 10]
        [prototype]
    "#;
    let value: serde_json::Value = toml::from_str(text).unwrap();
    let space = Space::from_value(&value, 7).unwrap();
    let kinds: Vec<&str> = space.trials.iter().map(TrialSpec::kind).collect();
    assert_eq!(kinds.len(), 6 + 2 + 4 + 1);
    assert_eq!(&kinds[..6], ["mlp"; 6]);
    assert_eq!(kinds[6..8], ["logistic"; 2]);
    assert_eq!(kinds[8..12], ["knn"; 4]);
    assert_eq!(kinds[12], "prototype");
    // Key order comes from the kind, not the file: k varies slowest, then weights.
    let knn: Vec<String> = space.trials[8..12].iter().map(TrialSpec::label).collect();
    assert_eq!(
        knn,
        [
            "knn k=1 uniform",
            "knn k=1 distance",
            "knn k=5 uniform",
            "knn k=5 distance"
        ]
    );
    let TrialSpec::Mlp(p) = &space.trials[4] else { panic!() };
    assert_eq!((p.hidden.clone(), p.learning_rate, p.seed), (vec![512, 256], 3e-4, 7));
    assert_eq!(
        p.dropout,
        HeadParams::default().dropout,
        "keys not given keep the defaults"
    );
    // Ids are stable and distinct.
    let ids: std::collections::BTreeSet<String> = space.trials.iter().map(TrialSpec::id).collect();
    assert_eq!(ids.len(), space.trials.len());
    assert_eq!(Space::from_value(&value, 7).unwrap(), space);
}

#[test]
fn space_errors_name_the_key_and_what_to_do() {
    let err = |v: serde_json::Value| Space::from_value(&v, 0).unwrap_err();
    assert_eq!(err(json!({})), SpaceError::Empty);
    assert_eq!(err(json!({"svm": {}})), SpaceError::UnknownKind("svm".into()));
    let unknown = err(json!({"mlp": {"dropot": 0.5}}));
    assert!(
        unknown.to_string().starts_with("`mlp.dropot` is not a setting of mlp"),
        "{unknown}"
    );
    assert!(unknown.to_string().contains("dropout"), "{unknown}");
    assert_eq!(
        err(json!({"knn": {"k": []}})),
        SpaceError::EmptyList {
            kind: "knn".into(),
            key: "k".into()
        }
    );
    let dropout = err(json!({"mlp": {"dropout": [0.2, 1.5]}})).to_string();
    assert_eq!(dropout, "`mlp.dropout` = 1.5: must be in [0, 1)");
    let k = err(json!({"knn": {"k": 0}})).to_string();
    assert_eq!(k, "`knn.k` = 0: must be a whole number >= 1");
    let weights = err(json!({"knn": {"weights": "cosine"}})).to_string();
    assert!(weights.contains("\"uniform\" or \"distance\""), "{weights}");
    let hidden = err(json!({"mlp": {"hidden": [[512, 0]]}})).to_string();
    assert!(hidden.starts_with("`mlp.hidden` = [512,0]"), "{hidden}");
    let lr = err(json!({"finetune": {"backbone_lr": -1e-4}})).to_string();
    assert_eq!(lr, "`finetune.backbone_lr` = -0.0001: must be > 0");
    let cut = err(json!({"finetune": {"cut": 3}})).to_string();
    assert!(cut.contains("the name of a cut"), "{cut}");
    let c = err(json!({"finetune": {"c": 1.0}})).to_string();
    assert!(c.contains("backbone_lr, batch_norm, cut"), "{c}");
    let bn = err(json!({"finetune": {"batch_norm": "moving"}})).to_string();
    assert_eq!(
        bn,
        "`finetune.batch_norm` = \"moving\": must be \"frozen\" or \"train\""
    );
}

#[test]
fn a_finetune_table_takes_the_head_keys_and_its_own() {
    let space = Space::from_value(
        &json!({"finetune": {"hidden": [8, "none"], "epochs": 2, "backbone_lr": [1e-4, 3e-4]}}),
        7,
    )
    .unwrap();
    let got: Vec<(Vec<usize>, usize, u64, f32, String)> = space
        .trials
        .iter()
        .map(|t| match t {
            TrialSpec::Finetune { cut, params } => (
                params.head.hidden.clone(),
                params.head.epochs,
                params.head.seed,
                params.backbone_lr,
                cut.clone(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            (vec![8], 2, 7, 1e-4, String::new()),
            (vec![8], 2, 7, 3e-4, String::new()),
            (vec![], 2, 7, 1e-4, String::new()),
            (vec![], 2, 7, 3e-4, String::new()),
        ]
    );
    assert_eq!(space.trials[0].kind(), "finetune");
    let named = Space::from_value(&json!({"finetune": {"cut": "last-block"}}), 0).unwrap();
    assert!(named.trials[0]
        .label()
        .starts_with("finetune cut=last-block backbone_lr=0.0001 hidden=512"));

    // Batch norm's mode is a dimension; the default leaves the trial's id as it was before the
    // key existed, so earlier journals still resume.
    let modes = Space::from_value(&json!({"finetune": {"batch_norm": ["frozen", "train"]}}), 0).unwrap();
    let [frozen, train] = &modes.trials[..] else {
        panic!("{:?}", modes.trials)
    };
    let plain = Space::from_value(&json!({"finetune": {"backbone_lr": 1e-4}}), 0).unwrap();
    assert_eq!(frozen.id(), plain.trials[0].id());
    assert!(!serde_json::to_string(frozen).unwrap().contains("batch_norm"));
    assert_ne!(train.id(), frozen.id());
    assert!(train.label().contains(" batch_norm=train "), "{}", train.label());
    assert!(!frozen.label().contains("batch_norm"), "{}", frozen.label());
    let TrialSpec::Finetune { params, .. } = train else {
        panic!()
    };
    assert_eq!(params.batch_norm, crate::finetune::BatchNormMode::Train);
}

/// Each fold of a fine-tune trial is the fine-tune of the same top, on the maps of the other
/// folds' images, scored on the held-out maps.
#[test]
fn each_fold_of_a_finetune_trial_equals_the_fine_tune_trained_alone() {
    use crate::finetune::{build, FinetuneParams, MapRows};
    let model = std::fs::read("tests/models/tiny_finetune.onnx").unwrap();
    let shape = crate::finetune::Geometry {
        channels: 8,
        height: 16,
        width: 16,
    };
    let top = build(&model, "cut", shape, "features").unwrap();
    // Maps whose first channel tells the class; embeddings that tell nothing, so a trial that
    // read them instead of the maps would score at chance.
    let (n, len) = (24, shape.len());
    let y: Vec<usize> = (0..n).map(|i| i % 2).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let maps = Array2::from_shape_fn((n, len), |(i, j)| {
        let signal = if j < 256 && y[i] == 1 { 1.0 } else { 0.0 };
        signal + rng.gen_range(-0.2f32..0.2)
    });
    let x = Array2::<f32>::zeros((n, 4));
    let fold: Vec<usize> = (0..n).map(|i| (i / 2) % 3).collect();
    let params = FinetuneParams {
        head: HeadParams::default().hidden(vec![8]).epochs(3).seed(5),
        backbone_lr: 1e-3,
        ..FinetuneParams::default()
    };
    let spec = TrialSpec::Finetune {
        cut: "block".into(),
        params: params.clone(),
    };
    let view = maps.view();
    let data = trial::TrialData {
        maps: Some((&view as &dyn MapRows, &top)),
        ..trial::TrialData::plain(x.view(), &y)
    };
    let result = trial::run_on(&spec, &data, &fold, 3, &names(2));
    let Outcome::Done { folds, .. } = &result.outcome else {
        panic!("{result:?}")
    };
    for (f, score) in folds.iter().enumerate() {
        let train: Vec<usize> = (0..n).filter(|&i| fold[i] != f).collect();
        let held: Vec<usize> = (0..n).filter(|&i| fold[i] == f).collect();
        let (mt, yt) = trial::gather(maps.view(), &y, &train);
        let (mh, yh) = trial::gather(maps.view(), &y, &held);
        let alone = crate::finetune::fit(top.clone(), &mt.view(), &yt, 2, None, &params, &mut |_| {}).unwrap();
        let probs = crate::classifier::Classifier::predict_proba(&alone.model, mh.view());
        let expected = trial::score(probs.view(), &yh, &names(2), 0.0);
        assert_eq!(
            (score.accuracy, score.log_loss),
            (expected.accuracy, expected.log_loss),
            "fold {f}"
        );
    }
    // Without maps the trial fails with the reason, not a panic.
    let plain = trial::run_on(&spec, &trial::TrialData::plain(x.view(), &y), &fold, 3, &names(2));
    assert!(matches!(&plain.outcome, Outcome::Failed { reason, .. } if reason.contains("no maps")));
}

#[test]
fn random_search_draws_a_seeded_subset_in_grid_order() {
    let space = Space::from_value(&json!({"knn": {"k": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}}), 0).unwrap();
    let a = space.random(4, 1);
    assert_eq!(a, space.random(4, 1));
    assert_eq!(a.len(), 4);
    assert_ne!(a, space.random(4, 2));
    let positions: Vec<usize> = a
        .iter()
        .map(|t| space.trials.iter().position(|s| s == t).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_eq!(space.random(50, 1), space.trials);
}

/// scipy.stats: `t.ppf(0.975, 4) = 2.776445`; mean 0.8, sample std 0.0790569 of the values below.
#[test]
fn stats_give_mean_sample_std_and_a_t_interval() {
    let s = Stat::of(&[0.7, 0.8, 0.9, 0.8, 0.8]);
    approx::assert_abs_diff_eq!(s.mean, 0.8, epsilon = 1e-12);
    approx::assert_abs_diff_eq!(s.std, 0.0707107, epsilon = 1e-6);
    let half = 2.776 * 0.0707107 / 5f64.sqrt();
    approx::assert_abs_diff_eq!(s.high - s.mean, half, epsilon = 1e-6);
    approx::assert_abs_diff_eq!(s.mean - s.low, half, epsilon = 1e-6);
    let one = Stat::of(&[0.5]);
    assert_eq!((one.std, one.low, one.high), (0.0, 0.5, 0.5));
}

#[test]
fn each_fold_of_a_trial_equals_the_same_config_trained_alone() {
    let (x, y) = blobs(3, 20, 6, 1);
    let fold: Vec<usize> = (0..y.len()).map(|i| (i / 3) % 4).collect();
    let spec = TrialSpec::Mlp(HeadParams::default().hidden(vec![8]).epochs(3).seed(5));
    let result = trial::run(&spec, x.view(), &y, &fold, 4, &names(3));
    let Outcome::Done { folds, accuracy, .. } = &result.outcome else {
        panic!("{result:?}")
    };
    assert_eq!(folds.len(), 4);
    for (f, score) in folds.iter().enumerate() {
        let train: Vec<usize> = (0..y.len()).filter(|&i| fold[i] != f).collect();
        let held: Vec<usize> = (0..y.len()).filter(|&i| fold[i] == f).collect();
        let (xt, yt) = trial::gather(x.view(), &y, &train);
        let (xh, yh) = trial::gather(x.view(), &y, &held);
        let TrialSpec::Mlp(p) = &spec else { unreachable!() };
        let alone = p.fit(xt.view(), &yt, 3, None, &mut |_| {}).unwrap().head;
        let probs = crate::classifier::Classifier::predict_proba(&alone, xh.view());
        let expected = trial::score(probs.view(), &yh, &names(3), 0.0);
        assert_eq!(
            (score.accuracy, score.log_loss),
            (expected.accuracy, expected.log_loss),
            "fold {f}"
        );
    }
    assert_eq!(accuracy.mean, folds.iter().map(|f| f.accuracy).sum::<f64>() / 4.0);
}

#[test]
fn a_diverging_or_invalid_trial_is_failed_with_its_reason() {
    let (x, y) = blobs(3, 10, 4, 2);
    let fold: Vec<usize> = (0..y.len()).map(|i| i % 2).collect();
    let huge = TrialSpec::Knn(KnnParams {
        k: 1000,
        weights: KnnWeights::Uniform,
    });
    let result = trial::run(&huge, x.view(), &y, &fold, 2, &names(3));
    let Outcome::Failed { fold, reason } = &result.outcome else {
        panic!("{result:?}")
    };
    assert_eq!(*fold, 0);
    assert!(!reason.is_empty());
}

#[test]
fn the_leaderboard_ranks_by_accuracy_then_log_loss_and_puts_failures_last() {
    let (x, y) = blobs(2, 12, 4, 3);
    let fold: Vec<usize> = (0..y.len()).map(|i| i % 3).collect();
    let specs = [
        TrialSpec::Knn(KnnParams {
            k: 1000,
            weights: KnnWeights::Uniform,
        }),
        TrialSpec::Knn(KnnParams {
            k: 1,
            weights: KnnWeights::Uniform,
        }),
        TrialSpec::Logistic { c: 1.0 },
    ];
    let mut results: Vec<_> = specs
        .iter()
        .map(|s| trial::run(s, x.view(), &y, &fold, 3, &names(2)))
        .collect();
    leaderboard::rank(&mut results);
    assert!(matches!(results[2].outcome, Outcome::Failed { .. }));
    let key = |r: &trial::TrialResult| match &r.outcome {
        Outcome::Done { folds, log_loss, .. } => (trial::correct(folds), log_loss.mean),
        Outcome::Failed { .. } => unreachable!(),
    };
    let (a, b) = (key(&results[0]), key(&results[1]));
    assert!(a.0 > b.0 || (a.0 == b.0 && a.1 <= b.1), "{a:?} {b:?}");
    let csv = leaderboard::csv(&results);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], leaderboard::CSV_HEADER);
    assert_eq!(lines.len(), 4);
    assert!(
        lines[3].starts_with("3,") && lines[3].contains(",failed,"),
        "{}",
        lines[3]
    );
    assert_eq!(lines[1].split(',').count(), leaderboard::CSV_HEADER.split(',').count());
}

#[test]
fn the_journal_keeps_finished_trials_and_skips_a_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), "p").unwrap();
    let (x, y) = blobs(2, 6, 3, 4);
    let fold: Vec<usize> = (0..y.len()).map(|i| i % 2).collect();
    let a = trial::run(&TrialSpec::Logistic { c: 1.0 }, x.view(), &y, &fold, 2, &names(2));
    let b = trial::run(&TrialSpec::Logistic { c: 2.0 }, x.view(), &y, &fold, 2, &names(2));
    journal.append(&a).unwrap();
    // A kill mid-write leaves half a line; the next append starts on a fresh line.
    let mut text = std::fs::read_to_string(journal.path()).unwrap();
    text += &serde_json::to_string(&b).unwrap()[..20];
    std::fs::write(journal.path(), &text).unwrap();
    assert_eq!(journal.read().unwrap().len(), 1);
    journal.append(&b).unwrap();
    let read = journal.read().unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[&a.id], a);
    assert_eq!(read[&b.id], b);
}
