//! `--device`: a provider the loaded library lacks is a clear error, `auto` falls back to the
//! CPU and says why, and OpenVINO (a real second provider that runs on this CPU, its build
//! provisioned from PyPI like the CPU one) gives the CPU's embeddings.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{extract, headstart, make_dataset, tiny_model};
use headstart::cache::{load_snapshot, ContentKey};
use predicates::str::contains;

/// The CPU build of ONNX Runtime, as every other test loads it.
fn cpu_library() -> String {
    headstart::runtime::init(None).unwrap().library.display().to_string()
}

/// Every cached vector of a workspace, by image content.
fn vectors(ws: &Path) -> BTreeMap<ContentKey, Vec<f32>> {
    let (_, store) = load_snapshot(ws).unwrap();
    store.file_vectors().map(|(k, v)| (*k, v.to_vec())).collect()
}

#[test]
fn a_provider_the_library_lacks_is_named_with_the_build_that_has_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 2, 4);
    let lib = cpu_library();
    for (device, provider) in [
        ("cuda", "CUDAExecutionProvider"),
        ("tensorrt", "TensorrtExecutionProvider"),
        ("openvino", "OpenVINOExecutionProvider"),
    ] {
        headstart(&tmp.path().join(device))
            .args(["--device", device, "--ort-lib", &lib, "extract", "--model"])
            .arg(tiny_model("tiny_nchw"))
            .arg("--data")
            .arg(&data)
            .assert()
            .failure()
            .stderr(contains(format!(
                "--device {device}: the ONNX Runtime library {lib} has no {provider}"
            )))
            .stderr(contains("it has CPUExecutionProvider"))
            .stderr(contains(if device == "openvino" {
                "`onnxruntime-openvino` build"
            } else {
                "`onnxruntime-gpu` build"
            }));
    }
    headstart(&tmp.path().join("x"))
        .args(["--device", "gpu", "extract", "--data"])
        .arg(&data)
        .assert()
        .failure()
        .stderr(contains("[possible values: cpu, cuda, tensorrt, openvino, auto]"));
}

#[test]
fn auto_runs_on_the_cpu_and_says_why_when_cuda_cannot_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 2, 4);
    std::fs::remove_file(data.join("class1/broken.jpg")).unwrap();
    let (plain, auto) = (tmp.path().join("plain"), tmp.path().join("auto"));
    extract(&plain, &data, &[]);
    // Without a driver, or with the CPU build (no CUDA provider) where there is one, auto falls
    // back: on any machine.
    let summary = extract(&auto, &data, &["--device", "auto", "--ort-lib", &cpu_library()]);
    assert_eq!(summary["device"]["provider"], "CPUExecutionProvider");
    let why = summary["device"]["fallback"].as_str().unwrap();
    let expected = match Path::new("/proc/driver/nvidia/version").exists() {
        true => "has no CUDAExecutionProvider",
        false => "no NVIDIA driver is loaded",
    };
    assert!(why.contains(expected), "{why}");
    assert_eq!(extract(&plain, &data, &[])["device"].get("fallback"), None);
    assert_eq!(vectors(&auto), vectors(&plain));
}

#[test]
fn openvino_gives_the_cpu_embeddings() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_dataset(&data, 3, 6);
    std::fs::remove_file(data.join("class1/broken.jpg")).unwrap();
    let (cpu, openvino) = (tmp.path().join("cpu"), tmp.path().join("openvino"));
    extract(&cpu, &data, &[]);
    // No --ort-lib: headstart provisions the OpenVINO build itself, once per machine.
    let summary = extract(&openvino, &data, &["--device", "openvino"]);
    assert_eq!(summary["device"]["provider"], "OpenVINOExecutionProvider");
    let (a, b) = (vectors(&cpu), vectors(&openvino));
    assert_eq!(a.len(), 18);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (key, x) in &a {
        let y = &b[key];
        let dot: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
        let norm = |v: &[f32]| v.iter().map(|p| p * p).sum::<f32>().sqrt();
        let cosine = dot / (norm(x) * norm(y));
        assert!(cosine >= 0.999, "{key:?}: cosine {cosine}");
    }
}
