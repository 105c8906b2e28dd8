//! `extract` with label files and nested class folders, end to end on generated images and the
//! tiny models in tests/models.

mod common;

use std::path::Path;

use common::{class_image, headstart, json, tiny_model};
use predicates::str::contains;

/// `n` images of each of `classes` classes, all in one folder `images/` (as label-file data sets
/// ship them), named `c<class>_<i>.png`.
fn flat_images(data: &Path, classes: usize, n: usize) -> Vec<(String, usize)> {
    let dir = data.join("images");
    std::fs::create_dir_all(&dir).unwrap();
    let mut listed = Vec::new();
    for c in 0..classes {
        for i in 0..n {
            let name = format!("images/c{c}_{i}.png");
            class_image(c, i, 40).save(data.join(&name)).unwrap();
            listed.push((name, c));
        }
    }
    listed
}

#[test]
fn a_csv_with_named_columns_and_bad_lines_extracts_and_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    let images = flat_images(&data, 2, 10);
    let species = ["cat", "dog"];
    let mut csv = String::from("file,species,split\n");
    for (i, (path, c)) in images.iter().enumerate() {
        let split = ["train", "train", "train", "val", "test"][i % 5];
        csv.push_str(&format!("{path},{},{split}\n", species[*c]));
    }
    csv.push_str("images/gone.png,cat,train\n,dog,train\nimages/c0_0.png,dog,train\n");
    // Not listed: counted as unlabelled, not embedded.
    class_image(0, 99, 40).save(data.join("images/stray.png")).unwrap();
    std::fs::write(data.join("labels.csv"), csv).unwrap();

    let out = headstart(&ws)
        .args(["--json", "extract", "--model", &tiny_model("tiny_nchw"), "--data"])
        .arg(&data)
        .arg("--labels")
        .arg(data.join("labels.csv"))
        .args([
            "--path-column",
            "file",
            "--label-column",
            "species",
            "--split-column",
            "split",
        ])
        .assert()
        .code(3)
        .stderr(contains("label line left out"))
        .get_output()
        .stdout
        .clone();
    let s = json(&out);
    assert_eq!(s["classes"], serde_json::json!(["cat", "dog"]));
    // c0_0 is listed twice with different labels: left out.
    assert_eq!(s["images"], 19);
    assert_eq!(s["counts"]["cat"], serde_json::json!([5, 2, 2]));
    assert_eq!(s["counts"]["dog"], serde_json::json!([6, 2, 2]));
    let bad: Vec<u64> = s["bad_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["line"].as_u64().unwrap())
        .collect();
    assert_eq!(bad, [22, 23, 24]);
    assert_eq!(
        s["unlabelled"],
        serde_json::json!(["images/c0_0.png", "images/stray.png"])
    );

    // The workspace is like any other: a head trains on it.
    headstart(&ws)
        .args(["train-head", "--epochs", "2", "--hidden", "8"])
        .assert()
        .success();
    // And the summary says where classes came from.
    headstart(&ws)
        .args(["extract", "--model", &tiny_model("tiny_nchw"), "--data"])
        .arg(&data)
        .arg("--labels")
        .arg(data.join("labels.csv"))
        .args([
            "--path-column",
            "file",
            "--label-column",
            "species",
            "--split-column",
            "split",
        ])
        .assert()
        .code(3)
        .stdout(contains("labels     classes from"))
        .stdout(contains("3 label lines left out"))
        .stdout(contains("2 images have no label"));
}

#[test]
fn one_label_file_per_split_with_class_ids_gives_the_splits_and_names() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    let images = flat_images(&data, 3, 6);
    let mut splits = [String::new(), String::new(), String::new()];
    for (i, (path, c)) in images.iter().enumerate() {
        splits[[0, 0, 0, 0, 1, 2][i % 6]].push_str(&format!("{path}, {c}, {}\n", c / 2));
    }
    for (name, text) in ["train.txt", "val.txt", "test.txt"].iter().zip(&splits) {
        std::fs::write(data.join(name), text).unwrap();
    }
    std::fs::write(data.join("classes.csv"), "name,id\napple,0\npear,1\nleek,2\n").unwrap();
    let out = headstart(&ws)
        .args(["--json", "extract", "--model", &tiny_model("tiny_nchw"), "--data"])
        .arg(&data)
        .args(
            ["--labels", "train.txt", "--labels", "val.txt", "--labels", "test.txt"].map(|a| {
                if a.ends_with(".txt") {
                    data.join(a).into_os_string()
                } else {
                    a.into()
                }
            }),
        )
        .arg("--class-names")
        .arg(data.join("classes.csv"))
        .args(["--class-id-column", "id", "--class-name-column", "name"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let s = json(&out);
    assert_eq!(s["classes"], serde_json::json!(["apple", "leek", "pear"]));
    for class in ["apple", "leek", "pear"] {
        assert_eq!(s["counts"][class], serde_json::json!([4, 1, 1]), "{class}");
    }
}

#[test]
fn nested_class_folders_follow_the_chosen_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    for (i, dir) in ["Fruit/Apple", "Fruit/Pear", "Veg/Leek", "Veg/Leek/Baby"]
        .iter()
        .enumerate()
    {
        for split in ["train", "test"] {
            let folder = data.join(split).join(dir);
            std::fs::create_dir_all(&folder).unwrap();
            for j in 0..3 {
                class_image(i, j, 40).save(folder.join(format!("{j}.png"))).unwrap();
            }
        }
    }
    let classes = |extra: &[&str]| {
        let out = headstart(&ws)
            .args(["--json", "extract", "--model", &tiny_model("tiny_nchw"), "--data"])
            .arg(&data)
            .args(extra)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let s = json(&out);
        (s["classes"].clone(), s["images"].as_u64().unwrap())
    };
    assert_eq!(classes(&[]), (serde_json::json!(["Fruit", "Veg"]), 24));
    assert_eq!(
        classes(&["--label-depth", "2"]),
        (serde_json::json!(["Fruit/Apple", "Fruit/Pear", "Veg/Leek"]), 24)
    );
    assert_eq!(
        classes(&["--label-from", "parent"]),
        (serde_json::json!(["Apple", "Baby", "Leek", "Pear"]), 24)
    );
    headstart(&ws)
        .args([
            "extract",
            "--model",
            &tiny_model("tiny_nchw"),
            "--label-depth",
            "0",
            "--data",
        ])
        .arg(&data)
        .assert()
        .code(1)
        .stderr(contains("--label-depth"));
    // Label files and folder rules exclude each other; column flags need a label file.
    headstart(&ws)
        .args(["extract", "--label-from", "parent", "--labels", "x.csv", "--data"])
        .arg(&data)
        .assert()
        .code(2);
    headstart(&ws)
        .args(["extract", "--path-column", "file", "--data"])
        .arg(&data)
        .assert()
        .code(2)
        .stderr(contains("--labels"));
}
