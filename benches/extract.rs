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
//!                                         [--device D] [--keep WORKSPACE]
//! cargo bench --bench extract -- --compare WORKSPACE_A WORKSPACE_B
//!
//! Prints a readable summary and one `BENCH_JSON {...}` line for benches/run.py and
//! benches/gpu.sh. `--device` runs both measurements on that execution provider; `--keep` leaves
//! the cache in WORKSPACE, and `--compare` then gives the cosine of each image's vectors in two
//! such caches (a device's against the CPU's).

use std::time::Instant;

use headstart::backbone::{Backbone, BackboneChoice};
use headstart::cache::{load_snapshot, ContentKey};
use headstart::dataset::{Dataset, Labels, SplitPercentages};
use headstart::device::Device;
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
    device: Device,
    keep: Option<std::path::PathBuf>,
}

fn args() -> Args {
    let usage = "usage: extract DATA_DIR [--model M] [--int8] [--batch B] [--sample N] [--device D] [--keep WS]";
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut args = Args {
        data: it.next().expect(usage).into(),
        model: None,
        int8: false,
        batch: 32,
        sample: 512,
        device: Device::Cpu,
        keep: None,
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--model" => args.model = Some(it.next().expect(usage)),
            "--int8" => args.int8 = true,
            "--batch" => args.batch = it.next().and_then(|b| b.parse().ok()).expect(usage),
            "--sample" => args.sample = it.next().and_then(|b| b.parse().ok()).expect(usage),
            "--device" => {
                let name = it.next().expect(usage);
                args.device = clap::ValueEnum::from_str(&name, true).expect(usage);
            }
            "--keep" => args.keep = Some(it.next().expect(usage).into()),
            _ => panic!("{usage}"),
        }
    }
    args
}

/// Every image's vector in a workspace's cache, by content.
fn vectors(ws: &std::path::Path) -> std::collections::BTreeMap<ContentKey, Vec<f32>> {
    let (_, store) = load_snapshot(ws).unwrap();
    store.file_vectors().map(|(k, v)| (*k, v.to_vec())).collect()
}

/// `--compare A B`: the cosine of each image's two vectors, as its minimum, 1st percentile and
/// median, and one `BENCH_JSON` line.
fn compare(a: &std::path::Path, b: &std::path::Path) {
    let (va, vb) = (vectors(a), vectors(b));
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let mut cosines: Vec<f64> = va
        .iter()
        .filter_map(|(key, x)| {
            let y = vb.get(key)?;
            let dot: f64 = x.iter().zip(y).map(|(p, q)| *p as f64 * *q as f64).sum();
            Some(dot / (norm(x) * norm(y)))
        })
        .collect();
    cosines.sort_by(f64::total_cmp);
    assert!(!cosines.is_empty(), "the two workspaces share no image");
    let at = |q: f64| cosines[((cosines.len() - 1) as f64 * q).round() as usize];
    println!(
        "{} images in both: cosine min {:.6}, 1st percentile {:.6}, median {:.6}",
        cosines.len(),
        cosines[0],
        at(0.01),
        at(0.5)
    );
    let json = serde_json::json!({
        "a": a, "b": b, "images": cosines.len(),
        "cosine_min": cosines[0], "cosine_p01": at(0.01), "cosine_median": at(0.5),
    });
    println!("BENCH_JSON {json}");
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if let [flag, a, b] = raw.as_slice() {
        if flag == "--compare" {
            return compare(a.as_ref(), b.as_ref());
        }
    }
    let args = args();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let scratch = tempfile::tempdir().unwrap();
    let workspace = args.keep.clone().unwrap_or_else(|| scratch.path().to_path_buf());
    let choice = BackboneChoice {
        model: args.model.clone(),
        int8: args.int8,
        ..Default::default()
    };
    let mut opts = ExtractOptions {
        backbone: choice.clone(),
        batch_size: Some(args.batch),
        ..ExtractOptions::new(&args.data, &workspace)
    };
    opts.runtime.device = args.device;

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
    let runtime = headstart::runtime::init_for(None, args.device).unwrap();
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
        "data {} ({} images), backbone {}, batch {}, {cores} cores, {}{}",
        args.data.display(),
        first.images,
        first.backbone.name,
        args.batch,
        first.device.provider,
        first
            .device
            .fallback
            .as_deref()
            .map_or(String::new(), |why| format!(" ({why})"))
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
        "device": args.device.name(),
        "provider": first.device.provider,
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
