//! The PyPI wheels ONNX Runtime is provisioned from: the CPU build every command uses by
//! default, and the builds with the execution providers `--device` asks for.

/// The ONNX Runtime release headstart is built and tested against.
pub const ORT_VERSION: &str = "1.32.0";

/// One platform's wheel of a [`Package`] on PyPI and the shared library inside it.
#[derive(Debug, PartialEq, Eq)]
pub struct Wheel {
    /// `std::env::consts::OS` of the platforms it serves.
    pub os: &'static str,
    /// The architectures, as `std::env::consts::ARCH`.
    pub arch: &'static str,
    /// pip's `--platform` tag.
    pub platform: &'static str,
    /// The wheel's file name.
    pub file: &'static str,
    /// SHA-256 of the wheel, hex; a downloaded wheel must match it.
    pub sha256: &'static str,
    /// The library's path inside the wheel; its file name is the one headstart keeps.
    pub library: &'static str,
    /// Whether the other libraries in the library's folder are unpacked beside it: the
    /// execution providers' own libraries (and OpenVINO's), which ONNX Runtime loads from the
    /// folder it was loaded from.
    pub with_providers: bool,
}

impl Wheel {
    /// The library's file name, as unpacked.
    pub fn library_name(&self) -> &'static str {
        self.library.rsplit('/').next().unwrap_or(self.library)
    }
}

/// A PyPI package that ships ONNX Runtime, pinned to one version, with its wheels.
#[derive(Debug, PartialEq, Eq)]
pub struct Package {
    /// The package's name on PyPI.
    pub name: &'static str,
    /// The pinned version.
    pub version: &'static str,
    /// The wheels headstart can provision, one per platform.
    pub wheels: &'static [Wheel],
}

impl Package {
    /// The wheel for an operating system and architecture (`std::env::consts::OS`, `ARCH`).
    pub fn wheel_for(&self, os: &str, arch: &str) -> Option<&'static Wheel> {
        self.wheels.iter().find(|w| w.os == os && w.arch == arch)
    }
}

/// The CPU build, from `pip download` and `unzip -l` of each wheel. PyPI has no 1.32.0 wheel
/// for macOS on x86_64 (the last is 1.23.2), so Intel Macs need `--ort-lib`.
pub const CPU: Package = Package {
    name: "onnxruntime",
    version: ORT_VERSION,
    wheels: &[
        Wheel {
            os: "linux",
            arch: "x86_64",
            platform: "manylinux_2_28_x86_64",
            file: "onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl",
            sha256: "5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d",
            library: "onnxruntime/capi/libonnxruntime.so.1.32.0",
            with_providers: false,
        },
        Wheel {
            os: "linux",
            arch: "aarch64",
            platform: "manylinux_2_28_aarch64",
            file: "onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_aarch64.whl",
            sha256: "2303372a85299b6757b0e11e1cbf13e410ddf7e10c37f4b37e99d1c90e7daf7c",
            library: "onnxruntime/capi/libonnxruntime.so.1.32.0",
            with_providers: false,
        },
        Wheel {
            os: "macos",
            arch: "aarch64",
            platform: "macosx_14_0_arm64",
            file: "onnxruntime-1.32.0-cp311-cp311-macosx_14_0_arm64.whl",
            sha256: "366b9e53d07812cc5c92822cecf7563b76a8a0f32ba3bb8dd232a206ac3bcb6c",
            library: "onnxruntime/capi/libonnxruntime.1.32.0.dylib",
            with_providers: false,
        },
        Wheel {
            os: "windows",
            arch: "x86_64",
            platform: "win_amd64",
            file: "onnxruntime-1.32.0-cp311-cp311-win_amd64.whl",
            sha256: "d7e0c45cc5f456ad7805e6dd256a7662736cda9c2fd17becae194eb3c2f6df72",
            library: "onnxruntime/capi/onnxruntime.dll",
            with_providers: false,
        },
    ],
};

/// The CUDA and TensorRT build. Its newest release is behind the CPU one; the `ort` API level
/// headstart uses (22) is in both. CUDA 13, cuDNN 9 and TensorRT themselves are not in the
/// wheel: they come from the system or from NVIDIA's own PyPI wheels (see `benches/gpu.sh`).
pub const GPU: Package = Package {
    name: "onnxruntime-gpu",
    version: "1.31.1",
    wheels: &[Wheel {
        os: "linux",
        arch: "x86_64",
        platform: "manylinux_2_28_x86_64",
        file: "onnxruntime_gpu-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
        sha256: "e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6",
        library: "onnxruntime/capi/libonnxruntime.so.1.31.1",
        with_providers: true,
    }],
};

/// The OpenVINO build; OpenVINO's own libraries and CPU plugin are in the wheel.
pub const OPENVINO: Package = Package {
    name: "onnxruntime-openvino",
    version: "1.24.1",
    wheels: &[Wheel {
        os: "linux",
        arch: "x86_64",
        platform: "manylinux_2_28_x86_64",
        file: "onnxruntime_openvino-1.24.1-cp311-cp311-manylinux_2_28_x86_64.whl",
        sha256: "3007c803634cc69c6d52af1dea7ce729d9bb62b9a11070fd2f959119199007a8",
        library: "onnxruntime/capi/libonnxruntime.so.1.24.1",
        with_providers: true,
    }],
};
