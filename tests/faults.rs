//! Crashes and faults: kill -9 at random moments, damaged cache files, a full disk, two runs at
//! once, a reader during a write, training that diverges. None may lose the cache or let wrong
//! vectors through silently.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{headstart, json, kill_after, make_dataset, tiny_model};
use headstart::cache::{Manifest, Store, Vectors, WorkspaceLock};
use predicates::prelude::*;
use predicates::str::contains;
use rand::{Rng, SeedableRng};

/// The binary as a plain process (for kill, rlimits and pipes), quiet, with its workspace.
fn process(ws: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("headstart"));
    cmd.arg("--workspace").arg(ws).arg("--quiet").args(args);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// `extract` with the batch-1 tiny model: every image is its own network call, so its vector
/// is bit-identical however a run is cut into batches, and caches can be compared byte for byte.
fn extract_args(data: &Path) -> Vec<String> {
    vec![
        "extract".into(),
        "--model".into(),
        tiny_model("tiny_nhwc_b1"),
        "--batch-size".into(),
        "4".into(),
        "--data".into(),
        data.display().to_string(),
    ]
}

fn run_extract(ws: &Path, data: &Path) -> serde_json::Value {
    json(
        &headstart(ws)
            .arg("--json")
            .args(extract_args(data))
            .assert()
            .success()
            .get_output()
            .stdout,
    )
}

fn dataset(root: &Path, per_class: usize) -> PathBuf {
    let data = root.join("data");
    make_dataset(&data, 3, per_class);
    std::fs::remove_file(data.join("class1/broken.jpg")).unwrap();
    data
}

/// The manifest's bytes and the bytes of the store file it names.
fn cache_bytes(ws: &Path) -> (Vec<u8>, Vec<u8>) {
    let manifest = Manifest::load(ws).unwrap();
    let store = Store::dir_for(ws, &manifest.backbone.key).join(&manifest.store);
    (
        std::fs::read(ws.join(Manifest::FILE)).unwrap(),
        std::fs::read(store).unwrap(),
    )
}

/// Compares a workspace's cache with a clean run's, saying where they differ (not dumping bytes).
#[track_caller]
fn assert_same_cache(ws: &Path, clean: &(Vec<u8>, Vec<u8>), context: &str) {
    let got = cache_bytes(ws);
    if got.0 != clean.0 {
        let (a, b) = (String::from_utf8_lossy(&got.0), String::from_utf8_lossy(&clean.0));
        let line = a.lines().zip(b.lines()).find(|(x, y)| x != y);
        panic!("{context}: dataset.json differs from a clean run's, first at {line:?}");
    }
    if got.1 != clean.1 {
        let at = got.1.iter().zip(&clean.1).position(|(x, y)| x != y);
        panic!(
            "{context}: the store differs from a clean run's ({} vs {} bytes, first difference at {at:?})",
            got.1.len(),
            clean.1.len()
        );
    }
}

/// Every cache file under its real name must be whole: a killed run may leave temporary
/// files, never a half-written file that a reader would take for a real one.
fn assert_no_partial_files(ws: &Path) {
    let manifest = ws.join(Manifest::FILE);
    if manifest.exists() {
        Manifest::load(ws).unwrap_or_else(|e| panic!("a killed run left a bad manifest: {e}"));
    }
    let mut dirs = vec![ws.join("embeddings")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                dirs.push(path);
            } else if name.starts_with("maps-") && name.ends_with(".safetensors") {
                // Map files (the audit's fingerprints): the reader checks every one in the folder.
                if let Err(e) = headstart::cache::maps::MapStore::read(&dir) {
                    panic!("a killed run left a bad file in {}: {e}", dir.display());
                }
            } else if path.extension().is_some_and(|e| e == "safetensors") {
                let bytes = std::fs::read(&path).unwrap();
                if let Err(e) = Vectors::decode(&bytes) {
                    panic!("a killed run left {} half written: {e}", path.display());
                }
            }
        }
    }
}

