//! An installed binary: copied away from the build tree, run from an empty folder, it must find
//! its default backbone and demo images inside itself.

mod common;

use std::path::Path;

use common::{json, repo};

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
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        json(&out)
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
        "LICENSE-efficientnet-lite0.txt",
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

fn assert_same(unpacked: &Path, original: &Path) {
    let (a, b) = (std::fs::read(unpacked), std::fs::read(original).unwrap());
    assert!(
        a.is_ok_and(|a| a == b),
        "{} differs from {}",
        unpacked.display(),
        original.display()
    );
}
