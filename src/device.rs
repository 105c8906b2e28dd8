//! Where the backbone runs: ONNX Runtime's CPU provider, or an execution provider for a GPU or
//! for OpenVINO, chosen with `--device`.
//!
//! Each device needs an ONNX Runtime build that carries its provider ([`Device::package`]);
//! [`crate::runtime`] provisions that build's wheel as it does the CPU one. A device that cannot
//! be used is an error that says why and what to do, except under `auto`, which falls back to
//! the CPU and says so: a run never lands on the CPU unless the user allowed it.

use ort::ep::{ExecutionProvider, ExecutionProviderDispatch, OpenVINO, TensorRT, CPU, CUDA};
use ort::session::builder::SessionBuilder;
use serde::{Deserialize, Serialize};

use crate::runtime::{self, Package};

/// Where sessions run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// ONNX Runtime's own CPU kernels.
    #[default]
    Cpu,
    /// An NVIDIA GPU through the CUDA provider (the `onnxruntime-gpu` build).
    Cuda,
    /// An NVIDIA GPU through TensorRT, with CUDA for what TensorRT does not take.
    Tensorrt,
    /// Intel's OpenVINO on the CPU (the `onnxruntime-openvino` build).
    Openvino,
    /// CUDA when an NVIDIA driver is installed and the provider starts; otherwise the CPU, with
    /// a note saying why.
    Auto,
}

/// Why a session could not be placed on the device asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The loaded library was built without the device's provider.
    #[error(
        "--device {device}: the ONNX Runtime library {library} has no {provider} (it has {available}). \
         Leave out --ort-lib and ORT_DYLIB_PATH to let headstart fetch the `{package}` build, or \
         point them at that build's library"
    )]
    NotInLibrary {
        /// The device asked for.
        device: &'static str,
        /// The library loaded.
        library: String,
        /// The provider it lacks.
        provider: &'static str,
        /// The providers it has.
        available: String,
        /// The PyPI package whose build has it.
        package: &'static str,
    },
    /// The provider is in the library but could not start: no GPU, no driver, or a library it
    /// loads is missing.
    #[error("--device {device}: {provider} could not start: {message}\n{fix}")]
    Unavailable {
        /// The device asked for.
        device: &'static str,
        /// The provider.
        provider: &'static str,
        /// ONNX Runtime's message.
        message: String,
        /// What to do.
        fix: &'static str,
    },
}

/// Where a session was placed, in words for summaries: the provider, and under `auto` why the
/// CPU was used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    /// The execution provider that runs the network (`CPUExecutionProvider`, ...).
    pub provider: &'static str,
    /// Why `auto` fell back to the CPU; `None` when the device asked for runs the network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

const GPU_FIX: &str = "Check `nvidia-smi`. This build's CUDA provider needs the CUDA 13 and cuDNN 9 libraries \
                       on the loader's path when headstart starts: from the system, or from the PyPI wheels \
                       that `pip install 'onnxruntime-gpu[cuda,cudnn]'` installs, each one's nvidia/*/lib \
                       folder added to LD_LIBRARY_PATH. `--device auto` runs on the CPU when this fails.";

impl Device {
    /// The name `--device` takes.
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::Tensorrt => "tensorrt",
            Device::Openvino => "openvino",
            Device::Auto => "auto",
        }
    }

    /// The ONNX Runtime build that carries this device's provider. `auto` takes the GPU build
    /// only where an NVIDIA driver is installed, so that a machine without one never fetches it.
    pub fn package(self) -> &'static Package {
        match self {
            Device::Cpu => &runtime::CPU,
            Device::Cuda | Device::Tensorrt => &runtime::GPU,
            Device::Openvino => &runtime::OPENVINO,
            Device::Auto if nvidia_driver() => &runtime::GPU,
            Device::Auto => &runtime::CPU,
        }
    }

    /// The providers to register, first preferred, and what fails if one cannot start.
    fn providers(self) -> Vec<(&'static str, ExecutionProviderDispatch)> {
        let cuda = || (CUDA::NAME, CUDA::default().build().error_on_failure());
        match self {
            Device::Cpu => Vec::new(),
            Device::Cuda | Device::Auto => vec![cuda()],
            // TensorRT takes the subgraphs it supports; CUDA the rest, rather than the CPU.
            Device::Tensorrt => vec![(TensorRT::NAME, TensorRT::default().build().error_on_failure()), cuda()],
            Device::Openvino => vec![(
                OpenVINO::NAME,
                OpenVINO::default().with_device_type("CPU").build().error_on_failure(),
            )],
        }
    }
}

