//! An installed binary: copied away from the build tree, run from an empty folder, it must find
//! its default backbone and demo images inside itself.

mod common;

use std::path::Path;

use common::{json, make_dataset, repo};

#[test]
fn a_copied_binary_runs_the_demo_from_an_empty_folder() {
    // The library the other tests use (provisioned once in the default home), so that the fresh
    // home below is not provisioned with pip again.
    let ort = headstart::runtime::init(None).unwrap().library;
    let tmp = tempfile::tempdir().unwrap();
    let (bin, home, cwd) = (tmp.path().join("bin"), tmp.path().join("home"), tmp.path().join("cwd"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    let built = assert_cmd::cargo::cargo_bin("headstart");
    let exe = bin.join(built.file_name().unwrap());
    std::fs::copy(&built, &exe).unwrap();

    let demo = || {
        let out = assert_cmd::Command::new(&exe)
            .current_dir(&cwd)
            .env("HEADSTART_HOME", &home)
            .env("ORT_DYLIB_PATH", &ort)
            .env_remove("HEADSTART_MODELS")
            .env_remove("HEADSTART_WORKSPACE")
            .args(["--quiet", "--json", "demo", "--epochs", "1"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        json(&out.stdout)
    };
    let first = demo();
    let models = home.join("models");
    let data = home.join("demo/cifar10");
    assert_eq!(first["extract"]["images"], 600);
    assert_eq!(first["extract"]["data"], data.display().to_string());
    assert_eq!(
        first["extract"]["backbone"]["model_path"],
        models.join("efficientnet_lite0.onnx").display().to_string()
    );
    for file in [
        "efficientnet_lite0.json",
        "efficientnet_lite0_int8.onnx",
        "efficientnet_lite0_int8.json",
        "LICENSE-efficientnet-lite.txt",
    ] {
        assert_same(&models.join(file), &repo().join("models").join(file));
    }
    assert_same(&home.join("demo/README.md"), &repo().join("demo/README.md"));
    assert!(data.join("train/cat/0000.jpg").is_file());
    assert!(cwd.join(".headstart/head.safetensors").is_file());
    assert!(!home.join("onnxruntime").exists(), "ORT_DYLIB_PATH was not used");

    // A damaged unpacked backbone is rewritten from the bundled bytes, not reported as changed.
    let model = models.join("efficientnet_lite0.onnx");
    let mut damaged = std::fs::read(&model).unwrap();
    damaged.truncate(damaged.len() / 2);
    std::fs::write(&model, damaged).unwrap();
    let second = demo();
    assert_same(&model, &repo().join("models/efficientnet_lite0.onnx"));
    assert_eq!(second["extract"]["reused"], 600);
}

#[test]
fn a_name_is_looked_up_in_headstart_models_then_the_current_folder_then_the_bundle() {
    let ort = headstart::runtime::init(None).unwrap().library;
    let tmp = tempfile::tempdir().unwrap();
    let (custom, cwd, data) = (
        tmp.path().join("custom"),
        tmp.path().join("cwd"),
        tmp.path().join("data"),
    );
    make_dataset(&data, 2, 4);
    for dir in [&custom, &cwd.join("models")] {
        std::fs::create_dir_all(dir).unwrap();
        let tiny = repo().join("tests/models/tiny_nchw");
        std::fs::copy(tiny.with_extension("onnx"), dir.join("tiny_nchw.onnx")).unwrap();
        std::fs::copy(tiny.with_extension("json"), dir.join("tiny.json")).unwrap();
    }
    let extract = |models: Option<&Path>, name: &str| {
        let mut cmd = assert_cmd::Command::cargo_bin("headstart").unwrap();
        cmd.current_dir(&cwd)
            .env("HEADSTART_HOME", tmp.path().join("home"))
            .env("ORT_DYLIB_PATH", &ort)
            .env_remove("HEADSTART_MODELS")
            .args([
                "--quiet",
                "--json",
                "--workspace",
                "ws",
                "extract",
                "--model",
                name,
                "--data",
            ])
            .arg(&data);
        if let Some(models) = models {
            cmd.env("HEADSTART_MODELS", models);
        }
        cmd.output().unwrap()
    };
    let model_path = |out: std::process::Output| json(&out.stdout)["backbone"]["model_path"].clone();
    assert_eq!(
        model_path(extract(Some(&custom), "tiny")),
        custom.join("tiny_nchw.onnx").display().to_string()
    );
    assert_eq!(
        model_path(extract(None, "tiny")),
        cwd.join("models/tiny_nchw.onnx").display().to_string()
    );
    let unknown = extract(Some(&custom), "nope");
    assert_eq!(unknown.status.code(), Some(1));
    let err = String::from_utf8_lossy(&unknown.stderr);
    for expected in [
        "no backbone named `nope`".to_string(),
        format!("{}, {}", custom.display(), cwd.join("models").display()),
        "known: efficientnet_lite0, efficientnet_lite0_int8, efficientnet_lite1, efficientnet_lite2, tiny".to_string(),
        "`headstart models` lists them".to_string(),
    ] {
        assert!(err.contains(&expected), "{expected} not in {err}");
    }
    // Nothing was unpacked: every name was found, or refused, before the bundle was needed.
    assert!(!tmp.path().join("home").exists());
}

fn assert_same(unpacked: &Path, original: &Path) {
    let (a, b) = (std::fs::read(unpacked), std::fs::read(original).unwrap());
    assert!(
        a.is_ok_and(|a| a == b),
        "{} differs from {}",
        unpacked.display(),
        original.display()
    );
}
