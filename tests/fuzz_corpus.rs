//! The committed fuzz corpus (fuzz/corpus/<target>/) as regression tests: every input that
//! fuzzing kept, crashes once found among them, must go through its target without a panic.
//! Fuzzing itself is `cargo +nightly fuzz run <target>` in fuzz/ (see RELIABILITY.md).

#[path = "../fuzz/src/lib.rs"]
mod targets;

fn run_corpus(target: &str, body: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{}: the corpus is missing", dir.display());
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        let result = std::panic::catch_unwind(|| body(&bytes));
        assert!(result.is_ok(), "{} panicked", file.display());
    }
}

#[test]
fn cache_file_corpus() {
    run_corpus("cache_file", targets::cache_file);
}

#[test]
fn manifest_corpus() {
    run_corpus("manifest", targets::manifest);
}

#[test]
fn head_file_corpus() {
    run_corpus("head_file", targets::head_file);
}

#[test]
fn baseline_file_corpus() {
    run_corpus("baseline_file", targets::baseline_file);
}

#[test]
fn image_corpus() {
    run_corpus("image", targets::image);
}
