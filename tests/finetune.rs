//! `extract --cut` and `train-head --finetune` end to end on generated images with
//! `tiny_finetune` (a backbone whose layers after its cut hold every op the trainer
//! implements): the trained top agrees with ONNX Runtime, eval, predict and export agree with
//! each other (batch norm in training mode too), training is deterministic, a killed map
//! extraction resumes, and bad requests say what to do.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{headstart, kill_after, make_dataset, run_json, tiny_model};
use headstart::backbone::{Backbone, BackboneChoice, BackboneError};
use headstart::cache::maps::{CutRecord, MapStore};
use headstart::cache::{parse_key, Manifest, Store};
use headstart::finetune::{build, to_channels_last, Pass};
use headstart::onnx::edit::ModelEdit;
use predicates::prelude::*;
use predicates::str::contains;

fn prepared(per_class: usize) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    make_dataset(&data, 3, per_class);
    std::fs::remove_file(data.join("class1/broken.jpg")).unwrap();
    (tmp, data, ws)
}

fn extract_cut(ws: &Path, data: &Path) -> serde_json::Value {
    extract_cut_of(ws, data, "tiny_finetune")
}

/// `extract` of `data` with `tiny_finetune` and no cut: vectors, no maps.
fn extract_without_maps(ws: &Path, data: &Path) {
    headstart(ws)
        .args(["extract", "--model", &tiny_model("tiny_finetune"), "--data"])
        .arg(data)
        .assert()
        .success();
}

/// `extract --cut block` of `data` with the tiny model `name`.
fn extract_cut_of(ws: &Path, data: &Path, name: &str) -> serde_json::Value {
    let data = data.display().to_string();
    let model = tiny_model(name);
    let args = [
        "extract",
        "--val-percent",
        "20",
        "--test-percent",
        "20",
        "--batch-size",
        "4",
        "--model",
        &model,
        "--cut",
        "block",
        "--data",
        &data,
    ];
    run_json(ws, &args)
}