#[test]
fn kill_9_at_random_moments_never_loses_or_corrupts_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path(), 40);
    let clean_ws = tmp.path().join("clean");
    let started = Instant::now();
    run_extract(&clean_ws, &data);
    // Kill times are drawn over the length of a whole run. Runs get faster or slower as other
    // tests come and go, so every run that ends before its kill shortens the scale to its own
    // length: kills keep landing inside runs on a busy machine and on an idle one.
    let mut run_length = started.elapsed();
    let clean = cache_bytes(&clean_ws);

    // Random kill times, reproducible: a failing seed is printed and can be set again.
    let seed = std::env::var("HEADSTART_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        });
    eprintln!("kill times from HEADSTART_KILL_SEED={seed}; clean run {run_length:?}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let args = extract_args(&data);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    const WANTED: usize = 30;
    let (mut trials, mut kills) = (0, 0);
    while kills < WANTED && trials < 3 * WANTED {
        let ws = tmp.path().join(format!("trial{trials}"));
        // Odd trials kill twice in a row, so a resumed run is killed too.
        for attempt in 0..1 + trials % 2 {
            let delay = run_length.mul_f64(rng.gen_range(0.0..1.0));
            match kill_after(process(&ws, &args).spawn().unwrap(), delay) {
                None => kills += 1,
                // Only a run from an empty workspace is a whole run; a resumed one is shorter.
                Some(took) if attempt == 0 => run_length = run_length.min(took),
                Some(_) => {}
            }
            assert_no_partial_files(&ws);
        }
        let resumed = run_extract(&ws, &data);
        assert_same_cache(&ws, &clean, &format!("trial {trials} (seed {seed})"));
        assert_eq!(resumed["images"], 120);
        let pending = Store::dir_for(&ws, resumed["backbone"]["key"].as_str().unwrap()).join("pending");
        assert!(!pending.exists() || std::fs::read_dir(pending).unwrap().next().is_none());
        trials += 1;
    }
    eprintln!("{kills} runs killed mid-way in {trials} trials");
    assert!(
        kills >= WANTED,
        "only {kills} of the runs in {trials} trials were killed before they ended"
    );
}

fn flip_byte(path: &Path, from_end: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() - from_end;
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn damage_is_detected_readers_stop_and_extract_recomputes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path(), 10);
    let ws = tmp.path().join("ws");
    run_extract(&ws, &data);
    let clean = cache_bytes(&ws);
    let manifest = Manifest::load(&ws).unwrap();
    let store = Store::dir_for(&ws, &manifest.backbone.key).join(&manifest.store);

    // One flipped bit in one vector.
    flip_byte(&store, 7);
    headstart(&ws)
        .args(["train-head", "--epochs", "1"])
        .assert()
        .code(1)
        .stderr(
            contains(manifest.store.as_str())
                .and(contains("checksum"))
                .and(contains("headstart extract")),
        );
    let repaired = json(
        &headstart(&ws)
            .arg("--json")
            .args(extract_args(&data))
            .assert()
            .success()
            .stderr(contains("set aside the damaged cache file"))
            .get_output()
            .stdout,
    );
    assert_eq!(repaired["computed"], 30);
    assert_eq!(repaired["damaged_cache_files"].as_array().unwrap().len(), 1);
    assert_same_cache(&ws, &clean, "after the repair");
    headstart(&ws).args(["train-head", "--epochs", "1"]).assert().success();

    // A truncated store file.
    let bytes = std::fs::read(&store).unwrap();
    std::fs::write(&store, &bytes[..bytes.len() / 2]).unwrap();
    headstart(&ws).arg("eval").assert().code(1).stderr(contains("damaged"));
    assert_eq!(run_extract(&ws, &data)["computed"], 30);
    assert_same_cache(&ws, &clean, "after the repair");

    // A changed value in the manifest: it still parses, but its checksum no longer fits.
    let path = ws.join(Manifest::FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"split\": \"train\"", "\"split\": \"test\"", 1)).unwrap();
    headstart(&ws)
        .args(["train-head", "--epochs", "1"])
        .assert()
        .code(1)
        .stderr(contains("dataset.json").and(contains("checksum")));
    assert_eq!(run_extract(&ws, &data)["computed"], 0);
    assert_same_cache(&ws, &clean, "after the repair");
}

/// Runs `cmd` with files limited to `max_bytes`: writes beyond it fail with EFBIG ("File too
/// large") just as they fail with ENOSPC on a full disk, without needing a small file system.
fn with_file_size_limit(cmd: &mut Command, max_bytes: u64) -> &mut Command {
    unsafe {
        cmd.pre_exec(move || {
            // By default the kernel kills the process instead of failing the write.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: max_bytes,
                rlim_max: max_bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

#[test]
fn a_full_disk_is_a_clear_error_and_the_earlier_cache_stays_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path(), 10);
    let ws = tmp.path().join("ws");
    run_extract(&ws, &data);
    let before = cache_bytes(&ws);
    for i in 10..40 {
        common::class_image(2, i, 40)
            .save(data.join(format!("class2/more{i:03}.png")))
            .unwrap();
    }
    let args = extract_args(&data);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // Room for nothing: the first batch cannot be written.
    // Room for the batches but not for the new store, which is bigger than the old one.
    for limit in [200, before.1.len() as u64 + 64] {
        let out = with_file_size_limit(&mut process(&ws, &args), limit).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "limit {limit}: {stderr}");
        assert!(
            stderr.contains("cannot write") && stderr.contains("disk is full"),
            "limit {limit}: {stderr}"
        );
        assert_same_cache(&ws, &before, &format!("limit {limit}"));
        assert_no_partial_files(&ws);
        // The earlier snapshot is still usable.
        headstart(&ws).args(["train-head", "--epochs", "1"]).assert().success();
    }
    // With room again the run completes, reusing the batches the failed run saved.
    let done = run_extract(&ws, &data);
    assert_eq!(done["images"], 60);
    assert_eq!(
        done["computed"].as_u64().unwrap() + done["reused"].as_u64().unwrap(),
        60
    );
    assert!(done["computed"].as_u64().unwrap() < 30, "{done}");
}

/// Waits for a line containing `needle` on the child's stderr; returns false on EOF or timeout.
fn stderr_says(child: &mut Child, needle: &str, timeout: Duration) -> bool {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let needle = needle.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains(&needle) {
                let _ = tx.send(());
                break;
            }
        }
    });
    rx.recv_timeout(timeout).is_ok()
}

