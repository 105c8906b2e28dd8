//! `audit` on tiny generated data: what it reports, its options and its refusals, and the
//! one-line leak warning of `extract` and `train-head`.

mod common;

use std::path::Path;

use common::{class_image, headstart, run_json, tiny_model};
use image::{DynamicImage, ImageFormat};

/// `train/` and `test/` folders of 2 classes with `per_class` PNGs each; returns the data root.
fn split_data(root: &Path, per_class: usize) -> std::path::PathBuf {
    let data = root.join("data");
    for (split, offset) in [("train", 0), ("test", 1000)] {
        for c in 0..2 {
            let dir = data.join(split).join(format!("class{c}"));
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..per_class {
                DynamicImage::ImageRgb8(class_image(c, offset + i, 40))
                    .save_with_format(dir.join(format!("img{i:03}.png")), ImageFormat::Png)
                    .unwrap();
            }
        }
    }
    data
}

fn extract(ws: &Path, data: &Path) -> assert_cmd::assert::Assert {
    headstart(ws)
        .args(["extract", "--model", &tiny_model("tiny_nchw"), "--data"])
        .arg(data)
        .assert()
}

#[test]
fn an_exact_copy_across_splits_is_warned_about_and_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = split_data(tmp.path(), 12);
    std::fs::copy(data.join("train/class0/img003.png"), data.join("test/class0/copy.png")).unwrap();
    let ws = tmp.path().join("ws");
    let out = extract(&ws, &data).success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(
        stderr.contains("1 images have an exact copy and") && stderr.contains("headstart audit"),
        "{stderr}"
    );

    let audit = run_json(&ws, &["audit"]);
    assert_eq!(audit["images"], 49);
    let groups = audit["exact_duplicates"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{audit:#}");
    assert_eq!(groups[0]["crosses_splits"], true);
    let paths: Vec<&str> = groups[0]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["test/class0/copy.png", "train/class0/img003.png"]);
    assert_eq!(audit["balance"]["counts"], serde_json::json!([[12, 12], [13, 12]]));
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.join("report/audit.json")).unwrap()).unwrap();
    assert_eq!(written["exact_duplicates"], audit["exact_duplicates"]);

    // train-head warns again, from the count kept beside the report.
    let out = headstart(&ws).args(["train-head", "--epochs", "1"]).assert().success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(stderr.contains("1 images have an exact copy and"), "{stderr}");

    // Once checked and put on the ignore list, the group is no longer reported.
    std::fs::write(
        ws.join("audit.ignore"),
        "# the same photo, on purpose\ntest/class0/copy.png\n",
    )
    .unwrap();
    let audit = run_json(&ws, &["audit"]);
    assert_eq!(audit["exact_duplicates"].as_array().unwrap().len(), 0);
    assert_eq!(audit["ignore_entries"], 1);
    assert!(audit["ignored_findings"].as_u64().unwrap() >= 1);
}

#[test]
fn the_table_has_every_section() {
    let tmp = tempfile::tempdir().unwrap();
    let data = split_data(tmp.path(), 10);
    let ws = tmp.path().join("ws");
    // The tiny test backbone sees little more than colour, so all images of a class are
    // candidates to it: the threshold of 1 leaves only pixel-identical thumbnails.
    extract(&ws, &data).success();
    let out = headstart(&ws)
        .args(["audit", "--near-threshold", "1"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout);
    for heading in [
        "exact duplicates: 0 groups",
        "near-duplicates",
        "likely label errors",
        "outliers",
        "images per class and split",
    ] {
        assert!(stdout.contains(heading), "no `{heading}` in:\n{stdout}");
    }
}

#[test]
fn bad_options_and_missing_inputs_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let out = headstart(&ws).arg("audit").assert().failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(stderr.contains("headstart extract"), "{stderr}");

    let data = split_data(tmp.path(), 3);
    extract(&ws, &data).success();
    for (args, flag) in [
        (["audit", "--folds", "1"], "--folds"),
        (["audit", "--neighbours", "0"], "--neighbours"),
        (["audit", "--near-threshold", "1.5"], "--near-threshold"),
    ] {
        let out = headstart(&ws).args(args).assert().failure();
        let stderr = String::from_utf8_lossy(&out.get_output().stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
    let out = headstart(&ws)
        .args(["audit", "--ignore"])
        .arg(tmp.path().join("no-such-list"))
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(stderr.contains("no-such-list"), "{stderr}");
}

#[test]
fn one_image_per_class_says_what_it_cannot_do() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for c in 0..3 {
        let dir = data.join(format!("class{c}"));
        std::fs::create_dir_all(&dir).unwrap();
        DynamicImage::ImageRgb8(class_image(c, 0, 40))
            .save_with_format(dir.join("only.png"), ImageFormat::Png)
            .unwrap();
    }
    let ws = tmp.path().join("ws");
    extract(&ws, &data).success();
    let audit = run_json(&ws, &["audit"]);
    assert_eq!(audit["label_issues"].as_array().unwrap().len(), 0);
    let notes = audit["notes"].to_string();
    assert!(
        notes.contains("has one image") && notes.contains("at least two classes"),
        "{notes}"
    );
}

#[test]
fn fingerprints_are_kept_remade_when_damaged_and_missing_images_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = split_data(tmp.path(), 6);
    // A picture with shapes (the generated class images are fine noise, flat once shrunk to a
    // fingerprint) in its own colours, so that the tiny backbone puts its copy nearest, and a
    // resized, re-encoded copy of it in the test split: paired by its pixels.
    let scene = image::RgbImage::from_fn(48, 48, |x, y| {
        let (u, v) = (x as f32 / 6.0, y as f32 / 9.0);
        let wave = 60.0 * (u.sin() * v.cos() + 1.0);
        image::Rgb([(40.0 + wave) as u8, 90, (200.0 - wave) as u8])
    });
    scene.save(data.join("train/class1/scene.png")).unwrap();
    DynamicImage::ImageRgb8(scene)
        .resize_exact(30, 30, image::imageops::FilterType::Triangle)
        .to_rgb8()
        .save_with_format(data.join("test/class1/smaller.jpg"), ImageFormat::Jpeg)
        .unwrap();
    let ws = tmp.path().join("ws");
    extract(&ws, &data).success();
    let pair = |audit: &serde_json::Value| {
        audit["near_duplicates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["a"]["path"] == "test/class1/smaller.jpg" || p["b"]["path"] == "test/class1/smaller.jpg")
    };
    let first = run_json(&ws, &["audit"]);
    assert!(pair(&first), "{first:#}");
    let dir = ws.join("embeddings/fingerprints");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");

    // A damaged file is set aside and its fingerprints made again: the same findings.
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() / 2]).unwrap();
    let again = run_json(&ws, &["audit"]);
    assert_eq!(again["near_duplicates"], first["near_duplicates"]);
    assert_eq!(dir.join("damaged").read_dir().unwrap().count(), 1);

    // With the fingerprints gone and the images moved away, the audit still runs and says which
    // images it could not compare.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::rename(&data, tmp.path().join("moved")).unwrap();
    let blind = run_json(&ws, &["audit"]);
    assert_eq!(blind["near_duplicates"].as_array().unwrap().len(), 0);
    let notes = blind["notes"].to_string();
    assert!(
        notes.contains("near-duplicates were not looked for among 26 images") && notes.contains("cannot read"),
        "{notes}"
    );
}