impl Placement {
    /// Whether the network runs on a GPU provider whose batch size [`tune_batch`] picks: CUDA.
    /// TensorRT builds an engine for every new input shape (minutes for a large network), so
    /// it keeps the size it is given.
    pub fn tunes_batch(&self) -> bool {
        self.provider == CUDA::NAME
    }
}

/// The batch sizes [`tune_batch`] tries, smallest first.
pub const TUNED_BATCHES: [usize; 6] = [16, 32, 64, 128, 256, 512];

/// How much more throughput a larger batch must bring to be taken: less is noise, and a larger
/// batch holds more memory and delays the first results.
pub const TUNE_GAIN: f64 = 1.05;

/// The batch size to run at: going up `candidates`, the last one that brought at least
/// [`TUNE_GAIN`] times the best throughput so far. It stops at the first size that fails (out of
/// device memory) or gains less. `measure(b)` is the images per second at batch `b`, `None` if
/// that batch failed; `None` overall if the smallest failed too.
pub fn tune_batch(candidates: &[usize], mut measure: impl FnMut(usize) -> Option<f64>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for &b in candidates {
        let Some(rate) = measure(b) else { break };
        match best {
            Some((_, top)) if rate < top * TUNE_GAIN => break,
            _ => best = Some((b, rate)),
        }
    }
    best.map(|(b, _)| b)
}

/// Whether an NVIDIA kernel driver is loaded (Linux): the first thing a CUDA provider needs.
pub fn nvidia_driver() -> bool {
    std::path::Path::new("/proc/driver/nvidia/version").exists()
}

/// Whether the loaded library has a provider (`ExecutionProvider::is_available`).
type Check = fn() -> ort::Result<bool>;

/// The providers headstart knows, with the check of whether the loaded library has each.
const KNOWN: [(&str, Check); 4] = [
    (CPU::NAME, CPU::is_available),
    (CUDA::NAME, CUDA::is_available),
    (TensorRT::NAME, TensorRT::is_available),
    (OpenVINO::NAME, OpenVINO::is_available),
];

/// Which of the providers headstart knows the loaded library has, in words.
fn available() -> String {
    let has: Vec<&str> = KNOWN
        .iter()
        .filter(|(_, check)| check().unwrap_or(false))
        .map(|(name, _)| *name)
        .collect();
    if has.is_empty() {
        "none that headstart knows".into()
    } else {
        has.join(", ")
    }
}

/// Whether the loaded library has the provider `name`.
fn is_available(name: &str) -> bool {
    KNOWN
        .iter()
        .find(|(known, _)| *known == name)
        .is_some_and(|(_, check)| check().unwrap_or(false))
}

/// Registers `device`'s providers on `builder`, which comes back either way: on an error it is
/// as it was, ready for the CPU (what `auto` does then). `library` names the loaded library in
/// errors.
pub fn place(
    builder: SessionBuilder,
    device: Device,
    library: &std::path::Path,
) -> (SessionBuilder, Result<Placement, DeviceError>) {
    let providers = device.providers();
    let Some((first, _)) = providers.first() else {
        return (builder, Ok(on_cpu(None)));
    };
    if device == Device::Auto && !nvidia_driver() {
        let why = "no NVIDIA driver is loaded (/proc/driver/nvidia/version does not exist)";
        return (builder, Err(unavailable(device, first, why.into())));
    }
    let first = *first;
    let mut missing = providers.iter().filter(|(name, _)| !is_available(name));
    if let Some((provider, _)) = missing.next() {
        let error = DeviceError::NotInLibrary {
            device: device.name(),
            library: library.display().to_string(),
            provider,
            available: available(),
            package: device.package().name,
        };
        return (builder, Err(error));
    }
    let dispatch: Vec<ExecutionProviderDispatch> = providers.into_iter().map(|(_, d)| d).collect();
    match builder.with_execution_providers(dispatch) {
        Ok(builder) => (
            builder,
            Ok(Placement {
                provider: first,
                fallback: None,
            }),
        ),
        Err(e) => {
            let error = unavailable(device, first, e.to_string());
            (e.recover(), Err(error))
        }
    }
}

