//! `headstart sweep` end to end on a generated data set and a tiny backbone: the leaderboard,
//! determinism across worker counts, resuming a killed sweep, failed trials, the refitted
//! winner used by `eval`, and the errors a user can make.

mod common;

use std::path::{Path, PathBuf};

use common::{headstart, make_dataset, run_json, tiny_model};
use serde_json::Value;

/// A workspace with 3 classes of 24 images extracted with the tiny backbone (train, val, test).
fn workspace() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (data, ws) = (tmp.path().join("data"), tmp.path().join("ws"));
    make_dataset(&data, 3, 24);
    std::fs::remove_file(data.join("class1/broken.jpg")).unwrap();
    headstart(&ws)
        .args(["extract", "--val-percent", "20", "--test-percent", "20", "--model"])
        .arg(tiny_model("tiny_nchw"))
        .arg("--data")
        .arg(&data)
        .assert()
        .success();
    (tmp, ws)
}

const SPACE: [&str; 14] = [
    "sweep",
    "--heads",
    "mlp,logistic,knn,prototype",
    "--hidden",
    "none,16",
    "--epochs",
    "4",
    "--c",
    "0.1,10",
    "--k",
    "1,3",
    "--knn-weights",
    "uniform",
    "--folds=3",
];

/// Each result without its timings, which are the only thing allowed to differ between runs.
fn ranked(summary: &Value) -> Vec<Value> {
    summary["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("seconds");
            if let Some(folds) = r.get_mut("folds") {
                for f in folds.as_array_mut().unwrap() {
                    f.as_object_mut().unwrap().remove("seconds");
                }
            }
            r
        })
        .collect()
}

fn journal(ws: &Path, summary: &Value) -> PathBuf {
    let journal = &summary["journals"][0];
    let path = PathBuf::from(journal["path"].as_str().unwrap());
    assert_eq!(
        path,
        ws.join("sweeps")
            .join(format!("{}.jsonl", journal["protocol"].as_str().unwrap()))
    );
    path
}

