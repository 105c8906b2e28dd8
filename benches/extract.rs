//! Extract throughput: the whole pipeline (read, hash, decode, resize, network, cache writes)
//! against what it cannot beat, measured in one process:
//!
//! - the network alone on already decoded tensors (same backbone, batch size and threads);
//! - the CPU time of decoding, and of cropping, resizing and normalising, the same images on one
//!   core.
//!
//! With `cores` cores, no idle core and no work done twice means: end to end <= network alone +
//! decode CPU time / cores. The ratio of the two is printed.
//!
//! cargo bench --bench extract -- DATA_DIR [--model M] [--int8] [--batch B] [--sample N]
//!
//! Prints a readable summary and one `BENCH_JSON {...}` line for benches/run.py.

use std::time::Instant;

use headstart::backbone::{Backbone, BackboneChoice};
use headstart::dataset::{Dataset, Labels, SplitPercentages};
use headstart::embed::Silent;
use headstart::extract::{extract, ExtractOptions};
use headstart::preprocess::{decode_at_least, normalise, DEFAULT_MAX_PIXELS};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

struct Args {
    data: std::path::PathBuf,
    model: Option<String>,
    int8: bool,
    batch: usize,
    /// Images for the network-alone and decode measurements.
    sample: usize,
}

fn args() -> Args {
    let usage = "usage: extract DATA_DIR [--model M] [--int8] [--batch B] [--sample N]";
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut args = Args {
        data: it.next().expect(usage).into(),
        model: None,
        int8: false,
        batch: 32,
        sample: 512,
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--model" => args.model = Some(it.next().expect(usage)),
            "--int8" => args.int8 = true,
            "--batch" => args.batch = it.next().and_then(|b| b.parse().ok()).expect(usage),
            "--sample" => args.sample = it.next().and_then(|b| b.parse().ok()).expect(usage),
            _ => panic!("{usage}"),
        }
    }
    args
}

fn main() {
    let args = args();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workspace = tempfile::tempdir().unwrap();
    let choice = BackboneChoice {
        model: args.model.clone(),
        int8: args.int8,
        ..Default::default()
    };
    let opts = ExtractOptions {
        backbone: choice.clone(),
        batch_size: args.batch,
        ..ExtractOptions::new(&args.data, workspace.path())
    };

    let started = Instant::now();
    let first = extract(&opts, &Silent).expect("extract");
    let e2e = started.elapsed().as_secs_f64();
    let peak = peak_rss_mib();
    let started = Instant::now();
    let again = extract(&opts, &Silent).expect("re-run");
    let rerun = started.elapsed().as_secs_f64();
    assert_eq!(again.computed, 0);

    // Decoding (as `preprocess` does it: big JPEGs reduced in the DCT domain), then crop,
    // resize and normalise, timed apart on one core; the tensors are kept for the network-alone
    // run below.
    let runtime = headstart::runtime::init(None).unwrap();
    let mut backbone = Backbone::open(&runtime, choice.resolve().unwrap(), cores).unwrap();
    let spec = backbone.preprocessing;
    let dataset = Dataset::scan(&args.data, SplitPercentages::default(), &Labels::default()).unwrap();
    let n = dataset.samples.len().min(args.sample);
    let files: Vec<Vec<u8>> = dataset.samples[..n]
        .iter()
        .map(|s| std::fs::read(dataset.root.join(&s.path)).unwrap())
        .collect();
    let mut pixels = vec![0f32; n * spec.len()];
    // Touched before timing, so that the page faults of the fresh allocation are not timed.
    pixels.fill(1.0);
    let mut resizer = fast_image_resize::Resizer::new();
    let (mut decode_s, mut resize_s) = (0.0, 0.0);
    for (out, bytes) in pixels.chunks_exact_mut(spec.len()).zip(&files) {
        let started = Instant::now();
        let Ok(decoded) = decode_at_least(bytes, DEFAULT_MAX_PIXELS, spec.decode_side()) else {
            out.fill(0.0);
            continue;
        };
        decode_s += started.elapsed().as_secs_f64();
        let started = Instant::now();
        normalise(&decoded.crop_resize(&spec, &mut resizer).unwrap(), &spec, out);
        resize_s += started.elapsed().as_secs_f64();
    }
    let (decode_ms, resize_ms) = (decode_s * 1e3 / n as f64, resize_s * 1e3 / n as f64);

    // The network alone: the same images, decoded beforehand, same batch size.
    backbone
        .embed(&pixels[..spec.len() * args.batch.min(n)], args.batch.min(n))
        .unwrap(); // warm-up
    let started = Instant::now();
    for chunk in pixels.chunks(args.batch * spec.len()) {
        backbone.embed(chunk, chunk.len() / spec.len()).unwrap();
    }
    let network = n as f64 / started.elapsed().as_secs_f64();

    let images = first.computed as f64;
    let bound = images / network + images * (decode_ms + resize_ms) / 1e3 / cores as f64;
    println!(
        "data {} ({} images), backbone {}, batch {}, {cores} cores",
        args.data.display(),
        first.images,
        first.backbone.name,
        args.batch
    );
    println!(
        "end to end : {:.1} images/s ({e2e:.1} s for {} images)",
        images / e2e,
        first.computed
    );
    println!("network    : {network:.1} images/s on {n} pre-decoded images");
    println!("decode     : {decode_ms:.2} ms per image on one core, then {resize_ms:.2} ms crop, resize and normalise");
    println!(
        "bound      : {bound:.1} s = network alone + decode / cores; end to end is {:.2}x that",
        e2e / bound
    );
    println!("cache rerun: {rerun:.2} s");
    println!("peak RSS   : {peak:.0} MiB after the end-to-end run");
    let json = serde_json::json!({
        "data": args.data,
        "backbone": first.backbone.name,
        "images": first.computed,
        "skipped": first.images.saturating_sub(first.computed),
        "cores": cores,
        "batch": args.batch,
        "seconds": e2e,
        "images_per_second": images / e2e,
        "network_images_per_second": network,
        "decode_ms": decode_ms,
        "resize_ms": resize_ms,
        "bound_seconds": bound,
        "rerun_seconds": rerun,
        "peak_rss_mib": peak,
    });
    println!("BENCH_JSON {json}");
}
