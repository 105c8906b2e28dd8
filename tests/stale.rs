//! Artefacts that no longer fit the workspace, and models that are no backbone, give a clear
//! error and exit code 1, never a panic or silently wrong labels.

mod common;

use std::path::{Path, PathBuf};

use common::{headstart, make_dataset, tiny_model};
use predicates::prelude::*;
use predicates::str::contains;

fn extract(ws: &Path, data: &Path) {
    headstart(ws)
        .args(["extract", "--model", &tiny_model("tiny_nchw"), "--data"])
        .arg(data)
        .assert()
        .success();
}

/// Three classes extracted and a head and baseline trained on them.
fn trained() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    make_dataset(&data, 3, 12);
    std::fs::remove_file(data.join("class1/broken.jpg")).unwrap();
    extract(&ws, &data);
    headstart(&ws)
        .args(["train-head", "--epochs", "1", "--baseline"])
        .assert()
        .success();
    (tmp, data, ws)
}

/// eval, predict and export all refuse the classifier with `message` in their error.
fn all_refuse(ws: &Path, data: &Path, message: &str) {
    let expected = || contains(message.to_string()).and(contains("run train-head again"));
    headstart(ws)
        .args(["eval", "--split", "train"])
        .assert()
        .code(1)
        .stderr(expected());
    headstart(ws)
        .arg("predict")
        .arg(data.join("class0"))
        .assert()
        .code(1)
        .stderr(expected());
    headstart(ws).arg("export").assert().code(1).stderr(expected());
}

#[test]
fn a_class_added_after_training_is_named() {
    let (_tmp, data, ws) = trained();
    let dir = data.join("class3");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..12 {
        common::class_image(3, i, 40)
            .save(dir.join(format!("img{i:03}.png")))
            .unwrap();
    }
    extract(&ws, &data);
    all_refuse(&ws, &data, "added `class3`");
    // Trained again, everything works.
    headstart(&ws)
        .args(["train-head", "--epochs", "1", "--baseline"])
        .assert()
        .success();
    headstart(&ws).args(["eval", "--split", "train"]).assert().success();
}

#[test]
fn a_class_removed_or_renamed_after_training_is_named() {
    let (_tmp, data, ws) = trained();
    std::fs::rename(data.join("class2"), data.join("renamed")).unwrap();
    extract(&ws, &data);
    all_refuse(&ws, &data, "renamed `class2` -> `renamed`");

    std::fs::remove_dir_all(data.join("renamed")).unwrap();
    extract(&ws, &data);
    all_refuse(&ws, &data, "removed `class2`");
}

#[test]
fn a_classifier_file_outside_a_workspace_is_used_as_it_is() {
    let (tmp, data, ws) = trained();
    let bare = tmp.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    for file in ["head.safetensors", "baseline.safetensors"] {
        std::fs::copy(ws.join(file), bare.join(file)).unwrap();
    }
    // The workspace moves on; the copies still know their own classes and backbone.
    std::fs::rename(data.join("class2"), data.join("renamed")).unwrap();
    extract(&ws, &data);
    for file in ["head.safetensors", "baseline.safetensors"] {
        headstart(&ws)
            .args(["predict", "--head"])
            .arg(bare.join(file))
            .arg(data.join("class0"))
            .assert()
            .success()
            .stdout(contains("class0"));
        headstart(&ws)
            .args(["export", "--head"])
            .arg(bare.join(file))
            .arg("--out")
            .arg(tmp.path().join(format!("export-{file}")))
            .assert()
            .success();
    }
}

#[test]
fn models_that_are_no_backbone_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 2, 4);
    for (model, message) in [
        ("tiny_no_input", "has no inputs"),
        ("tiny_no_output", "tiny_no_output.onnx"),
        ("tiny_int_output", "not a float32 tensor"),
    ] {
        headstart(&tmp.path().join(model))
            .args(["extract", "--model", &tiny_model(model), "--data"])
            .arg(&data)
            .assert()
            .code(1)
            .stderr(contains(message).and(contains(model)));
    }
}

#[cfg(unix)]
#[test]
fn predict_walks_folders_like_the_data_set_scan() {
    let (tmp, data, ws) = trained();
    let inputs = tmp.path().join("inputs");
    let nested = inputs.join("nested");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::copy(data.join("class0/img000.png"), nested.join("a.png")).unwrap();
    std::fs::copy(data.join("class0/img000.png"), inputs.join(".hidden.png")).unwrap();
    std::os::unix::fs::symlink(&inputs, nested.join("loop")).unwrap();
    std::os::unix::fs::symlink(inputs.join("gone.png"), inputs.join("dangling.png")).unwrap();
    let out = headstart(&ws)
        .args(["--json", "predict"])
        .arg(&inputs)
        .assert()
        .code(3)
        .get_output()
        .stdout
        .clone();
    let summary = common::json(&out);
    let paths: Vec<&str> = summary["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, [nested.join("a.png").to_str().unwrap()]);
    let skipped = summary["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0]["path"].as_str().unwrap().ends_with("dangling.png"));
}
