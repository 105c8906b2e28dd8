//! Run records on generated images with the tiny test model: train-head and eval each leave one,
//! and `runs`, `runs show` and `runs compare` read them back.

mod common;

use std::path::Path;

use common::{extracted, headstart, json, run_json};
use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn sha256_of(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every run's record, oldest first.
fn records(ws: &Path) -> Vec<Value> {
    run_json(ws, &["runs"])["runs"].as_array().unwrap().clone()
}

/// The keys `runs compare` lists for two ids.
fn differing_keys(ws: &Path, a: &str, b: &str) -> Vec<String> {
    run_json(ws, &["runs", "compare", a, b])["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn train_and_eval_are_recorded_listed_shown_and_compared() {
    let (tmp, _data, ws) = extracted(3, 24);
    let base = ["train-head", "--epochs", "6", "--seed", "3", "--baseline"];
    let first = run_json(&ws, &base);
    // The same training with the head written elsewhere: bit-identical metrics, one setting apart.
    let other = ws.join("other.safetensors");
    let mut elsewhere = base.to_vec();
    elsewhere.extend(["--out", other.to_str().unwrap()]);
    run_json(&ws, &elsewhere);
    run_json(&ws, &["train-head", "--epochs", "4", "--seed", "3"]);
    let eval = run_json(&ws, &["eval", "--split", "test"]);

    let runs = records(&ws);
    let commands: Vec<&str> = runs.iter().map(|r| r["command"].as_str().unwrap()).collect();
    assert_eq!(commands, ["train-head", "train-head", "train-head", "eval"]);
    let ids: Vec<&str> = runs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "ids are unique and sort in run order");
    for id in &ids {
        assert!(ws.join("runs").join(format!("{id}.json")).is_file(), "{id}");
    }

    // What a record holds, checked against the command's own output and the workspace.
    let manifest: Value = serde_json::from_slice(&std::fs::read(ws.join("dataset.json")).unwrap()).unwrap();
    let train = &runs[0];
    assert_eq!(train["schema"], 1);
    assert!(train["argv"].as_array().unwrap().iter().any(|a| a == "--baseline"));
    assert_eq!(train["settings"]["head"]["epochs"], 6);
    assert_eq!(train["settings"]["head"]["seed"], 3);
    // Settings read as written: the default learning rate is 0.001, not its f32's exact value.
    assert_eq!(train["settings"]["head"]["learning_rate"], 0.001);
    assert!(train["settings"]["baseline"]["tolerance"].is_number());
    assert_eq!(train["backbone"]["key"], manifest["backbone"]["key"]);
    assert_eq!(train["data"]["images"], manifest["entries"].as_array().unwrap().len());
    assert_eq!(train["data"]["classes"], 3);
    assert_eq!(train["data"]["sha256"].as_str().unwrap().len(), 64);
    assert!(
        runs.iter().all(|r| r["data"] == train["data"]),
        "one data set, one fingerprint"
    );
    let last = &first["history"][5];
    for (metric, value) in [
        ("head.final.val_accuracy", &last["val_accuracy"]),
        ("head.final.train_loss", &last["train_loss"]),
    ] {
        let (got, want) = (train["metrics"][metric].as_f64().unwrap(), value.as_f64().unwrap());
        assert!((got - want).abs() < 1e-6, "{metric}: {got} vs {want}");
    }
    assert_eq!(train["metrics"]["head.epochs"], 6.0);
    let chosen = first["baseline"]["chosen_alpha"].as_f64().unwrap();
    assert_eq!(train["metrics"]["baseline.c"].as_f64().unwrap(), 1.0 / chosen);
    assert!(train["durations"]["total"].as_f64().unwrap() > 0.0);
    let written: Vec<&str> = train["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["model"].as_str().unwrap())
        .collect();
    assert_eq!(written, ["head", "baseline"]);
    // The second run wrote other.safetensors, and no later run replaced it.
    assert_eq!(runs[1]["files"][0]["sha256"], sha256_of(&other));

    let recorded_eval = &runs[3];
    assert_eq!(recorded_eval["settings"]["split"], "test");
    for (i, model) in ["head", "baseline"].iter().enumerate() {
        let file = &recorded_eval["files"][i];
        assert_eq!(
            (&file["model"], &file["access"]),
            (&Value::from(*model), &Value::from("read"))
        );
        assert_eq!(file["sha256"], sha256_of(Path::new(file["path"].as_str().unwrap())));
        let accuracy = &eval["models"][i]["evaluation"]["accuracy"];
        assert_eq!(&recorded_eval["metrics"][format!("{model}.accuracy")], accuracy);
        assert!(recorded_eval["metrics"][format!("{model}.macro_f1")].is_number());
    }
    // eval read the head the third run wrote.
    assert_eq!(recorded_eval["files"][0]["sha256"], runs[2]["files"][0]["sha256"]);

    // compare: exactly the keys whose values differ.
    assert_eq!(differing_keys(&ws, ids[0], ids[1]), ["settings.out"]);
    let keys = differing_keys(&ws, ids[0], ids[2]);
    for key in [
        "settings.head.epochs",
        "settings.baseline",
        "settings.baseline.tolerance",
        "metrics.head.epochs",
        "metrics.baseline.c",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
    for key in [
        "settings.head.seed",
        "settings.head.learning_rate",
        "settings.workspace",
        "settings.out",
    ] {
        assert!(!keys.iter().any(|k| k == key), "{key} is the same in both: {keys:?}");
    }
    let csv = headstart(&ws)
        .args(["runs", "compare", ids[0], ids[1], "--csv"])
        .output()
        .unwrap();
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert_eq!(
        csv,
        format!("key,a,b\nsettings.out,null,{}\n", other.display()),
        "{csv}"
    );
    headstart(&ws)
        .args(["runs", "compare", ids[0], ids[2]])
        .assert()
        .success()
        .stdout(contains("settings.baseline.tolerance").and(contains("(absent)")));

    // Sorting: losses best-first ascending; runs without the metric (eval) last.
    let sorted = run_json(&ws, &["runs", "--sort", "head.final.val_loss"]);
    assert_eq!(sorted["sort"]["order"], "ascending");
    let losses: Vec<Option<f64>> = sorted["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metrics"]["head.final.val_loss"].as_f64())
        .collect();
    assert!(
        losses[..3].windows(2).all(|w| w[0].unwrap() <= w[1].unwrap()),
        "{losses:?}"
    );
    assert_eq!(losses[3], None);
    let sorted = run_json(&ws, &["runs", "--sort", "head.final.val_accuracy"]);
    assert_eq!(sorted["sort"]["order"], "descending");
    headstart(&ws)
        .args(["runs", "--sort", "head.nonsense"])
        .assert()
        .failure()
        .stderr(contains("no run has the metric `head.nonsense`").and(contains("head.final.val_loss")));
    let table = headstart(&ws)
        .args(["runs", "--sort", "head.final.val_loss"])
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert_eq!(table.lines().count(), 2 + 4 + 1, "{table}");
    assert!(table.contains("head.final.val_loss") && table.contains("sorted by head.final.val_loss"));
    let csv = String::from_utf8(headstart(&ws).args(["runs", "--csv"]).output().unwrap().stdout).unwrap();
    assert!(csv.starts_with("id,time,command,backbone,data,seconds,"), "{csv}");
    assert_eq!(csv.lines().count(), 5);

    // show: by a unique prefix; a shared prefix is refused with the candidates.
    let eval_id = ids[3];
    let shown = run_json(&ws, &["runs", "show", &eval_id[..eval_id.len() - 2]]);
    assert_eq!(&shown, recorded_eval);
    headstart(&ws)
        .args(["runs", "show", eval_id])
        .assert()
        .success()
        .stdout(contains("metrics.head.accuracy").and(contains(eval_id)));
    headstart(&ws)
        .args(["runs", "show", &eval_id[..4]])
        .assert()
        .failure()
        .stderr(contains("give more of the id"));
    headstart(&ws)
        .args(["runs", "show", "19990101"])
        .assert()
        .failure()
        .stderr(contains("no run has an id starting with `19990101`"));

    // A damaged record is reported and skipped, not a crash.
    std::fs::write(ws.join("runs/broken.json"), "{\"schema\": 1, \"id\": ").unwrap();
    let listed = headstart(&ws).args(["--json", "runs"]).assert().success();
    let stderr = String::from_utf8_lossy(&listed.get_output().stderr).to_string();
    assert!(
        stderr.contains("broken.json") && stderr.contains("not a readable run record"),
        "{stderr}"
    );
    let listed = json(&listed.get_output().stdout);
    assert_eq!(listed["runs"].as_array().unwrap().len(), 4);
    assert_eq!(listed["damaged"].as_array().unwrap().len(), 1);

    // A record that cannot be written is a warning; the command itself succeeds.
    std::fs::rename(ws.join("runs"), tmp.path().join("runs_saved")).unwrap();
    std::fs::write(ws.join("runs"), "a file where the folder should be").unwrap();
    headstart(&ws)
        .args(["train-head", "--epochs", "1"])
        .assert()
        .success()
        .stderr(contains("warning: the run was not recorded"));
    assert!(ws.join("head.safetensors").is_file());
}

#[test]
fn an_empty_workspace_has_no_runs() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(run_json(tmp.path(), &["runs"])["runs"], Value::Array(vec![]));
    headstart(tmp.path())
        .arg("runs")
        .assert()
        .success()
        .stdout(contains("no runs recorded"));
    headstart(tmp.path())
        .args(["--json", "runs", "--csv"])
        .assert()
        .failure()
        .stderr(contains("--csv: cannot be combined with --json"));
    headstart(tmp.path())
        .args(["runs", "--sort", "head.accuracy", "show", "x"])
        .assert()
        .failure()
        .stderr(contains("--sort"));
}
