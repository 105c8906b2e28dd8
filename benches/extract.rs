//! Extract throughput: the whole pipeline (read, decode, resize, network, cache writes) against
//! the network alone on already decoded tensors, same backbone and batch size, in one run.
//!
//! cargo bench --bench extract -- DATA_DIR [MODEL] [BATCH]
//!
//! Prints images/s for both, the cache re-run time and the process's peak memory after the
//! end-to-end run (before the network-only part allocates its tensors).

use std::time::Instant;

use headstart::backbone::{Backbone, BackboneChoice};
use headstart::dataset::{Dataset, SplitPercentages};
use headstart::extract::{extract, ExtractOptions, Silent};
use headstart::preprocess::preprocess;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let data = std::path::PathBuf::from(args.first().expect("usage: extract DATA_DIR [MODEL] [BATCH]"));
    let model = args.get(1).cloned();
    let batch: usize = args.get(2).map_or(32, |b| b.parse().expect("batch size"));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workspace = tempfile::tempdir().unwrap();
    let choice = BackboneChoice {
        model: model.clone(),
        ..Default::default()
    };
    let opts = ExtractOptions {
        data: data.clone(),
        workspace: workspace.path().to_path_buf(),
        backbone: choice.clone(),
        batch_size: batch,
        percentages: SplitPercentages::default(),
        threads,
        ort_lib: None,
        max_pixels: headstart::preprocess::DEFAULT_MAX_PIXELS,
    };

    let started = Instant::now();
    let first = extract(&opts, &Silent).expect("extract");
    let e2e = started.elapsed().as_secs_f64();
    let peak = peak_rss_mib();
    let started = Instant::now();
    let again = extract(&opts, &Silent).expect("re-run");
    let rerun = started.elapsed().as_secs_f64();
    assert_eq!(again.computed, 0);

    // The network alone: the same images, decoded beforehand, same batch size.
    let runtime = headstart::runtime::init(None).unwrap();
    let mut backbone = Backbone::open(&runtime, choice.resolve().unwrap(), threads).unwrap();
    let spec = backbone.preprocessing;
    let dataset = Dataset::scan(&data, SplitPercentages::default()).unwrap();
    let n = dataset.samples.len().min(1024);
    let mut pixels = vec![0f32; n * spec.len()];
    let mut resizer = fast_image_resize::Resizer::new();
    for (out, s) in pixels.chunks_exact_mut(spec.len()).zip(&dataset.samples) {
        let bytes = std::fs::read(dataset.root.join(&s.path)).unwrap();
        if preprocess(
            &bytes,
            &spec,
            headstart::preprocess::DEFAULT_MAX_PIXELS,
            &mut resizer,
            out,
        )
        .is_err()
        {
            out.fill(0.0);
        }
    }
    backbone
        .embed(&pixels[..spec.len() * batch.min(n)], batch.min(n))
        .unwrap(); // warm-up
    let started = Instant::now();
    for chunk in pixels.chunks(batch * spec.len()) {
        backbone.embed(chunk, chunk.len() / spec.len()).unwrap();
    }
    let network = n as f64 / started.elapsed().as_secs_f64();

    println!(
        "data {} ({} images), backbone {}, batch {batch}, {threads} threads",
        data.display(),
        first.images,
        first.backbone.name
    );
    println!(
        "end to end : {:.1} images/s ({:.1} s for {} images, {:.1} images/s in the network phase)",
        first.images as f64 / e2e,
        e2e,
        first.computed,
        first.images_per_second
    );
    println!("network    : {network:.1} images/s on {n} pre-decoded images");
    println!(
        "ratio      : {:.2} (end-to-end network phase / network alone)",
        first.images_per_second / network
    );
    println!("cache rerun: {rerun:.2} s");
    println!("peak RSS   : {peak:.0} MiB after the end-to-end run");
}