#[test]
fn a_sweep_ranks_every_config_refits_the_winner_and_is_the_same_on_any_worker_count() {
    let (_tmp, ws) = workspace();
    let mut one = SPACE.to_vec();
    one.extend(["--threads", "1", "--refit", "none"]);
    let first = run_json(&ws, &one);
    let results = first["results"].as_array().unwrap();
    // 2 mlp + 2 logistic + 2 knn + 1 prototype.
    assert_eq!(results.len(), 7);
    assert_eq!(first["resumed"], 0);
    assert_eq!(first["folds"], 3);
    let sizes: usize = first["fold_sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap() as usize)
        .sum();
    assert!(sizes > 30, "train + val images are in the folds: {sizes}");
    let accuracy = |r: &Value| r["accuracy"]["mean"].as_f64().unwrap();
    for pair in results.windows(2) {
        assert!(accuracy(&pair[0]) >= accuracy(&pair[1]), "ranked best first");
    }
    for r in results {
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(r["folds"].as_array().unwrap().len(), 3);
        let (low, high) = (
            r["accuracy"]["low"].as_f64().unwrap(),
            r["accuracy"]["high"].as_f64().unwrap(),
        );
        assert!(low <= accuracy(r) && accuracy(r) <= high);
    }
    assert!(first["refit"].is_null());
    assert!(
        !ws.join("head.safetensors").exists(),
        "--refit none leaves the head alone"
    );

    // Two workers, a fresh journal: the same leaderboard, to the last bit.
    std::fs::remove_dir_all(ws.join("sweeps")).unwrap();
    let mut two = SPACE.to_vec();
    two.extend(["--threads", "2"]);
    let second = run_json(&ws, &two);
    assert_eq!(ranked(&second), ranked(&first));

    // The winner is the workspace's head now: eval scores it, and the test split was scored once.
    let refit = &second["refit"];
    assert_eq!(refit["id"], results[0]["id"]);
    assert!(ws.join("head.safetensors").is_file());
    let test = refit["test"]["accuracy"].as_f64().unwrap();
    let eval = run_json(&ws, &["eval", "--split", "test"]);
    assert_eq!(eval["models"][0]["evaluation"]["accuracy"].as_f64().unwrap(), test);

    // The CSV has a row per trial and the sweep left a run record.
    let csv = std::fs::read_to_string(ws.join("sweeps/leaderboard.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 7);
    let runs = std::fs::read_dir(ws.join("runs")).unwrap().count();
    assert!(runs >= 2, "the sweeps and the eval are recorded");
}

#[test]
fn a_killed_sweep_resumes_to_the_same_leaderboard() {
    let (_tmp, ws) = workspace();
    let whole = run_json(&ws, &SPACE);
    let path = journal(&ws, &whole);
    let lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 7);
    // What a kill leaves: two finished trials and half of the third's line.
    let torn = format!("{}\n{}\n{}", lines[0], lines[1], &lines[2][..lines[2].len() / 2]);
    std::fs::write(&path, torn).unwrap();
    let resumed = run_json(&ws, &SPACE);
    assert_eq!(resumed["resumed"], 2);
    assert_eq!(ranked(&resumed), ranked(&whole));
    // Run again: nothing left to do, all from the journal.
    let again = run_json(&ws, &SPACE);
    assert_eq!(again["resumed"], 7);
    assert_eq!(ranked(&again), ranked(&whole));
}

#[test]
fn a_failing_trial_is_reported_and_the_sweep_goes_on() {
    let (_tmp, ws) = workspace();
    let out = run_json(
        &ws,
        &[
            "sweep",
            "--heads",
            "knn,prototype",
            "--k",
            "1,1000",
            "--knn-weights",
            "uniform",
            "--folds",
            "3",
        ],
    );
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let failed: Vec<&Value> = results.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["spec"]["k"], 1000);
    assert!(!failed[0]["reason"].as_str().unwrap().is_empty());
    assert_eq!(results.last().unwrap()["status"], "failed", "failures rank last");
    assert_eq!(out["refit"]["id"], results[0]["id"]);
}

#[test]
fn bad_spaces_and_folds_are_clear_errors() {
    let (tmp, ws) = workspace();
    let stderr = |args: &[&str]| {
        let out = headstart(&ws).args(args).assert().failure().get_output().clone();
        String::from_utf8(out.stderr).unwrap()
    };
    let heads = stderr(&["sweep", "--heads", "mlp,svm"]);
    assert!(heads.contains("--heads: `svm` is not a head kind"), "{heads}");
    let dropout = stderr(&["sweep", "--heads", "mlp", "--dropout", "0.5,1.5"]);
    assert!(dropout.contains("--dropout: 1.5: must be in [0, 1)"), "{dropout}");
    let folds = stderr(&["sweep", "--folds", "1000"]);
    assert!(folds.contains("1000 folds but only"), "{folds}");
    let file = tmp.path().join("space.toml");
    std::fs::write(&file, "[mlp]\ndropot = 0.5\n").unwrap();
    let key = stderr(&["sweep", "--space", file.to_str().unwrap()]);
    assert!(key.contains("`mlp.dropot` is not a setting of mlp"), "{key}");
    std::fs::write(&file, "[knn\n").unwrap();
    let syntax = stderr(&["sweep", "--space", file.to_str().unwrap()]);
    assert!(syntax.contains("is not valid TOML"), "{syntax}");
    // A space file that works: JSON this time.
    let json = tmp.path().join("space.json");
    std::fs::write(&json, r#"{"prototype": {"shrinkage": [0, 0.5]}, "knn": {"k": 3}}"#).unwrap();
    let out = run_json(&ws, &["sweep", "--space", json.to_str().unwrap(), "--folds", "3"]);
    assert_eq!(out["results"].as_array().unwrap().len(), 3);
}

/// Ctrl-C: the running trials finish, the partial leaderboard is printed, the exit code is 130,
/// and the same command then resumes from the journal to the whole leaderboard.
#[test]
fn ctrl_c_prints_the_partial_leaderboard_and_the_sweep_resumes() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let (_tmp, ws) = workspace();
    let args = [
        "sweep",
        "--heads",
        "mlp",
        "--hidden",
        "8,16,24,32,40,48",
        "--epochs",
        "60",
        "--folds",
        "3",
        "--threads",
        "1",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_headstart"))
        .arg("--workspace")
        .arg(&ws)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("[1/6]") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the sweep ended before its first trial"
        );
    }
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(
        stdout.contains("interrupted:") && stdout.contains("run the same command again"),
        "{stdout}"
    );
    let partial: usize = stdout
        .split(" of 6 configurations")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((1..6).contains(&partial), "{stdout}");
    assert!(
        !ws.join("head.safetensors").exists(),
        "nothing is refitted after an interruption"
    );

    let mut again = vec!["sweep"];
    again.extend(&args[1..]);
    let resumed = run_json(&ws, &again);
    assert_eq!(resumed["resumed"].as_u64().unwrap() as usize, partial);
    assert_eq!(resumed["results"].as_array().unwrap().len(), 6);
    assert!(ws.join("head.safetensors").is_file());
}

