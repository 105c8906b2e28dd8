//! train-head, eval, predict and export on generated images with the tiny test model: the four
//! commands must agree with each other, and the exported ONNX file must agree with `predict`
//! both through headstart's ONNX Runtime and through Python onnxruntime alone.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;

use common::{headstart, json, make_dataset, run_json, tensors, tiny_model};
use predicates::prelude::*;
use predicates::str::contains;

fn prepared() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    make_dataset(&data, 3, 30);
    std::fs::remove_file(data.join("class1/broken.jpg")).unwrap();
    headstart(&ws)
        .args([
            "extract",
            "--val-percent",
            "20",
            "--test-percent",
            "20",
            "--model",
            &tiny_model("tiny_nchw"),
            "--data",
        ])
        .arg(&data)
        .assert()
        .success();
    (tmp, data, ws)
}

#[test]
fn eval_predict_and_export_agree() {
    let (_tmp, data, ws) = prepared();
    let trained = run_json(&ws, &["train-head", "--epochs", "30", "--seed", "7", "--baseline"]);
    assert_eq!(trained["history"].as_array().unwrap().len(), 30);
    assert!(ws.join("head.safetensors").is_file() && ws.join("baseline.safetensors").is_file());
    // Colours separate the classes: the head must learn them.
    let val_acc = trained["history"][29]["val_accuracy"].as_f64().unwrap();
    assert!(val_acc >= 0.8, "validation accuracy {val_acc}");

    let eval = run_json(&ws, &["eval", "--split", "test"]);
    assert_eq!(eval["models"][0]["model"], "head");
    assert_eq!(eval["models"][1]["model"], "baseline");
    for file in [
        "eval.json",
        "confusion_head.svg",
        "confusion_baseline.svg",
        "training_curves.svg",
    ] {
        assert!(ws.join("report").join(file).is_file(), "{file}");
    }

    // predict on the test split's files must reproduce eval's mistakes exactly.
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(ws.join("dataset.json")).unwrap()).unwrap();
    let classes: Vec<String> = serde_json::from_value(manifest["classes"].clone()).unwrap();
    let test: Vec<(String, String)> = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["split"] == "test")
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                classes[e["class"].as_u64().unwrap() as usize].clone(),
            )
        })
        .collect();
    assert!(test.len() >= 5);
    let files: Vec<String> = test.iter().map(|(p, _)| data.join(p).display().to_string()).collect();
    let mut args = vec!["predict", "--top-k", "1"];
    args.extend(files.iter().map(String::as_str));
    let predicted = run_json(&ws, &args);
    let predictions = predicted["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), test.len());
    let wrong: HashSet<String> = predictions
        .iter()
        .zip(&test)
        .filter(|(p, (_, truth))| p["top"][0][0].as_str().unwrap() != truth)
        .map(|(_, (path, _))| path.clone())
        .collect();
    let eval_wrong: HashSet<String> = eval["models"][0]["misclassified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(wrong, eval_wrong);
    let accuracy = 1.0 - wrong.len() as f64 / test.len() as f64;
    assert!((eval["models"][0]["evaluation"]["accuracy"].as_f64().unwrap() - accuracy).abs() < 1e-9);

    // The exported model, run by ONNX Runtime with no head code, gives predict's probabilities.
    let exported = run_json(&ws, &["export"]);
    let model = PathBuf::from(exported["model"].as_str().unwrap());
    let labels = std::fs::read_to_string(ws.join("export/labels.txt")).unwrap();
    assert_eq!(labels.lines().collect::<Vec<_>>(), classes);
    let want: Vec<Vec<f64>> = predictions
        .iter()
        .map(|p| {
            p["probabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect();
    let from_ort = common::run_exported(&model, &files, 32);
    for (got, want) in from_ort.iter().zip(&want) {
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    // And from Python onnxruntime with PIL preprocessing (PNG files: lossless, so the same pixels).
    let png: Vec<usize> = (0..files.len()).filter(|&i| files[i].ends_with(".png")).collect();
    assert!(!png.is_empty());
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(python)
        .arg(common::repo().join("tests/predict_onnx.py"))
        .arg(&model)
        .args(png.iter().map(|&i| &files[i]))
        .output()
        .expect("python3 with onnxruntime, numpy and pillow (installed by .ci/run)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let py = json(&out.stdout);
    assert_eq!(py["labels"], serde_json::json!(classes));
    for (row, &i) in py["probabilities"].as_array().unwrap().iter().zip(&png) {
        for (g, w) in row.as_array().unwrap().iter().zip(&want[i]) {
            assert!(
                (g.as_f64().unwrap() - w).abs() < 1e-3,
                "{}: {row} vs {:?}",
                files[i],
                want[i]
            );
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_head() {
    let (_tmp, _data, ws) = prepared();
    let train = |seed: &str, out: &str| {
        let s = run_json(
            &ws,
            &[
                "train-head",
                "--epochs",
                "3",
                "--seed",
                seed,
                "--out",
                ws.join(out).to_str().unwrap(),
            ],
        );
        let history: Vec<serde_json::Value> = s["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.as_object_mut().unwrap().remove("seconds");
                e
            })
            .collect();
        (tensors(&ws.join(out)), history)
    };
    let a = train("11", "a.safetensors");
    let b = train("11", "b.safetensors");
    let c = train("12", "c.safetensors");
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
}

/// The library validates its parameters at fit time and names them (`learning_rate`); the user
/// reads the flag that sets them instead.
#[test]
fn parameter_errors_from_the_library_name_the_flag() {
    let (_tmp, _data, ws) = prepared();
    let fails = |args: &[&str], message: &str| {
        let out = headstart(&ws).args(args).assert().code(1).get_output().stderr.clone();
        let stderr = String::from_utf8(out).unwrap();
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains('`'), "{args:?} names a library parameter: {stderr}");
    };
    fails(
        &["train-head", "--dropout", "1"],
        "set --dropout to a value such as 0.5",
    );
    fails(&["train-head", "--epochs", "0"], "set --epochs to a positive count");
    fails(
        &["train-head", "--batch-size", "0"],
        "set --batch-size to a positive count",
    );
    let baseline = ["train-head", "--epochs", "1", "--baseline"];
    let iterations = [&baseline[..], &["--baseline-max-iterations", "0"]].concat();
    fails(&iterations, "--baseline-max-iterations must be at least 1");
    let tolerance = [&baseline[..], &["--baseline-tolerance=-1"]].concat();
    fails(&tolerance, "--baseline-tolerance must be finite and > 0, got -1");
    // Refused before any training: no head was written by the failed runs above.
    assert!(!ws.join("head.safetensors").exists());
    // The baseline's settings mean nothing without it.
    headstart(&ws)
        .args(["train-head", "--baseline-tolerance", "0.01"])
        .assert()
        .code(2)
        .stderr(contains("--baseline"));
}

#[test]
fn bad_settings_name_their_flag() {
    let (_tmp, _data, ws) = prepared();
    headstart(&ws)
        .args(["train-head", "--lr=-1"])
        .assert()
        .code(1)
        .stderr(contains("--lr"));
    headstart(&ws)
        .args(["train-head", "--hidden", "a,b"])
        .assert()
        .code(1)
        .stderr(contains("--hidden"));
    headstart(&ws)
        .args(["train-head", "--class-weights", "1,x"])
        .assert()
        .code(1)
        .stderr(contains("--class-weights"));
    headstart(&ws)
        .args(["eval"])
        .assert()
        .code(1)
        .stderr(contains("train-head"));
    // An unknown choice is a usage error (exit 2), caught by the parser, which lists the choices.
    headstart(&ws)
        .args(["eval", "--split", "nope"])
        .assert()
        .code(2)
        .stderr(contains("--split").and(contains("train, val, test")));
    let empty = tempfile::tempdir().unwrap();
    headstart(empty.path())
        .args(["train-head"])
        .assert()
        .code(1)
        .stderr(contains("headstart extract").and(contains("--workspace")));
}
