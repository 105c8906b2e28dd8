//! Augmented views cached once (`extract --augment K`), drawn by `train-head`, and test-time
//! augmentation (`extract --tta`, `eval --tta`, `predict --tta`), on generated images with the
//! tiny test model.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{headstart, make_dataset, run_json, tensors, tiny_model};
use predicates::str::contains;

/// `extract` with the tiny model and `extra` flags; exit code 3 (some file skipped) when the
/// broken JPEG is still in the data.
fn extract(ws: &Path, data: &Path, extra: &[&str]) -> serde_json::Value {
    let code = if data.join("class1/broken.jpg").exists() { 3 } else { 0 };
    let out = headstart(ws)
        .args([
            "--json",
            "extract",
            "--val-percent",
            "20",
            "--test-percent",
            "20",
            "--model",
        ])
        .arg(tiny_model("tiny_nchw"))
        .args(extra)
        .arg("--data")
        .arg(data)
        .assert()
        .code(code)
        .get_output()
        .stdout
        .clone();
    common::json(&out)
}

fn n_train(summary: &serde_json::Value) -> usize {
    summary["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c[0].as_u64().unwrap() as usize)
        .sum()
}

fn dataset() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    make_dataset(&data, 3, 20);
    (tmp, data, ws)
}

#[test]
fn raising_k_computes_only_the_new_views_and_a_broken_file_counts_once() {
    let (_tmp, data, ws) = dataset();
    let first = extract(&ws, &data, &["--augment", "2"]);
    let n = n_train(&first);
    assert!(n >= 20, "{n} train images");
    assert_eq!(first["views_computed"], 2 * n);
    assert_eq!(first["views"], 2 * n);
    // The broken JPEG is one skipped file, not one per view.
    let skipped = first["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(first["views_failed"].as_array().unwrap().is_empty());

    let raised = extract(&ws, &data, &["--augment", "4"]);
    assert_eq!(raised["computed"], 0);
    assert_eq!(raised["views_computed"], 2 * n);
    assert_eq!(raised["views"], 4 * n);
    let again = extract(&ws, &data, &["--augment", "4"]);
    assert_eq!(again["views_computed"], 0);

    // Other settings are other views: all computed anew, and the old ones dropped from disk.
    let reseeded = extract(&ws, &data, &["--augment", "4", "--augment-seed", "9"]);
    assert_eq!(reseeded["views_computed"], 4 * n);
    let key = reseeded["backbone"]["key"].as_str().unwrap();
    let view_dirs: Vec<String> = std::fs::read_dir(ws.join("embeddings").join(key))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("views-"))
        .collect();
    assert_eq!(view_dirs.len(), 1, "{view_dirs:?}");

    // Another input size is another backbone key: its views never mix with these.
    let resized = extract(&ws, &data, &["--augment", "4", "--augment-seed", "9", "--resize", "40"]);
    assert_ne!(resized["backbone"]["key"], reseeded["backbone"]["key"]);
    assert_eq!(resized["views_computed"], 4 * n);
}

#[test]
fn the_same_seed_and_k_give_bit_identical_heads_and_the_views_change_the_head() {
    let (tmp, data, ws) = dataset();
    extract(&ws, &data, &["--augment", "3"]);
    let train = |out: &Path, extra: &[&str]| {
        let out = out.display().to_string();
        let mut args = vec!["train-head", "--epochs", "4", "--seed", "5", "--out", &out];
        args.extend_from_slice(extra);
        run_json(&ws, &args)
    };
    let (a, b) = (tmp.path().join("a.safetensors"), tmp.path().join("b.safetensors"));
    let summary = train(&a, &[]);
    train(&b, &[]);
    assert_eq!(tensors(&a), tensors(&b));

    // A second workspace extracted the same way gives the same views, so the same head.
    let ws2 = tmp.path().join("ws2");
    extract(&ws2, &data, &["--augment", "3"]);
    let c = tmp.path().join("c.safetensors");
    let out = c.display().to_string();
    run_json(&ws2, &["train-head", "--epochs", "4", "--seed", "5", "--out", &out]);
    assert_eq!(tensors(&a), tensors(&c));

    // Without the views, or with the views only, training differs.
    let (off, only) = (tmp.path().join("off.safetensors"), tmp.path().join("only.safetensors"));
    train(&off, &["--augment", "off"]);
    train(&only, &["--augment", "views-only"]);
    assert_ne!(tensors(&a), tensors(&off));
    assert_ne!(tensors(&a), tensors(&only));
    assert_ne!(tensors(&off), tensors(&only));
    // The plain extract's head is the `off` head: views cached do not change it.
    assert_eq!(summary["n_train"], n_train(&extract(&ws, &data, &[])));
    let plain = tmp.path().join("plain.safetensors");
    train(&plain, &[]);
    assert_eq!(tensors(&plain), tensors(&off));
}

