//! Camera-sized JPEGs: the full decode (`decode`: zune-jpeg through `image`, turned upright)
//! against the one that `preprocess` uses (`decode_at_least` with the default backbone's
//! `decode_side`: libjpeg-turbo at 1/4 or 1/8 in the DCT domain where the photo is big enough,
//! and the pixels as stored, since `preprocess` turns only the crop), per megapixel class, and
//! what the reduction does to the embeddings of the default backbone.
//!
//! cargo bench --bench jpeg [--features jpeg-simd] -- DIR [--rounds 5] [--shorter-side N]
//!
//! `--shorter-side` decodes down to another shorter side than `preprocess` does, to see what a
//! stronger or weaker reduction costs and saves.
//!
//! Decoding: every JPEG under DIR (`python benches/phone_photos.py` writes such a folder) is
//! decoded both ways on one core, the two interleaved file by file in each round; a file's time
//! is its median over the rounds and a class's figure the mean over its files. Embeddings: each
//! photo is preprocessed both ways (full decode then crop and resize, against `preprocess`) and
//! embedded; the cosine of each pair is reported as min, 5th percentile and median.
//!
//! Prints a readable table and one `BENCH_JSON {...}` line for benches/run.py.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use headstart::backbone::{Backbone, BackboneChoice};
use headstart::preprocess::{crop_resize, decode, decode_at_least, normalise, DEFAULT_MAX_PIXELS};
use serde_json::json;
use sha2::{Digest, Sha256};

fn jpegs(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            jpegs(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        {
            out.push(path);
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn main() {
    let usage = "usage: jpeg DIR [--rounds N] [--shorter-side N]";
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let (mut dir, mut rounds, mut side) = (None, 5usize, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => rounds = args.next().and_then(|r| r.parse().ok()).expect(usage),
            "--shorter-side" => side = args.next().and_then(|r| r.parse().ok()),
            _ => dir = Some(PathBuf::from(arg)),
        }
    }
    let dir = dir.expect(usage);
    let mut files = Vec::new();
    jpegs(&dir, &mut files);
    assert!(!files.is_empty(), "no JPEG under {}", dir.display());
    let bytes: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();

    let runtime = headstart::runtime::init(None).unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let info = BackboneChoice::default().resolve().unwrap();
    let mut backbone = Backbone::open(&runtime, info, cores).unwrap();
    let spec = backbone.preprocessing;
    let side = side.unwrap_or(spec.decode_side());

    // Decode times, the two ways interleaved file by file so that drift hits both alike. The
    // reduced pixels are hashed so that two builds (jpeg-simd or not) can be compared: they must
    // give the same pixels, or vectors cached by one would differ from the other's.
    let mut times = vec![(Vec::new(), Vec::new()); files.len()];
    let mut megapixels = vec![0u32; files.len()];
    let mut pixels = Sha256::new();
    for round in 0..rounds {
        for (i, b) in bytes.iter().enumerate() {
            let started = Instant::now();
            let full = decode(b, DEFAULT_MAX_PIXELS).unwrap();
            times[i].0.push(started.elapsed().as_secs_f64() * 1e3);
            let started = Instant::now();
            let reduced = decode_at_least(b, DEFAULT_MAX_PIXELS, side).unwrap();
            times[i].1.push(started.elapsed().as_secs_f64() * 1e3);
            megapixels[i] = (f64::from(full.width()) * f64::from(full.height()) / 1e6).round() as u32;
            std::hint::black_box(full);
            if round == 0 {
                pixels.update(reduced.stored.as_raw());
            }
        }
    }
    let pixels: String = pixels.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let mut classes: BTreeMap<u32, Vec<(f64, f64)>> = BTreeMap::new();
    for (i, (full, reduced)) in times.iter_mut().enumerate() {
        classes
            .entry(megapixels[i])
            .or_default()
            .push((median(full), median(reduced)));
    }

    // Embeddings of the two preprocessings.
    let mut resizer = fast_image_resize::Resizer::new();
    let (mut full_in, mut reduced_in) = (
        vec![0f32; files.len() * spec.len()],
        vec![0f32; files.len() * spec.len()],
    );
    for ((b, full), reduced) in bytes
        .iter()
        .zip(full_in.chunks_exact_mut(spec.len()))
        .zip(reduced_in.chunks_exact_mut(spec.len()))
    {
        let rgb = decode(b, DEFAULT_MAX_PIXELS).unwrap();
        normalise(&crop_resize(&rgb, &spec, &mut resizer).unwrap(), &spec, full);
        let decoded = decode_at_least(b, DEFAULT_MAX_PIXELS, side).unwrap();
        normalise(&decoded.crop_resize(&spec, &mut resizer).unwrap(), &spec, reduced);
    }
    let per_batch = 32 * spec.len();
    let mut cosines = Vec::new();
    for (full, reduced) in full_in.chunks(per_batch).zip(reduced_in.chunks(per_batch)) {
        let n = full.len() / spec.len();
        let (dim, a) = backbone.embed(full, n).unwrap();
        let (_, b) = backbone.embed(reduced, n).unwrap();
        cosines.extend(a.chunks_exact(dim).zip(b.chunks_exact(dim)).map(|(x, y)| cosine(x, y)));
    }
    cosines.sort_by(f64::total_cmp);
    let (min, p5, mid) = (
        cosines[0],
        cosines[(cosines.len() - 1) * 5 / 100],
        median(&mut cosines.clone()),
    );

    let simd = cfg!(feature = "jpeg-simd");
    println!(
        "{} JPEGs under {}, {rounds} rounds, reduced decode to a shorter side of at least {side} ({}), one core",
        files.len(),
        dir.display(),
        if simd { "jpeg-simd" } else { "no SIMD" }
    );
    println!("megapixels | files | full ms | reduced ms | full / reduced");
    let mut rows = Vec::new();
    let mut all = (0.0, 0.0);
    for (mp, ts) in &classes {
        let n = ts.len() as f64;
        let (full, reduced) = (
            ts.iter().map(|t| t.0).sum::<f64>() / n,
            ts.iter().map(|t| t.1).sum::<f64>() / n,
        );
        all = (all.0 + full * n, all.1 + reduced * n);
        println!(
            "{mp:>10} | {:>5} | {full:>7.2} | {reduced:>10.2} | {:.2}x",
            ts.len(),
            full / reduced
        );
        rows.push(json!({"megapixels": mp, "files": ts.len(), "full_ms": full, "reduced_ms": reduced}));
    }
    let n = files.len() as f64;
    println!(
        "       all | {:>5} | {:>7.2} | {:>10.2} | {:.2}x",
        files.len(),
        all.0 / n,
        all.1 / n,
        all.0 / all.1
    );
    println!("embedding cosine, reduced against full decode: min {min:.5}, p5 {p5:.5}, median {mid:.5}");
    println!("SHA-256 of the reduced pixels: {pixels}");
    let out = json!({
        "data": dir,
        "files": files.len(),
        "rounds": rounds,
        "simd": simd,
        "shorter_side": side,
        "classes": rows,
        "full_ms": all.0 / n,
        "reduced_ms": all.1 / n,
        "cosine_min": min,
        "cosine_p5": p5,
        "cosine_median": mid,
        "reduced_pixels_sha256": pixels,
    });
    println!("BENCH_JSON {out}");
}
