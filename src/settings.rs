//! Settings shared by every command that runs the backbone: how ONNX Runtime is found and run,
//! and how large an image may be. The CLI builds one [`RuntimeOptions`] from its global flags;
//! library users start from [`Default`] and change what they need.

use std::path::PathBuf;

use crate::device::Device;
use crate::preprocess::DEFAULT_MAX_PIXELS;

/// Images per network call when a command is not told otherwise: large enough to keep the
/// runtime's kernels busy, small enough that a batch of decoded images stays in the tens of MB.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// How the backbone runs, for every command that opens one (extract, predict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Threads ONNX Runtime uses inside an operator; at least 1.
    pub threads: usize,
    /// Where ONNX Runtime is, if not found by the usual search (see [`crate::runtime`]).
    pub ort_lib: Option<PathBuf>,
    /// Where the backbone runs ([`crate::device`]).
    pub device: Device,
    /// Images with more pixels are skipped without being decoded (decompression bombs).
    pub max_pixels: u64,
}

impl Default for RuntimeOptions {
    /// Every core, ONNX Runtime found by the usual search, on the CPU, [`DEFAULT_MAX_PIXELS`].
    fn default() -> Self {
        RuntimeOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ort_lib: None,
            device: Device::Cpu,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}