#[test]
fn cached_and_on_the_fly_test_time_augmentation_agree() {
    let (_tmp, data, ws) = dataset();
    std::fs::remove_file(data.join("class1/broken.jpg")).unwrap();
    extract(&ws, &data, &["--tta"]);
    run_json(&ws, &["train-head", "--epochs", "20", "--baseline"]);

    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(ws.join("dataset.json")).unwrap()).unwrap();
    let test: Vec<String> = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["split"] == "test")
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert!(test.len() >= 5);
    let files: Vec<String> = test.iter().map(|p| data.join(p).display().to_string()).collect();
    let predict = |tta: bool| {
        let mut args = vec!["predict", "--top-k", "1"];
        if tta {
            args.push("--tta");
        }
        args.extend(files.iter().map(String::as_str));
        let out = run_json(&ws, &args);
        let by_path: HashMap<String, Vec<f64>> = out["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let probs = p["probabilities"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap());
                (p["path"].as_str().unwrap().to_string(), probs.collect())
            })
            .collect();
        by_path
    };
    let (plain, mirrored) = (predict(false), predict(true));
    assert_eq!(mirrored.len(), test.len());
    assert_ne!(plain, mirrored, "the mirror image changed no probability");

    // eval --tta on the cached mirrored vectors makes the same decisions, with the same
    // confidence, as predict --tta computing them from the files.
    let eval = run_json(&ws, &["eval", "--tta"]);
    let classes: Vec<String> = serde_json::from_value(manifest["classes"].clone()).unwrap();
    let mistakes: HashMap<String, f64> = eval["models"][0]["misclassified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["path"].as_str().unwrap().to_string(),
                m["confidence"].as_f64().unwrap(),
            )
        })
        .collect();
    let mut wrong = 0;
    for (path, file) in test.iter().zip(&files) {
        let p = &mirrored[file];
        let best = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
        let truth = path.split('/').next().unwrap();
        if classes[best] != truth {
            wrong += 1;
            let confidence = mistakes.get(path).unwrap_or_else(|| panic!("eval missed {path}"));
            assert!(
                (confidence - p[best]).abs() < 1e-6,
                "{path}: {confidence} vs {}",
                p[best]
            );
        }
    }
    assert_eq!(wrong, mistakes.len());
    let accuracy = eval["models"][0]["evaluation"]["accuracy"].as_f64().unwrap();
    assert!((accuracy - (1.0 - wrong as f64 / test.len() as f64)).abs() < 1e-9);
}

#[test]
fn tta_without_mirrored_views_and_bad_augment_flags_say_what_to_do() {
    let (_tmp, data, ws) = dataset();
    extract(&ws, &data, &[]);
    run_json(&ws, &["train-head", "--epochs", "2"]);
    headstart(&ws)
        .args(["eval", "--tta"])
        .assert()
        .failure()
        .stderr(contains("extract --tta"));
    for (flag, value) in [
        ("--augment-scale", "0,1"),
        ("--augment-scale", "0.5"),
        ("--augment-ratio", "2,1"),
        ("--augment-jitter", "1.5"),
    ] {
        headstart(&ws)
            .args(["extract", "--augment", "2", flag, value, "--data"])
            .arg(&data)
            .assert()
            .failure()
            .stderr(contains(flag));
    }
    // Comparing view settings needs views to draw.
    headstart(&ws)
        .args(["sweep", "--heads", "logistic", "--augment", "off,with-plain"])
        .assert()
        .failure()
        .stderr(contains("--augment K"));
}