/// The error for `provider`, registered for `device`, failing with ONNX Runtime's `message`:
/// when it is registered or when the first session starts.
pub fn unavailable(device: Device, provider: &'static str, message: String) -> DeviceError {
    DeviceError::Unavailable {
        device: device.name(),
        provider,
        message,
        fix: match device {
            Device::Openvino => "The OpenVINO build's libraries must stay together in one folder.",
            _ => GPU_FIX,
        },
    }
}

/// The placement of a session on ONNX Runtime's CPU provider, with `auto`'s reason if any.
pub fn on_cpu(fallback: Option<String>) -> Placement {
    Placement {
        provider: CPU::NAME,
        fallback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_grows_while_it_pays_and_stops_at_a_failure() {
        let rates = |table: &'static [(usize, Option<f64>)]| {
            move |b: usize| table.iter().find(|(size, _)| *size == b).and_then(|(_, r)| *r)
        };
        // Throughput rises, then flattens: 64 is the last size that gained 5%.
        let flat = rates(&[
            (16, Some(100.0)),
            (32, Some(180.0)),
            (64, Some(250.0)),
            (128, Some(255.0)),
        ]);
        assert_eq!(tune_batch(&TUNED_BATCHES, flat), Some(64));
        // 128 runs out of memory: the last size that ran.
        let oom = rates(&[(16, Some(100.0)), (32, Some(150.0)), (64, Some(200.0)), (128, None)]);
        assert_eq!(tune_batch(&TUNED_BATCHES, oom), Some(64));
        // Still gaining at the largest candidate.
        let steep = |b: usize| Some(b as f64);
        assert_eq!(tune_batch(&TUNED_BATCHES, steep), Some(512));
        assert_eq!(tune_batch(&[16, 32], steep), Some(32));
        // Slower when larger: the smallest stays.
        assert_eq!(tune_batch(&TUNED_BATCHES, |b| Some(1000.0 / b as f64)), Some(16));
        assert_eq!(tune_batch(&TUNED_BATCHES, |_| None), None);
        // Measured in order, and not past the first size that gains too little.
        let mut asked = Vec::new();
        tune_batch(&TUNED_BATCHES, |b| {
            asked.push(b);
            Some(if b <= 32 { b as f64 } else { 32.0 })
        });
        assert_eq!(asked, [16, 32, 64]);
    }

    #[test]
    fn each_device_asks_for_the_build_that_has_its_provider() {
        assert_eq!(Device::Cpu.package().name, "onnxruntime");
        assert_eq!(Device::Cuda.package().name, "onnxruntime-gpu");
        assert_eq!(Device::Tensorrt.package().name, "onnxruntime-gpu");
        assert_eq!(Device::Openvino.package().name, "onnxruntime-openvino");
        let auto = if nvidia_driver() {
            "onnxruntime-gpu"
        } else {
            "onnxruntime"
        };
        assert_eq!(Device::Auto.package().name, auto);
        let names: Vec<(&str, usize)> = [
            Device::Cpu,
            Device::Cuda,
            Device::Tensorrt,
            Device::Openvino,
            Device::Auto,
        ]
        .iter()
        .map(|d| (d.name(), d.providers().len()))
        .collect();
        assert_eq!(
            names,
            [("cpu", 0), ("cuda", 1), ("tensorrt", 2), ("openvino", 1), ("auto", 1)]
        );
    }
}
