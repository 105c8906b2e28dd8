//! `audit` on real photos with the default backbone: hymenoptera with planted problems (two
//! labels flipped each way, an exact copy and a re-encoded, resized copy of train images put in
//! val) and its own odd file, `train/ants/imageNotFound.gif`, a placeholder that is no photo.

mod common;

use std::path::Path;

use common::{headstart, run_json, shared_data};

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn hymenoptera_planted_problems_are_found() {
    let Some(original) = shared_data("hymenoptera") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    copy_tree(&original, &data);

    // Flipped labels: photos moved into the other class's folder.
    let flips = [
        ("train/ants/0013035.jpg", "train/bees/0013035.jpg", "ants"),
        (
            "train/ants/1030023514_aad5c608f9.jpg",
            "train/bees/1030023514_aad5c608f9.jpg",
            "ants",
        ),
        (
            "train/bees/1092977343_cb42b38d62.jpg",
            "train/ants/1092977343_cb42b38d62.jpg",
            "bees",
        ),
        (
            "train/bees/1093831624_fb5fbe2308.jpg",
            "train/ants/1093831624_fb5fbe2308.jpg",
            "bees",
        ),
    ];
    for (from, to, _) in flips {
        std::fs::rename(data.join(from), data.join(to)).unwrap();
    }
    std::fs::copy(
        data.join("train/ants/1095476100_3906d8afde.jpg"),
        data.join("val/ants/exact_copy.jpg"),
    )
    .unwrap();
    let photo = image::open(data.join("train/bees/1097045929_1753d1c765.jpg")).unwrap();
    let smaller = photo.resize(
        photo.width() * 7 / 10,
        photo.height() * 7 / 10,
        image::imageops::FilterType::Triangle,
    );
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 70)
        .encode_image(&smaller.to_rgb8())
        .unwrap();
    std::fs::write(data.join("val/bees/near_copy.jpg"), jpeg).unwrap();

    let ws = tmp.path().join("ws");
    let out = headstart(&ws).args(["extract", "--data"]).arg(&data).assert().success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(
        stderr.contains("1 images have an exact copy and 1 a near-duplicate"),
        "{stderr}"
    );

    let audit = run_json(&ws, &["audit"]);
    let exact = &audit["exact_duplicates"][0];
    assert_eq!(exact["crosses_splits"], true, "{audit:#}");
    let near = audit["near_duplicates"].as_array().unwrap();
    let planted = near
        .iter()
        .find(|p| p["b"]["path"] == "val/bees/near_copy.jpg" || p["a"]["path"] == "val/bees/near_copy.jpg")
        .unwrap_or_else(|| panic!("the resized copy is not paired: {near:#?}"));
    assert_eq!(planted["crosses_splits"], true);
    assert!(planted["similarity"].as_f64().unwrap() >= 0.9, "{planted}");

    // Every flip is among the first eight suspects, with its true class suggested.
    let issues = audit["label_issues"].as_array().unwrap();
    for (_, moved, truth) in flips {
        let rank = issues
            .iter()
            .position(|l| l["path"] == moved)
            .unwrap_or_else(|| panic!("{moved} is not suspected: {issues:#?}"));
        assert!(rank < 8, "{moved} ranks {rank}: {issues:#?}");
        assert_eq!(issues[rank]["suggested"], truth);
    }
    assert_eq!(
        audit["outliers"][0]["path"], "train/ants/imageNotFound.gif",
        "{:#}",
        audit["outliers"]
    );

    // A checked flip put on the ignore list is no longer reported.
    std::fs::write(ws.join("audit.ignore"), format!("{}\n", flips[0].1)).unwrap();
    let audit = run_json(&ws, &["audit"]);
    assert!(audit["label_issues"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["path"] != flips[0].1));
}
