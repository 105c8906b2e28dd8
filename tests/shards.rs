//! `extract --shard K/N` and `merge`: shards divide the images by content, and their merge is
//! the cache of a single extract, byte for byte.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_same_cache, extract, headstart, json, make_dataset, tiny_model, BYTE_EXACT_MODEL};
use headstart::cache::shard::ShardManifest;
use headstart::cache::{Store, Vectors};
use predicates::str::contains;

fn merge(ws: &Path, shards: &[PathBuf]) -> serde_json::Value {
    let out = headstart(ws)
        .args(["--json", "merge"])
        .args(shards)
        .assert()
        .code(3)
        .get_output()
        .stdout
        .clone();
    json(&out)
}

/// The content keys in a shard's store, as hex.
fn shard_keys(shard_ws: &Path) -> BTreeSet<String> {
    let record = ShardManifest::load(shard_ws).unwrap();
    let Some(name) = record.store else {
        return BTreeSet::new();
    };
    let bytes = std::fs::read(Store::dir_for(shard_ws, &record.backbone.key).join(name)).unwrap();
    let vectors = Vectors::decode(&bytes).unwrap();
    vectors.keys.iter().map(headstart::cache::key_hex).collect()
}

/// A temporary folder with `classes` classes of `per_class` generated images in `data/`.
fn generated(classes: usize, per_class: usize) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, classes, per_class);
    (tmp, data)
}

fn shard_ws(ws: &Path, k: usize, n: usize) -> PathBuf {
    ws.join("shards").join(format!("{k}-of-{n}"))
}

#[test]
fn shards_merged_equal_one_extract_byte_for_byte() {
    let (tmp, data) = generated(3, 14);
    let plain = tmp.path().join("plain");
    let whole = extract(&plain, &data, &[]);
    for n in 1..=3 {
        let ws = tmp.path().join(format!("n{n}"));
        let mut computed = 0;
        for k in 0..n {
            let s = extract(&ws, &data, &["--shard", &format!("{k}/{n}")]);
            assert_eq!(s["shard"]["index"], k);
            computed += s["computed"].as_u64().unwrap();
        }
        // Each image is computed by exactly one shard.
        assert_eq!(computed, whole["computed"].as_u64().unwrap(), "N = {n}");
        let merged = merge(&ws, &[]);
        assert_eq!(merged["images"], whole["images"]);
        assert_eq!(merged["skipped"], whole["skipped"]);
        assert_same_cache(&ws, &plain, &format!("N = {n}"));

        // Idempotent: a second merge adds nothing and changes no byte.
        let again = merge(&ws, &[]);
        assert_eq!(
            (again["added"].as_u64(), again["already_merged"].as_u64()),
            (Some(0), whole["images"].as_u64())
        );
        assert_same_cache(&ws, &plain, &format!("N = {n}, merged twice"));
    }
    // The merged workspace is an ordinary one: training reads it.
    headstart(&tmp.path().join("n2"))
        .args(["train-head", "--epochs", "2"])
        .assert()
        .success();
}

#[test]
fn an_image_stays_in_its_shard_when_files_are_added() {
    let (tmp, data) = generated(2, 20);
    let ws = tmp.path().join("ws");
    let before: Vec<BTreeSet<String>> = (0..3)
        .map(|k| {
            extract(&ws, &data, &["--shard", &format!("{k}/3")]);
            shard_keys(&shard_ws(&ws, k, 3))
        })
        .collect();
    // Disjoint, and together every image (40 images; the broken JPEG has no vector).
    let all: BTreeSet<&String> = before.iter().flatten().collect();
    assert_eq!(all.len(), 40);
    assert_eq!(before.iter().map(BTreeSet::len).sum::<usize>(), 40);

    // New files in a new class and among the old ones: no old image moves, and a shard
    // computes only its share of the new ones.
    std::fs::create_dir_all(data.join("class9")).unwrap();
    for i in 0..12 {
        common::class_image(3, 500 + i, 44)
            .save(data.join(format!("class9/n{i}.png")))
            .unwrap();
        common::class_image(0, 900 + i, 44)
            .save(data.join(format!("class0/a{i}.png")))
            .unwrap();
    }
    let mut new_total = 0;
    for (k, old) in before.iter().enumerate() {
        let s = extract(&ws, &data, &["--shard", &format!("{k}/3")]);
        let now = shard_keys(&shard_ws(&ws, k, 3));
        assert!(old.is_subset(&now), "shard {k} lost images when files were added");
        assert_eq!(s["computed"].as_u64().unwrap() as usize, now.len() - old.len());
        assert_eq!(s["reused"].as_u64().unwrap() as usize, old.len());
        new_total += now.len() - old.len();
    }
    assert_eq!(new_total, 24);
}