#[test]
fn a_second_extract_waits_for_the_first_and_nothing_is_corrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path(), 20);
    let clean_ws = tmp.path().join("clean");
    run_extract(&clean_ws, &data);
    let clean = cache_bytes(&clean_ws);
    let args = extract_args(&data);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // Another process holds the lock: extract says so and waits.
    let ws = tmp.path().join("ws");
    let held = WorkspaceLock::acquire(&ws, |_| panic!("nobody else holds it")).unwrap();
    let mut child = process(&ws, &args).spawn().unwrap();
    assert!(
        stderr_says(
            &mut child,
            "waiting for another `headstart extract`",
            Duration::from_secs(60)
        ),
        "extract did not say it waits"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "extract ran without the lock");
    drop(held);
    assert!(child.wait().unwrap().success());
    assert_same_cache(&ws, &clean, "after the repair");

    // Two runs started together on a fresh workspace both succeed, one after the other.
    let ws = tmp.path().join("together");
    let children: Vec<Child> = (0..2).map(|_| process(&ws, &args).spawn().unwrap()).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_same_cache(&ws, &clean, "after the repair");
}

#[test]
fn train_head_during_an_extract_reads_a_consistent_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path(), 20);
    let ws = tmp.path().join("ws");
    let first = run_extract(&ws, &data);
    let train_count = |s: &serde_json::Value| -> u64 {
        s["counts"]
            .as_object()
            .unwrap()
            .values()
            .map(|c| c[0].as_u64().unwrap())
            .sum()
    };
    // Change the data: new images, some gone, so the store and the manifest both change.
    for i in 20..60 {
        common::class_image(0, i, 40)
            .save(data.join(format!("class0/new{i:03}.png")))
            .unwrap();
    }
    for i in 0..5 {
        let _ = std::fs::remove_file(data.join(format!("class2/img{i:03}.png")));
    }
    let args = extract_args(&data);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let mut writer = process(&ws, &args).spawn().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut reads = 0;
    loop {
        let running = writer.try_wait().unwrap().is_none();
        let out = json(
            &headstart(&ws)
                .args(["--json", "train-head", "--epochs", "1", "--hidden", "8"])
                .assert()
                .success()
                .get_output()
                .stdout,
        );
        seen.insert(out["n_train"].as_u64().unwrap());
        reads += 1;
        if !running {
            break;
        }
    }
    assert!(writer.wait().unwrap().success());
    let last = run_extract(&ws, &data);
    let allowed = [train_count(&first), train_count(&last)];
    assert!(
        seen.iter().all(|n| allowed.contains(n)),
        "saw {seen:?}, allowed {allowed:?}"
    );
    eprintln!("{reads} train-head runs during the extract saw train sizes {seen:?}");
}

#[test]
fn divergence_and_nan_vectors_are_reported_not_saved() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path(), 10);
    let ws = tmp.path().join("ws");
    run_extract(&ws, &data);
    headstart(&ws)
        .args(["train-head", "--lr", "1e30", "--epochs", "3"])
        .assert()
        .code(1)
        .stderr(contains("diverged").and(contains("--lr")));
    assert!(!ws.join("head.safetensors").exists());

    // The tiny_nan model gives NaN for images darker than mid-grey: those are skipped, by name.
    let nan_data = tmp.path().join("nan");
    for (c, bright) in [(0, [250u8, 200, 180]), (1, [180, 250, 200])] {
        let dir = nan_data.join(format!("c{c}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..6 {
            let shade = 10 * i as u8;
            image::RgbImage::from_pixel(32, 32, image::Rgb(bright.map(|v| v - shade)))
                .save(dir.join(format!("bright{i}.png")))
                .unwrap();
        }
        image::RgbImage::from_pixel(32, 32, image::Rgb([20, 20, 20]))
            .save(dir.join("dark.png"))
            .unwrap();
    }
    let nan_ws = tmp.path().join("nan_ws");
    let out = json(
        &headstart(&nan_ws)
            .args(["--json", "extract", "--model", &tiny_model("tiny_nan"), "--data"])
            .arg(&nan_data)
            .assert()
            .code(3)
            .get_output()
            .stdout,
    );
    let skipped = out["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2);
    for s in skipped {
        assert!(s["path"].as_str().unwrap().ends_with("dark.png"));
        assert!(s["reason"].as_str().unwrap().contains("NaN"));
    }
    assert_eq!(out["images"], 12);
}
