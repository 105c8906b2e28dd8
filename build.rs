//! Refuses a `jpeg-simd` build that would quietly have no SIMD: mozjpeg-sys builds its plain C
//! code when nasm is missing, and cargo does not show a registry dependency's warnings, so the
//! build would succeed, slower than asked, without a word.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let simd = std::env::var_os("CARGO_FEATURE_JPEG_SIMD").is_some();
    // On other architectures libjpeg-turbo's SIMD code is assembled by the C compiler.
    let x86 = matches!(std::env::var("CARGO_CFG_TARGET_ARCH").as_deref(), Ok("x86" | "x86_64"));
    let nasm = || {
        std::process::Command::new("nasm")
            .arg("-v")
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if simd && x86 && !nasm() {
        panic!("the jpeg-simd feature needs nasm on the PATH (apt-get install nasm, brew install nasm); build without the feature to use the plain C decoder");
    }
}