#[test]
fn a_sweep_draws_the_views_for_its_mlp_trials_only_and_keeps_a_journal_per_setting() {
    let (_tmp, data, ws) = dataset();
    std::fs::remove_file(data.join("class1/broken.jpg")).unwrap();
    extract(&ws, &data, &["--augment", "3"]);
    let sweep = |policy: &str| {
        let args = [
            "sweep",
            "--heads",
            "mlp,logistic",
            "--hidden",
            "8",
            "--epochs",
            "3",
            "--c",
            "1",
            "--folds",
            "2",
            "--refit",
            "none",
            "--augment",
            policy,
        ];
        run_json(&ws, &args)
    };
    // Each kind's log loss per fold (one trial per kind).
    let scores = |summary: &serde_json::Value| -> HashMap<String, Vec<f64>> {
        let results = summary["results"].as_array().unwrap();
        results
            .iter()
            .map(|r| {
                let folds = r["folds"].as_array().unwrap().iter();
                let losses = folds.map(|f| f["log_loss"].as_f64().unwrap()).collect();
                (r["spec"]["kind"].as_str().unwrap().to_string(), losses)
            })
            .collect()
    };
    let (with, off) = (sweep("with-plain"), sweep("off"));
    // Another view setting is another protocol: nothing is resumed from the first sweep.
    assert_eq!(off["resumed"], 0);
    assert_ne!(with["journals"][0]["protocol"], off["journals"][0]["protocol"]);
    let (with, off) = (scores(&with), scores(&off));
    assert_eq!(with.len(), 2);
    // The MLP trained on drawn views; the logistic regression fits the plain vectors either way.
    assert_ne!(with["mlp"], off["mlp"]);
    assert_eq!(with["logistic"], off["logistic"]);
    // The same setting again resumes every trial from its journal.
    assert_eq!(sweep("with-plain")["resumed"], 2);

    // Both settings in one sweep: the MLP runs under each, the logistic regression once, and
    // each is the trial its own setting's sweep ran (all three resumed from those journals).
    let both = sweep("off,with-plain");
    assert_eq!(both["resumed"], 3);
    assert_eq!(both["journals"].as_array().unwrap().len(), 2);
    let mut runs: Vec<(String, Option<String>, Vec<f64>)> = both["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let folds = r["folds"].as_array().unwrap().iter();
            (
                r["spec"]["kind"].as_str().unwrap().to_string(),
                r["views"].as_str().map(String::from),
                folds.map(|f| f["log_loss"].as_f64().unwrap()).collect(),
            )
        })
        .collect();
    runs.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let expected = [
        ("logistic", None, &with["logistic"]),
        ("mlp", Some("off"), &off["mlp"]),
        ("mlp", Some("with-plain"), &with["mlp"]),
    ];
    assert_eq!(runs.len(), expected.len());
    for ((kind, views, losses), (k, v, l)) in runs.iter().zip(expected) {
        assert_eq!((kind.as_str(), views.as_deref(), losses), (k, v, l));
    }
    // The report's leaderboard names each MLP row's setting too.
    let page = std::fs::read_to_string(ws.join("report/index.html")).unwrap();
    assert!(page.contains("views=off") && page.contains("views=with-plain"));

    // The winner is refitted under its own setting, and its card names the views it drew, as
    // train-head's does (none under `off`).
    let refitted = run_json(
        &ws,
        &[
            "sweep",
            "--heads",
            "mlp",
            "--hidden",
            "8",
            "--epochs",
            "3",
            "--folds",
            "2",
            "--augment",
            "off,with-plain",
        ],
    );
    let winner = &refitted["results"][0];
    let policy = winner["views"].as_str().unwrap();
    assert!(refitted["refit"]["label"]
        .as_str()
        .unwrap()
        .ends_with(&format!("views={policy}")));
    let card = headstart::artifact::open(&ws.join("head.safetensors"), None)
        .unwrap()
        .card;
    match policy {
        "off" => assert!(card.settings.get("views").is_none()),
        drawn => assert_eq!(card.settings["views"]["policy"], drawn),
    }
}
