//! Acceptance on real photos with the default backbone: the head must match the peers' accuracy
//! on the same embeddings and split, and eval, predict and export must agree.
//!
//! Floors come from peers measured on these same EfficientNet-Lite0 embeddings and splits
//! (BENCHMARKS.md, `python benches/head_reference.py WORKSPACE`): the head, averaged over seeds,
//! must reach the best peer minus one point.
//! - hymenoptera val (153 images): best peer the PyTorch head, 0.955 mean over seeds 0-9
//!   (0.961 over seeds 0-2 alone: one image is 0.65 points here); scikit-learn 0.948.
//! - flowers5 test (410 images, 80/10/10 file-name hash split): best peer scikit-learn's
//!   logistic regression, 0.929; PyTorch head 0.922, Keras head 0.920 (seeds 0-2).

mod common;

use std::path::Path;

use common::{headstart, json, run_json, shared_data};

/// Mean accuracy of the head over seeds 0, 1, 2 on `split`, and the baseline's accuracy.
fn head_and_baseline(ws: &Path, split: &str) -> (f64, f64) {
    let mut head = Vec::new();
    let mut baseline = 0.0;
    for seed in ["0", "1", "2"] {
        run_json(ws, &["train-head", "--seed", seed, "--baseline"]);
        let eval = run_json(ws, &["eval", "--split", split]);
        head.push(eval["models"][0]["evaluation"]["accuracy"].as_f64().unwrap());
        baseline = eval["models"][1]["evaluation"]["accuracy"].as_f64().unwrap();
    }
    eprintln!("{split}: head {head:?}, baseline {baseline}");
    (head.iter().sum::<f64>() / head.len() as f64, baseline)
}

#[test]
fn hymenoptera_head_matches_peers_and_commands_agree() {
    let Some(data) = shared_data("hymenoptera") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    headstart(&ws).args(["extract", "--data"]).arg(&data).assert().success();
    let (head, baseline) = head_and_baseline(&ws, "val");
    assert!(head >= 0.955 - 0.01, "head mean accuracy {head}");
    assert!(baseline >= 0.948 - 0.01, "baseline accuracy {baseline}");

    // The same seed gives the same evaluation, to the last digit.
    run_json(&ws, &["train-head", "--seed", "5"]);
    let first = run_json(&ws, &["eval", "--split", "val"]);
    run_json(&ws, &["train-head", "--seed", "5"]);
    let second = run_json(&ws, &["eval", "--split", "val"]);
    assert_eq!(first["models"][0]["evaluation"], second["models"][0]["evaluation"]);

    // predict on the val folder reproduces eval's mistakes.
    let predicted = run_json(
        &ws,
        &["predict", "--top-k", "1"]
            .into_iter()
            .chain([data.join("val").to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    let predictions = predicted["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 153);
    let mut wrong: Vec<String> = predictions
        .iter()
        .filter(|p| {
            let path = p["path"].as_str().unwrap();
            let truth = if path.contains("/ants/") { "ants" } else { "bees" };
            p["top"][0][0] != truth
        })
        .map(|p| {
            p["path"]
                .as_str()
                .unwrap()
                .strip_prefix(data.to_str().unwrap())
                .unwrap()
                .trim_start_matches('/')
                .to_string()
        })
        .collect();
    let mut eval_wrong: Vec<String> = first["models"][0]["misclassified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap().to_string())
        .collect();
    wrong.sort();
    eval_wrong.sort();
    assert_eq!(wrong, eval_wrong);

    // The exported model agrees with predict from Python onnxruntime alone (PIL decoding, so
    // allow for JPEG decoder rounding) on a handful of photos.
    let exported = run_json(&ws, &["export"]);
    let files: Vec<&str> = predictions
        .iter()
        .step_by(30)
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(python)
        .arg(common::repo().join("tests/predict_onnx.py"))
        .arg(exported["model"].as_str().unwrap())
        .args(&files)
        .output()
        .expect("python3 with onnxruntime, numpy and pillow (installed by .ci/run)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let py = json(&out.stdout);
    for (row, file) in py["probabilities"].as_array().unwrap().iter().zip(&files) {
        let ours = predictions.iter().find(|p| p["path"] == *file).unwrap();
        for (a, b) in row
            .as_array()
            .unwrap()
            .iter()
            .zip(ours["probabilities"].as_array().unwrap())
        {
            assert!(
                (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 0.02,
                "{file}: {row} vs {}",
                ours["probabilities"]
            );
        }
    }
}

#[test]
fn flowers5_head_matches_peers() {
    let Some(data) = shared_data("flowers5") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let extracted = run_json(&ws, &["extract", "--data", data.to_str().unwrap()]);
    assert_eq!(extracted["images"], 4064);
    let (head, baseline) = head_and_baseline(&ws, "test");
    assert!(head >= 0.929 - 0.01, "head mean accuracy {head}");
    assert!(baseline >= 0.929 - 0.01, "baseline accuracy {baseline}");
}