/// A JSON array of numbers.
fn numbers(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn map_store(ws: &Path) -> (Manifest, MapStore) {
    let manifest = Manifest::load(ws).unwrap();
    let cut = manifest.cut.clone().expect("the manifest records the cut");
    let dir = Store::dir_for(ws, &manifest.backbone.key).join(&cut.dir);
    (manifest, MapStore::read(&dir).unwrap())
}

#[test]
fn the_top_computes_what_onnx_runtime_computes() {
    let (_tmp, data, _) = prepared(4);
    let runtime = headstart::runtime::init(None).unwrap();
    let info = BackboneChoice {
        model: Some(tiny_model("tiny_finetune")),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let edit = ModelEdit {
        outputs: vec![info.cut_tensor("block")],
        ..Default::default()
    };
    let mut backbone = Backbone::open_with(&runtime, info.clone(), 1, &edit).unwrap();
    let (tensor, shape) = backbone.cut().cloned().unwrap();
    assert_eq!(tensor, "cut");
    assert_eq!((shape.channels, shape.height, shape.width), (8, 16, 16));
    let files: Vec<PathBuf> = ["class0/img000.png", "class1/img001.jpg", "class2/img002.bmp"]
        .iter()
        .map(|f| data.join(f))
        .collect();
    let mut rows = Vec::new();
    let failed = headstart::embed::embed_files::<BackboneError>(
        &mut backbone,
        &files,
        8,
        headstart::preprocess::DEFAULT_MAX_PIXELS,
        &headstart::embed::Silent,
        |_, width, out| {
            assert_eq!(width, 8 + shape.len(), "features then the map");
            rows.extend_from_slice(out);
            Ok(())
        },
    )
    .unwrap();
    assert!(failed.is_empty());

    let top = build(&std::fs::read(&info.path).unwrap(), &tensor, shape, "features").unwrap();
    for row in rows.chunks_exact(8 + shape.len()) {
        let (features, map) = row.split_at(8);
        let mut input = vec![0.0; map.len()];
        to_channels_last(map, shape, &mut input);
        let mut pass = Pass::default();
        top.forward(input, 1, &mut pass);
        for (ours, theirs) in pass.features().iter().zip(features) {
            assert!(
                (ours - theirs).abs() <= 1e-4 * (1.0 + theirs.abs()),
                "{ours} vs {theirs}"
            );
        }
    }
}

/// `eval` of the test split (the fine-tuned top on the cached f16 maps) and `predict` of the
/// same files (the spliced network in ONNX Runtime) agree: the same labels, confidences within
/// the maps' f16 rounding. Returns the files and predict's predictions.
fn predict_agrees_with_eval(ws: &Path, data: &Path) -> (Vec<String>, Vec<serde_json::Value>) {
    let eval = run_json(ws, &["eval", "--split", "test"]);
    assert_eq!(eval["models"][0]["model"], "finetune");
    let eval_predictions = eval["models"][0]["predictions"].as_array().unwrap().clone();
    let files: Vec<String> = eval_predictions
        .iter()
        .map(|p| data.join(p["path"].as_str().unwrap()).display().to_string())
        .collect();
    let mut predict_args = vec!["predict", "--top-k", "1"];
    predict_args.extend(files.iter().map(String::as_str));
    let predicted = run_json(ws, &predict_args);
    let predictions = predicted["predictions"].as_array().unwrap().clone();
    assert_eq!(predictions.len(), eval_predictions.len());
    for (p, e) in predictions.iter().zip(&eval_predictions) {
        let confidence = p["top"][0][1].as_f64().unwrap();
        assert_eq!(p["top"][0][0], e["predicted_label"], "{p} vs {e}");
        let from_maps = e["confidence"].as_f64().unwrap();
        assert!((confidence - from_maps).abs() < 5e-3, "{confidence} vs {from_maps}");
    }
    (files, predictions)
}

#[test]
fn fine_tunes_evaluates_predicts_and_exports_consistently() {
    let (_tmp, data, ws) = prepared(30);
    let extracted = extract_cut(&ws, &data);
    assert_eq!(extracted["cut"]["tensor"], "cut");
    assert_eq!(extracted["maps_computed"], extracted["images"]);
    let again = extract_cut(&ws, &data);
    assert_eq!(again["maps_computed"], 0, "maps are reused");

    let args = [
        "train-head",
        "--finetune",
        "block",
        "--backbone-lr",
        "1e-3",
        "--epochs",
        "15",
        "--seed",
        "7",
        "--baseline",
    ];
    let trained = run_json(&ws, &args);
    let head = common::tensors(&ws.join("head.safetensors"));
    let last = &trained["history"][14];
    assert!(last["val_accuracy"].as_f64().unwrap() >= 0.8, "{last}");
    run_json(&ws, &args);
    // The file's card holds timings; the weights must be equal bit for bit.
    assert!(
        common::tensors(&ws.join("head.safetensors")) == head,
        "the same seed, other weights"
    );

    let eval = run_json(&ws, &["eval", "--split", "test"]);
    assert_eq!(eval["models"][1]["model"], "baseline");
    let (files, predictions) = predict_agrees_with_eval(&ws, &data);

    // The exported file holds the fine-tuned weights: ONNX Runtime alone gives predict's
    // probabilities.
    let exported = run_json(&ws, &["export"]);
    let model = PathBuf::from(exported["model"].as_str().unwrap());
    let want: Vec<Vec<f64>> = predictions.iter().map(|p| numbers(&p["probabilities"])).collect();
    for (got, want) in common::run_exported(&model, &files, 32).iter().zip(&want) {
        for (g, w) in got.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }
    // And Python onnxruntime with PIL, on the PNG files (lossless: the same pixels).
    let png: Vec<usize> = (0..files.len()).filter(|&i| files[i].ends_with(".png")).collect();
    assert!(!png.is_empty());
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .arg(common::repo().join("tests/predict_onnx.py"))
        .arg(&model)
        .args(png.iter().map(|&i| &files[i]))
        .output()
        .expect("python3 with onnxruntime, numpy and pillow (installed by .ci/run)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let py = common::json(&out.stdout);
    for (row, &i) in py["probabilities"].as_array().unwrap().iter().zip(&png) {
        for (theirs, ours) in numbers(row).iter().zip(&want[i]) {
            assert!((theirs - ours).abs() < 1e-3, "{row} vs {:?}", want[i]);
        }
    }
}

#[test]
fn bad_requests_say_what_to_do() {
    let (_tmp, data, ws) = prepared(6);
    headstart(&ws)
        .args([
            "extract",
            "--model",
            &tiny_model("tiny_finetune"),
            "--cut",
            "nowhere",
            "--data",
        ])
        .arg(&data)
        .assert()
        .failure()
        .stderr(contains("no cut or tensor `nowhere`").and(contains("block (cut)")));
    extract_without_maps(&ws, &data);
    headstart(&ws)
        .args(["train-head", "--finetune", "block"])
        .assert()
        .failure()
        .stderr(contains("extract --data DIR --cut block"));
    headstart(&ws)
        .args(["train-head", "--finetune", "nowhere"])
        .assert()
        .failure()
        .stderr(contains("no tensor `nowhere`"));
    headstart(&ws)
        .args([
            "extract",
            "--model",
            &tiny_model("tiny_finetune"),
            "--cut",
            "block",
            "--shard",
            "0/2",
            "--data",
        ])
        .arg(&data)
        .assert()
        .failure()
        .stderr(contains("--cut"));
}

/// Kills `extract --cut` at spread-out moments; every resumed run ends with every map, equal
/// (to f16 rounding of values computed in other batches) to a clean run's.
#[test]
fn a_killed_map_extraction_resumes() {
    let (tmp, data, clean_ws) = prepared(30);
    let started = Instant::now();
    extract_cut(&clean_ws, &data);
    // The first run also warms the page cache and loads ONNX Runtime cold, so later runs can be
    // several times shorter: a run that ends before its kill shortens the scale to its own
    // length, and trials go on until enough kills landed mid-way.
    let mut run_length = started.elapsed();
    let (manifest, clean) = map_store(&clean_ws);
    const WANTED: usize = 8;
    let (mut trials, mut kills) = (0, 0);
    while kills < WANTED && trials < 4 * WANTED {
        let ws = tmp.path().join(format!("trial{trials}"));
        let child = Command::new(assert_cmd::cargo::cargo_bin("headstart"))
            .arg("--workspace")
            .arg(&ws)
            .args([
                "--quiet",
                "extract",
                "--batch-size",
                "4",
                "--val-percent",
                "20",
                "--test-percent",
                "20",
            ])
            .args(["--model", &tiny_model("tiny_finetune"), "--cut", "block", "--data"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Spread over the run: the golden ratio's fractional steps never repeat a moment.
        let at = (trials as f64 * 0.618_034 + 0.25).fract();
        match kill_after(child, run_length.mul_f64(at)) {
            None => kills += 1,
            Some(took) => run_length = run_length.min(took),
        }
        let resumed = extract_cut(&ws, &data);
        let (_, maps) = map_store(&ws);
        assert_eq!(maps.len(), clean.len(), "trial {trials}: {resumed}");
        for entry in &manifest.entries {
            let key = parse_key(&entry.sha256).unwrap();
            let (a, b) = (maps.get(&key).unwrap(), clean.get(&key).unwrap());
            for (x, y) in a.iter().zip(b) {
                assert!((x.to_f32() - y.to_f32()).abs() <= 1e-2 * (1.0 + y.to_f32().abs()));
            }
        }
        let cut: &CutRecord = manifest.cut.as_ref().unwrap();
        let dir = Store::dir_for(&ws, &manifest.backbone.key).join(&cut.dir);
        let leftovers = std::fs::read_dir(dir).unwrap().filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".tmp")
        });
        assert_eq!(leftovers.count(), 0, "temporary files are cleared");
        trials += 1;
    }
    assert!(kills >= WANTED, "only {kills} of {trials} runs were killed mid-way");
}

/// `sweep --heads finetune`: fine-tune trials run on the cached maps beside the other kinds, are
/// resumed from the journal, and a fine-tune winner is refitted into a file eval reads.
#[test]
fn a_sweep_runs_fine_tune_trials_and_refits_a_fine_tune_winner() {
    let (_tmp, data, ws) = prepared(8);
    let sweep = |heads: &str, extra: &[&str]| {
        let mut args = vec![
            "sweep", "--heads", heads, "--hidden", "8", "--epochs", "2", "--c", "1", "--folds", "2",
        ];
        args.extend_from_slice(extra);
        run_json(&ws, &args)
    };
    // No maps yet: the error names the extract that makes them.
    extract_without_maps(&ws, &data);
    headstart(&ws)
        .args(["sweep", "--heads", "finetune", "--folds", "2"])
        .assert()
        .failure()
        .stderr(contains("--cut NAME"));
    extract_cut(&ws, &data);
    let first = sweep("logistic,finetune", &["--backbone-lr", "1e-4,1e-3", "--refit", "none"]);
    let results = first["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let tuned: Vec<&serde_json::Value> = results.iter().filter(|r| r["spec"]["kind"] == "finetune").collect();
    assert_eq!(tuned.len(), 2);
    for r in &tuned {
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(r["spec"]["cut"], "block");
        assert_eq!(r["folds"].as_array().unwrap().len(), 2);
    }
    // Another learning rate is another trial with other scores.
    assert_ne!(tuned[0]["folds"], tuned[1]["folds"]);
    // The same sweep again: every trial from the journal, the same scores.
    let again = sweep("logistic,finetune", &["--backbone-lr", "1e-4,1e-3", "--refit", "none"]);
    assert_eq!(again["resumed"], 3);
    assert_eq!(again["results"], first["results"]);
    // A space that names a cut the workspace has no maps of is refused.
    headstart(&ws)
        .args(["sweep", "--folds", "2", "--space"])
        .arg({
            let path = ws.join("space.toml");
            std::fs::write(&path, "[finetune]\ncut = \"head-conv\"\n").unwrap();
            path
        })
        .assert()
        .failure()
        .stderr(contains("has maps at `block` only"))
        .stderr(contains("--cut head-conv"));
    // A fine-tune alone wins: refitted on train + val, scored on test, and eval runs it.
    let refitted = sweep("finetune", &[]);
    let refit = &refitted["refit"];
    assert!(
        refit["label"].as_str().unwrap().starts_with("finetune cut=block"),
        "{refit}"
    );
    assert!(refit["test"]["accuracy"].is_number(), "{refit}");
    let eval = run_json(&ws, &["eval"]);
    let model = &eval["models"][0];
    assert_eq!(model["model"], "finetune");
    let (a, b) = (&model["evaluation"], &refit["test"]);
    assert_eq!(a["accuracy"], b["accuracy"], "{eval}");
    let (la, lb) = (a["log_loss"].as_f64().unwrap(), b["log_loss"].as_f64().unwrap());
    // eval reads the same f16 maps through the same top: equal but for summation order.
    assert!((la - lb).abs() < 1e-6, "{la} {lb}");
}

/// A bias shared by a layer before the cut and one after it (through Identity nodes, as a
/// random-weights ResNet-50 export has them) trains for the layer after the cut only: predict's
/// spliced network still computes the maps the cache holds.
#[test]
fn a_weight_shared_across_the_cut_is_trained_after_it_only() {
    let (_tmp, data, ws) = prepared(12);
    extract_cut_of(&ws, &data, "tiny_shared_bias");
    // A large rate, so that the bias moves far: were the shared copy trained, the maps that
    // predict's network computes would no longer be the cached ones.
    let trained = run_json(
        &ws,
        &[
            "train-head",
            "--finetune",
            "block",
            "--backbone-lr",
            "0.05",
            "--epochs",
            "4",
        ],
    );
    assert_eq!(trained["history"].as_array().unwrap().len(), 4);
    let head = common::tensors(&ws.join("head.safetensors"));
    assert!(head.contains_key("top/conv.b"), "{:?}", head.keys());
    predict_agrees_with_eval(&ws, &data);
}

/// The moving statistics of `tiny_finetune`'s batch norm in the top saved in `head`, as
/// `export` and `predict` put them back into the backbone.
fn moving_stats(head: &Path) -> (Vec<f32>, Vec<f32>) {
    let (classifier, _) = headstart::artifact::load(head).unwrap();
    let weights: std::collections::HashMap<String, Vec<f32>> = classifier.backbone_weights().into_iter().collect();
    (weights["bn.mean"].clone(), weights["bn.var"].clone())
}

/// `--batch-norm train`: the top's batch norm normalises batches by their own statistics and
/// moves its moving ones, deterministically; predict's spliced network uses the moved ones, so it
/// still agrees with eval on the cached maps. The default keeps the backbone's statistics, and a
/// top without batch norm refuses training mode.
#[test]
fn batch_norm_in_training_mode_moves_the_statistics_predict_uses() {
    let (_tmp, data, ws) = prepared(12);
    extract_cut(&ws, &data);
    let frozen = ["train-head", "--finetune", "block", "--epochs", "2"];
    run_json(&ws, &frozen);
    let backbone = moving_stats(&ws.join("head.safetensors"));

    let args = [
        "train-head",
        "--finetune",
        "block",
        "--batch-norm",
        "train",
        "--backbone-lr",
        "1e-3",
        "--epochs",
        "6",
        "--seed",
        "3",
    ];
    run_json(&ws, &args);
    let head = common::tensors(&ws.join("head.safetensors"));
    let moved = moving_stats(&ws.join("head.safetensors"));
    for (old, new) in [(&backbone.0, &moved.0), (&backbone.1, &moved.1)] {
        assert!(old.iter().zip(new).all(|(o, n)| o != n), "{old:?} -> {new:?}");
    }
    assert!(moved.1.iter().all(|&v| v > 0.0), "variances {:?}", moved.1);
    run_json(&ws, &args);
    assert!(
        common::tensors(&ws.join("head.safetensors")) == head,
        "the same seed, other weights"
    );
    assert_eq!(moving_stats(&ws.join("head.safetensors")), moved);
    let runs = run_json(&ws, &["runs"]);
    let record = runs["runs"].as_array().unwrap().last().unwrap().clone();
    let finetune = &record["settings"]["finetune"];
    assert_eq!(finetune["batch_norm"], "train", "{record}");
    assert_eq!(
        (&finetune["cut"], &finetune["backbone_lr"]),
        (&"block".into(), &0.001.into())
    );
    predict_agrees_with_eval(&ws, &data);

    run_json(&ws, &frozen);
    assert_eq!(moving_stats(&ws.join("head.safetensors")), backbone);

    let other = ws.with_file_name("no-batch-norm");
    extract_cut_of(&other, &data, "tiny_shared_bias");
    headstart(&other)
        .args(["train-head", "--finetune", "block", "--batch-norm", "train"])
        .assert()
        .failure()
        .stderr(contains("have none").and(contains("drop --batch-norm")));
}

/// Maps of images that left the data set are dropped from the cache, the others kept as they
/// were.
#[test]
fn maps_of_images_that_left_are_dropped() {
    let (_tmp, data, ws) = prepared(6);
    let first = extract_cut(&ws, &data);
    assert_eq!(first["maps_dropped"], 0);
    let (_, before) = map_store(&ws);
    let gone = ["class0/img000.png", "class2/img001.jpg"];
    for file in gone {
        std::fs::remove_file(data.join(file)).unwrap();
    }
    let second = extract_cut(&ws, &data);
    assert_eq!(second["maps_computed"], 0);
    assert_eq!(second["maps_dropped"], 2);
    let (manifest, after) = map_store(&ws);
    assert_eq!(after.len(), manifest.entries.len());
    for entry in &manifest.entries {
        let key = parse_key(&entry.sha256).unwrap();
        assert_eq!(after.get(&key), before.get(&key), "{}", entry.sample.path);
    }
}