#[test]
fn shards_of_other_settings_or_data_are_refused() {
    let (tmp, data) = generated(2, 6);
    let copy = tmp.path().join("copy");
    make_dataset(&copy, 2, 6);
    let a = tmp.path().join("a");
    extract(&a, &data, &["--shard", "0/2"]);
    let refused = |name: &str, data: &Path, extra: &[&str], says: &str| {
        let b = tmp.path().join(name);
        let mut flags = vec!["--shard", "1/2"];
        flags.extend_from_slice(extra);
        extract(&b, data, &flags);
        headstart(&tmp.path().join("out"))
            .arg("merge")
            .args([shard_ws(&a, 0, 2), shard_ws(&b, 1, 2)])
            .assert()
            .code(1)
            .stderr(contains(says))
            .stderr(contains("shard 1/2"))
            .stderr(contains("shard 0/2"));
    };
    refused(
        "preset",
        &data,
        &["--preset", "tflite"],
        "in the preset: tflite against",
    );
    refused("root", &copy, &[], "in the data folder:");
    let other = tmp.path().join("other");
    headstart(&other)
        .args([
            "extract",
            "--shard",
            "1/2",
            "--batch-size",
            "4",
            "--model",
            &tiny_model("tiny_nchw"),
            "--data",
        ])
        .arg(&data)
        .assert()
        .code(3);
    headstart(&tmp.path().join("out"))
        .arg("merge")
        .args([shard_ws(&a, 0, 2), shard_ws(&other, 1, 2)])
        .assert()
        .code(1)
        .stderr(contains("in the backbone: tiny_nchw against tiny_nhwc_b1"));
    // Nothing was written by a refused merge.
    assert!(!tmp.path().join("out/dataset.json").exists());
}

#[test]
fn missing_shards_are_reported_by_number() {
    let (tmp, data) = generated(2, 6);
    let ws = tmp.path().join("ws");
    headstart(&ws)
        .arg("merge")
        .assert()
        .code(1)
        .stderr(contains("no shards in"));
    extract(&ws, &data, &["--shard", "0/4"]);
    extract(&ws, &data, &["--shard", "2/4"]);
    headstart(&ws).arg("merge").assert().code(1).stderr(contains(
        "shards 1, 3 of 4 missing: run `headstart extract --shard K/4` for each",
    ));
    extract(&ws, &data, &["--shard", "1/4"]);
    headstart(&ws)
        .arg("merge")
        .assert()
        .code(1)
        .stderr(contains("shard 3 of 4 missing"));
    headstart(&ws)
        .arg("merge")
        .arg(tmp.path())
        .assert()
        .code(1)
        .stderr(contains("is not a shard's workspace"));
}

#[test]
fn the_shard_flag_is_checked() {
    let (tmp, data) = generated(2, 3);
    for (flags, says) in [
        (
            &["2/2"][..],
            "--shard: 2/2: shards are numbered from 0, so K must be below N (0 to 1)",
        ),
        (&["0/0"], "--shard: 0/0: the number of shards must be at least 1"),
        (&["1"], "--shard: `1` is not K/N"),
        (&["a/3"], "--shard: `a/3` is not K/N"),
        (&["0/2", "--tta"], "--shard makes plain vectors only"),
    ] {
        headstart(&tmp.path().join("ws"))
            .args(["extract", "--model", &tiny_model(BYTE_EXACT_MODEL), "--data"])
            .arg(&data)
            .arg("--shard")
            .args(flags)
            .assert()
            .code(1)
            .stderr(contains(says));
    }
}

/// Generated data, its plain extract, and a workspace with its 2 shards: (the temporary folder,
/// data, plain workspace, sharded workspace).
fn plain_and_two_shards() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let (tmp, data) = generated(2, 8);
    let (plain, ws) = (tmp.path().join("plain"), tmp.path().join("ws"));
    extract(&plain, &data, &[]);
    for k in 0..2 {
        extract(&ws, &data, &["--shard", &format!("{k}/2")]);
    }
    (tmp, data, plain, ws)
}

