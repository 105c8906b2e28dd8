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

/// Labels `red`, `green`, `blue`: each present channel is bright in the image, so any subset
/// (none included) has its own colour.
fn channel_image(present: [bool; 3], i: usize) -> image::RgbImage {
    image::RgbImage::from_fn(40, 40, |x, y| {
        let n = ((x * 31 + y * 17 + i as u32 * 101) % 31) as u8;
        let level = |on: bool| if on { 180 + n } else { 30 + n };
        image::Rgb([level(present[0]), level(present[1]), level(present[2])])
    })
}

#[test]
fn multi_label_files_train_sigmoid_heads_and_report_map() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    std::fs::create_dir_all(data.join("img")).unwrap();
    let names = ["red", "green", "blue"];
    let (mut piped, mut columns) = (
        String::from("path,tags,split\n"),
        String::from("path,red,green,blue,split\n"),
    );
    for i in 0..96 {
        let present = [i % 2 == 0, (i / 2) % 2 == 0, (i / 4) % 2 == 0];
        let path = format!("img/{i}.png");
        channel_image(present, i).save(data.join(&path)).unwrap();
        let split = ["train", "train", "train", "val", "test"][i % 5];
        let tags: Vec<&str> = names.iter().zip(present).filter(|(_, p)| *p).map(|(n, _)| *n).collect();
        // An image with no label cannot be written as `a|b`; it still counts in the 0/1 columns.
        if !tags.is_empty() {
            piped.push_str(&format!("{path},{},{split}\n", tags.join("|")));
        }
        let bits: Vec<&str> = present.iter().map(|&p| if p { "1" } else { "0" }).collect();
        columns.push_str(&format!("{path},{},{split}\n", bits.join(",")));
    }
    std::fs::write(data.join("piped.csv"), piped).unwrap();
    std::fs::write(data.join("columns.csv"), columns).unwrap();

    let extract = |file: &str, extra: &[&str]| {
        let out = headstart(&ws)
            .args(["--json", "extract", "--model", &tiny_model("tiny_nchw"), "--data"])
            .arg(&data)
            .arg("--labels")
            .arg(data.join(file))
            .args(["--split-column", "split"])
            .args(extra)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        json(&out)
    };
    let s = extract("piped.csv", &["--label-column", "tags"]);
    assert_eq!(s["multi_label"], true);
    assert_eq!(s["classes"], serde_json::json!(["blue", "green", "red"]));
    assert_eq!(s["images"], 84);
    let s = extract("columns.csv", &["--label-columns", "red,green,blue"]);
    assert_eq!(
        (s["multi_label"].clone(), s["images"].clone()),
        (true.into(), 96.into())
    );
    // Each label is on half the images: 48 per label over the splits.
    for name in names {
        let counts: u64 = s["counts"][name]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .sum();
        assert_eq!(counts, 48, "{name}");
    }

    headstart(&ws)
        .args([
            "train-head",
            "--epochs",
            "40",
            "--hidden",
            "16",
            "--dropout",
            "0",
            "--baseline",
        ])
        .assert()
        .success();
    let out = headstart(&ws)
        .args(["--json", "eval"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let e = json(&out);
    assert!(e.get("models").unwrap().as_array().unwrap().is_empty());
    let models = e["multi_label"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    for m in models {
        let ev = &m["evaluation"];
        let map = ev["mean_average_precision"].as_f64().unwrap();
        assert!(map > 0.9, "{}: mAP {map}", m["model"]);
        assert_eq!(ev["per_label"].as_array().unwrap().len(), 3);
        let hamming = ev["hamming_loss"].as_f64().unwrap();
        assert!((0.0..0.2).contains(&hamming), "{}: Hamming loss {hamming}", m["model"]);
    }
    headstart(&ws)
        .arg("eval")
        .assert()
        .success()
        .stdout(contains("multi-label"))
        .stdout(contains("mAP"));

    // predict names the labels above each threshold; a sweep says it does not take such data.
    let out = headstart(&ws)
        .args(["--json", "predict"])
        .arg(data.join("img/0.png"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let p = json(&out);
    assert_eq!(
        p["predictions"][0]["labels"],
        serde_json::json!(["blue", "green", "red"])
    );
    headstart(&ws)
        .arg("sweep")
        .assert()
        .code(1)
        .stderr(contains("multi-label"));
}
