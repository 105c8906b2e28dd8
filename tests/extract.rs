//! `headstart extract` end to end on generated images and the tiny models in tests/models.

mod common;

use common::{headstart, json, make_dataset, tiny_model};
use predicates::prelude::*;
use predicates::str::contains;

#[test]
fn extract_embeds_every_format_and_reports_bad_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    make_dataset(&data, 3, 12);
    let out = headstart(&ws)
        .args([
            "--json",
            "extract",
            "--model",
            &tiny_model("tiny_nchw"),
            "--batch-size",
            "5",
            "--data",
        ])
        .arg(&data)
        .assert()
        .code(3)
        .get_output()
        .stdout
        .clone();
    let s = json(&out);
    assert_eq!(s["images"], 36);
    assert_eq!(s["computed"], 36);
    assert_eq!(s["backbone"]["dim"], 16);
    let skipped = s["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["path"], "class1/broken.jpg");
    assert!(skipped[0]["reason"].as_str().unwrap().contains("decode"));
    assert!(s["ignored"][0].as_str().unwrap().ends_with("notes.txt"));
    // Every split has images with the default 80/10/10 hash split of 36 files.
    let counts = &s["counts"];
    let total: u64 = (0..3).map(|i| counts["class0"][i].as_u64().unwrap()).sum();
    assert_eq!(total, 12);
    assert!(ws.join("dataset.json").is_file());
}

#[test]
fn rerun_reuses_the_cache_and_follows_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    make_dataset(&data, 2, 6);
    std::fs::remove_file(data.join("class1/broken.jpg")).unwrap();
    let run = |extra: &[&str]| {
        let out = headstart(&ws)
            .args(["--json", "extract", "--model", &tiny_model("tiny_nchw"), "--data"])
            .arg(&data)
            .args(extra)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        json(&out)
    };
    assert_eq!(run(&[])["computed"], 12);
    let again = run(&[]);
    assert_eq!(
        (again["computed"].as_u64(), again["reused"].as_u64()),
        (Some(0), Some(12))
    );

    // One image changed, one removed, one added.
    common::class_image(0, 99, 40)
        .save(data.join("class0/img000.png"))
        .unwrap();
    std::fs::remove_file(data.join("class1/img001.jpg")).unwrap();
    common::class_image(1, 77, 40)
        .save(data.join("class1/new.png"))
        .unwrap();
    let changed = run(&[]);
    assert_eq!(changed["computed"], 2);
    assert_eq!(changed["reused"], 10);
    assert_eq!(changed["dropped_from_cache"], 2);

    // Another preprocessing gives another key: nothing stale is reused.
    let other = run(&["--preset", "tflite"]);
    assert_eq!(other["computed"], 12);
    assert_ne!(other["backbone"]["key"], changed["backbone"]["key"]);
}

#[test]
fn fixed_batch_nhwc_model_gives_the_same_count() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    make_dataset(&data, 2, 7);
    let out = headstart(&ws)
        .args([
            "--json",
            "extract",
            "--model",
            &tiny_model("tiny_nhwc_b1"),
            "--batch-size",
            "4",
            "--data",
        ])
        .arg(&data)
        .assert()
        .code(3)
        .get_output()
        .stdout
        .clone();
    let s = json(&out);
    assert_eq!(s["images"], 14);
    assert_eq!(s["backbone"]["preprocessing"]["layout"], "nhwc");
}

#[test]
fn feature_output_of_a_full_classifier_can_be_chosen() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    make_dataset(&data, 2, 4);
    let model = tiny_model("tiny_classifier");
    let out = headstart(&ws)
        .args(["--json", "extract", "--model", &model, "--output", "probs", "--data"])
        .arg(&data)
        .assert()
        .code(3)
        .get_output()
        .stdout
        .clone();
    assert_eq!(json(&out)["backbone"]["dim"], 5);
    headstart(&ws)
        .args(["extract", "--model", &model, "--output", "nope", "--data"])
        .arg(&data)
        .assert()
        .code(1)
        .stderr(
            contains("no output `nope`")
                .and(contains("probs, pooled"))
                .and(contains("--output")),
        );
}

#[test]
fn clear_errors_for_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    make_dataset(&data, 2, 3);
    headstart(&ws)
        .args(["extract", "--val-percent", "120", "--data"])
        .arg(&data)
        .assert()
        .code(1)
        .stderr(contains("--val-percent"));
    headstart(&ws)
        .args(["extract", "--data"])
        .arg(tmp.path().join("missing"))
        .assert()
        .code(1)
        .stderr(contains("--data").and(contains("no such folder")));
    headstart(&ws)
        .args(["extract", "--model", "no_such_backbone", "--data"])
        .arg(&data)
        .assert()
        .code(1)
        .stderr(contains("efficientnet_lite0").and(contains("--model")));
    headstart(&ws)
        .arg("--ort-lib")
        .arg(tmp.path().join("missing/libonnxruntime.so"))
        .args(["extract", "--model", &tiny_model("tiny_nchw"), "--data"])
        .arg(&data)
        .assert()
        .code(1)
        .stderr(contains("ONNX Runtime could not be loaded").and(contains("--ort-lib")));
}