#[test]
fn overlapping_shards_must_agree_bit_for_bit() {
    let (tmp, data, plain, two) = plain_and_two_shards();
    // And the same data as 1 shard: a shard run again elsewhere.
    let one = tmp.path().join("one");
    extract(&one, &data, &["--shard", "0/1"]);
    let out = tmp.path().join("out");
    let shards = [shard_ws(&two, 0, 2), shard_ws(&two, 1, 2), shard_ws(&one, 0, 1)];
    merge(&out, &shards);
    assert_same_cache(&out, &plain, "overlapping shards");

    // One vector changed in the single shard (its file still sealed): the merge names it.
    let record = ShardManifest::load(&shards[2]).unwrap();
    let store = Store::dir_for(&shards[2], &record.backbone.key).join(record.store.unwrap());
    let mut vectors = Vectors::decode(&std::fs::read(&store).unwrap()).unwrap();
    vectors.rows[0] = f32::from_bits(vectors.rows[0].to_bits() ^ 1);
    std::fs::write(&store, vectors.encode().0).unwrap();
    let image = record
        .images
        .iter()
        .find(|e| e.sha256 == headstart::cache::key_hex(&vectors.keys[0]))
        .unwrap()
        .sample
        .path
        .clone();
    headstart(&tmp.path().join("fresh"))
        .arg("merge")
        .args(&shards)
        .assert()
        .code(1)
        .stderr(contains(format!("the vector of {image} from shard")))
        .stderr(contains("differs from shard"))
        .stderr(contains("shard 0/1"));
    // Against an earlier merge's cache, too.
    headstart(&out)
        .arg("merge")
        .arg(&shards[2])
        .assert()
        .code(1)
        .stderr(contains("differs from the cache already merged in"));
}

#[test]
fn a_stopped_merge_resumes() {
    let (_tmp, _, plain, ws) = plain_and_two_shards();
    // As a merge stopped after its first shard leaves it: that shard's vectors pending.
    let record = ShardManifest::load(&shard_ws(&ws, 0, 2)).unwrap();
    let pending = Store::dir_for(&ws, &record.backbone.key).join("pending");
    std::fs::create_dir_all(&pending).unwrap();
    let first = Store::dir_for(&shard_ws(&ws, 0, 2), &record.backbone.key).join(record.store.unwrap());
    std::fs::copy(&first, pending.join("1-000000.safetensors")).unwrap();
    let resumed = merge(&ws, &[]);
    assert_eq!(
        resumed["already_merged"].as_u64().unwrap() as usize,
        shard_keys(&shard_ws(&ws, 0, 2)).len()
    );
    assert_same_cache(&ws, &plain, "resumed merge");
}

#[test]
fn a_killed_shard_resumes() {
    let (tmp, data) = generated(3, 60);
    let plain = tmp.path().join("plain");
    extract(&plain, &data, &[]);
    let ws = tmp.path().join("ws");
    extract(&ws, &data, &["--shard", "0/2"]);
    // Shard 1 is killed as soon as its first batches are saved.
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("headstart"))
        .arg("--workspace")
        .arg(&ws)
        .args([
            "--quiet",
            "extract",
            "--batch-size",
            "1",
            "--model",
            &tiny_model(BYTE_EXACT_MODEL),
            "--shard",
            "1/2",
            "--data",
        ])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let embeddings = shard_ws(&ws, 1, 2).join("embeddings");
    let saved = || {
        std::fs::read_dir(&embeddings)
            .ok()
            .and_then(|mut keys| keys.next())
            .and_then(|key| std::fs::read_dir(key.ok()?.path().join("pending")).ok())
            .is_some_and(|files| {
                let saved = files.filter(|f| {
                    f.as_ref()
                        .is_ok_and(|f| f.path().extension().is_some_and(|e| e == "safetensors"))
                });
                saved.count() >= 3
            })
    };
    while !saved() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !shard_ws(&ws, 1, 2).join(ShardManifest::FILE).exists(),
        "the shard ended before the kill"
    );

    let resumed = extract(&ws, &data, &["--shard", "1/2"]);
    assert!(resumed["reused"].as_u64().unwrap() >= 3, "{resumed}");
    assert!(resumed["computed"].as_u64().unwrap() > 0, "{resumed}");
    merge(&ws, &[]);
    assert_same_cache(&ws, &plain, "after a killed shard");
}

#[test]
fn the_leak_check_waits_for_the_merge() {
    let (tmp, data) = generated(2, 8);
    let ws = tmp.path().join("ws");
    // Two copies of one image under other names: whatever splits they land in, the merged
    // workspace is checked, and the shards (whose workspace holds no data set) are not.
    let first = std::fs::read_dir(data.join("class0"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for name in ["copy_a.png", "copy_b.png"] {
        std::fs::copy(&first, data.join("class1").join(name)).unwrap();
    }
    for k in 0..2 {
        let out = headstart(&ws)
            .args(["extract", "--model", &tiny_model(BYTE_EXACT_MODEL), "--data"])
            .arg(&data)
            .args(["--shard", &format!("{k}/2")])
            .output()
            .unwrap();
        // 3 for the shard that holds the data set's broken files.
        assert!(matches!(out.status.code(), Some(0 | 3)), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("duplicates across splits"), "{stderr}");
    }
    let out = headstart(&ws).arg("merge").assert().code(3);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(
        !stderr.contains("check for duplicates across splits failed"),
        "{stderr}"
    );
    assert!(
        ws.join("report/leaks.json").exists(),
        "the merge did not run the check: {stderr}"
    );
}