/// Two backbones cached for the same images are compared in one leaderboard under the same
/// folds; the refit switches the workspace to the winner's backbone when it is not the current
/// one, and eval then uses it. A backbone not cached names the extract command that adds it.
#[test]
fn backbones_cached_for_the_data_are_compared_in_one_leaderboard() {
    let (tmp, ws) = workspace();
    let data = tmp.path().join("data");
    let extract = |model: &str| {
        headstart(&ws)
            .args(["extract", "--val-percent", "20", "--test-percent", "20", "--model"])
            .arg(tiny_model(model))
            .arg("--data")
            .arg(&data)
            .assert()
            .success();
    };
    extract("tiny_nhwc_b1");
    let args = [
        "sweep",
        "--heads",
        "knn,prototype",
        "--k",
        "1,3",
        "--knn-weights",
        "uniform",
        "--folds",
        "3",
    ];
    let mut all = args.to_vec();
    all.extend(["--backbones", "all"]);
    let out = run_json(&ws, &all);
    let mut backbones: Vec<&str> = out["backbones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    backbones.sort_unstable();
    assert_eq!(backbones, ["tiny_nchw", "tiny_nhwc_b1"]);
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 2 * 3);
    for name in ["tiny_nchw", "tiny_nhwc_b1"] {
        assert_eq!(results.iter().filter(|r| r["backbone"] == name).count(), 3, "{name}");
    }
    assert_eq!(out["journals"].as_array().unwrap().len(), 2);
    let refit = &out["refit"];
    assert_eq!(refit["backbone"], results[0]["backbone"]);
    assert_eq!(refit["switched_backbone"], results[0]["backbone"] != "tiny_nhwc_b1");
    let manifest: Value = serde_json::from_slice(&std::fs::read(ws.join("dataset.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["backbone"]["name"], results[0]["backbone"],
        "the workspace uses the winner's backbone"
    );
    let eval = run_json(&ws, &["eval", "--split", "test"]);
    assert_eq!(
        eval["models"][0]["evaluation"]["accuracy"].as_f64().unwrap(),
        refit["test"]["accuracy"].as_f64().unwrap()
    );

    let mut missing = args.to_vec();
    missing.extend(["--backbones", "tiny_nchw,efficientnet_lite4"]);
    let out = headstart(&ws).args(&missing).assert().code(1).get_output().clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("backbone `efficientnet_lite4` is not cached for this data"),
        "{stderr}"
    );
    assert!(stderr.contains("--model efficientnet_lite4"), "{stderr}");
}
