//! Fine-tuning the top block against the best frozen-feature classifier, on one workspace that
//! `extract --cut` has run on (issue 17's accuracy table, BENCHMARKS.md section 13).
//!
//! cargo bench --bench finetune -- WORKSPACE [--seeds 3] [--epochs 5,10,20] [--hidden 512|none]
//!     [--backbone-lr 1e-4] [--batch-norm frozen|train] [--threads N]
//!
//! For each seed, in one sitting:
//! - frozen features: the MLP head (the Keras recipe) at each epoch count, chosen on val, and
//!   the logistic-regression baseline with C chosen on val (seed-independent, fitted once);
//! - fine-tune: the layers after the cut with the head, one run of the largest epoch count,
//!   scored after each listed count (with a constant learning rate the first k epochs of a
//!   longer run are exactly a k-epoch run); the count is chosen on val.
//!
//! Test accuracy is reported for the choices made on val, as mean ± std over the seeds, with the
//! fine-tune's seconds per epoch and its 1x1 convolutions' share of the measured GEMM peak.
//! Prints a summary and one `BENCH_JSON {...}` line.
//!
//! cargo bench --bench finetune -- --memory 60000
//!
//! measures the memory of a fine-tune on that many cached maps (see `memory`).

use std::time::Instant;

use headstart::baseline::BaselineParams;
use headstart::cache::maps::{CachedMaps, MapStore};
use headstart::cache::{load_snapshot, Store};
use headstart::classifier::{argmax, Classifier};
use headstart::dataset::Split;
use headstart::finetune::{self, BatchNormMode, FinetuneParams, Finetuned, MapRows, Op};
use headstart::head::HeadParams;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2};

fn accuracy(probs: ArrayView2<f32>, y: &[usize]) -> f64 {
    let right = probs
        .rows()
        .into_iter()
        .zip(y)
        .filter(|(p, &y)| argmax(*p) == y)
        .count();
    right as f64 / y.len().max(1) as f64
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// The best of `(val, test)` pairs by val accuracy, earlier wins ties.
fn chosen(scores: &[(usize, f64, f64)]) -> (usize, f64, f64) {
    scores
        .iter()
        .copied()
        .fold(None, |best: Option<(usize, f64, f64)>, s| match best {
            Some(b) if b.1 >= s.1 => Some(b),
            _ => Some(s),
        })
        .expect("at least one epoch count")
}

/// FLOPs of one image through the 1x1 convolutions, forward, and those of the ones reading the
/// cut; and the GEMM rate of the largest
/// one at batch 32, measured here (the peak the fine-tune's matrix products can reach).
fn pointwise_flops_and_peak(top: &finetune::Top) -> (f64, f64, f64) {
    let mut flops = 0.0;
    // The layer reading the cached map needs no input gradient: its forward FLOPs are saved once.
    let mut on_cut = 0.0;
    let mut largest = (0, 0, 0);
    for op in &top.ops {
        if let Op::Pointwise { x, y, .. } = op {
            let (i, o, p) = (top.slots[*x].channels, top.slots[*y].channels, top.slots[*x].pixels());
            flops += 2.0 * (i * o * p) as f64;
            if *x == 0 {
                on_cut += 2.0 * (i * o * p) as f64;
            }
            if i * o > largest.0 * largest.1 {
                largest = (i, o, p);
            }
        }
    }
    let (i, o, p) = largest;
    let m = 32 * p;
    let a = Array2::from_shape_fn((m, i), |(r, c)| ((r * 7 + c * 3) % 13) as f32 * 0.1);
    let b = Array2::from_shape_fn((i, o), |(r, c)| ((r * 5 + c * 11) % 17) as f32 * 0.1);
    let mut c = Array2::<f32>::zeros((m, o));
    general_mat_mul(1.0, &a, &b, 0.0, &mut c);
    let reps = 30;
    let started = Instant::now();
    for _ in 0..reps {
        general_mat_mul(1.0, &a, &b, 0.0, &mut c);
    }
    let peak = 2.0 * (m * i * o) as f64 * reps as f64 / started.elapsed().as_secs_f64();
    (flops, on_cut, peak)
}

/// Random maps under made-up keys, read from a [`MapStore`] as training reads a real one.
struct Synthetic<'a> {
    store: &'a MapStore,
    keys: Vec<headstart::cache::ContentKey>,
}

impl MapRows for Synthetic<'_> {
    fn images(&self) -> usize {
        self.keys.len()
    }

    fn map_len(&self) -> usize {
        self.store.shape.map_or(0, |s| s.len())
    }

    fn read(&self, rows: &[usize], out: &mut [f32]) {
        for (&r, out) in rows.iter().zip(out.chunks_exact_mut(self.map_len())) {
            self.store.read_f32(&self.keys[r], out);
        }
    }
}

/// `--memory N`: N random Lite0 last-block maps (192x7x7, f16) cached in a temporary folder,
/// then one epoch of fine-tuning on them, with the process's memory at the end: its peak
/// resident set (VmHWM), and what is resident now of its own memory (RssAnon) and of the
/// memory-mapped cache (RssFile, pages the kernel may drop and read again).
fn memory(images: usize) {
    use rand::{Rng, SeedableRng};
    let model = std::fs::read("models/efficientnet_lite0.onnx").expect("run from the repository root");
    let shape = headstart::finetune::Geometry {
        channels: 192,
        height: 7,
        width: 7,
    };
    let top = finetune::build(&model, "add_174", shape, "features").expect("Lite0's last block");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (mut store, _) = MapStore::open(dir.path()).expect("a map store");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut keys = Vec::with_capacity(images);
    let started = Instant::now();
    for start in (0..images).step_by(1000) {
        let n = 1000.min(images - start);
        let batch: Vec<headstart::cache::ContentKey> = (start..start + n)
            .map(|i| {
                let mut k = [0u8; 32];
                k[..8].copy_from_slice(&(i as u64).to_le_bytes());
                k
            })
            .collect();
        let maps: Vec<f32> = (0..n * shape.len()).map(|_| rng.gen_range(0.0f32..6.0)).collect();
        store.append(&batch, shape, &maps).expect("written");
        keys.extend(batch);
    }
    drop(store);
    let written = started.elapsed().as_secs_f64();
    let store = MapStore::read(dir.path()).expect("the maps");
    let y: Vec<usize> = (0..images).map(|i| i % 10).collect();
    let maps = Synthetic { store: &store, keys };
    let params = FinetuneParams {
        head: HeadParams::default().epochs(1),
        backbone_lr: 1e-4,
        ..FinetuneParams::default()
    };
    let started = Instant::now();
    finetune::fit(top, &maps, &y, 10, None, &params, &mut |_| {}).expect("the fine-tune");
    let trained = started.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map_or("?".into(), |l| l[name.len()..].trim().to_string())
    };
    let bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "{images} maps, {:.2} GB cached ({written:.0} s to write); one epoch in {trained:.0} s; VmHWM {}, RssAnon {}, RssFile {}",
        bytes as f64 / 1e9,
        field("VmHWM:"),
        field("RssAnon:"),
        field("RssFile:")
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if let Some(i) = args.iter().position(|a| a == "--memory") {
        memory(args[i + 1].parse().expect("--memory N"));
        return;
    }
    let flag = |name: &str| args.iter().position(|a| a == name).map(|i| args[i + 1].clone());
    let workspace = std::path::PathBuf::from(args.first().expect("usage: finetune WORKSPACE [flags]"));
    let seeds: u64 = flag("--seeds").map_or(3, |s| s.parse().expect("--seeds N"));
    let epochs: Vec<usize> = flag("--epochs")
        .unwrap_or_else(|| "5,10,20".into())
        .split(',')
        .map(|e| e.parse().expect("--epochs a,b,c"))
        .collect();
    let hidden: Vec<usize> = match flag("--hidden").as_deref() {
        None => vec![512],
        Some("none") => Vec::new(),
        Some(h) => vec![h.parse().expect("--hidden N|none")],
    };
    let backbone_lr: f32 = flag("--backbone-lr").map_or(1e-4, |s| s.parse().expect("--backbone-lr X"));
    let batch_norm = flag("--batch-norm").map_or(BatchNormMode::Frozen, |s| {
        <BatchNormMode as clap::ValueEnum>::from_str(&s, false).expect("--batch-norm frozen|train")
    });
    if let Some(threads) = flag("--threads") {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads.parse().expect("--threads N"))
            .build_global()
            .expect("the first pool");
    }
    let max_epochs = *epochs.iter().max().expect("epoch counts");

    let (manifest, store) = load_snapshot(&workspace).expect("a workspace");
    let cut = manifest
        .cut
        .clone()
        .expect("run `extract --cut` on the workspace first");
    let maps = MapStore::read(&Store::dir_for(&workspace, &manifest.backbone.key).join(&cut.dir)).expect("maps");
    let info = manifest.backbone.resolve().expect("the backbone");
    let model = std::fs::read(&info.path).expect("the backbone file");
    let top = finetune::build(&model, &cut.tensor, cut.shape, &manifest.backbone.output).expect("a trainable top");
    let n_classes = manifest.classes.len();
    let split = |s| manifest.split(&store, s).expect("a split");
    let (train, val, test) = (split(Split::Train), split(Split::Val), split(Split::Test));
    let (train_maps, val_maps) = (
        CachedMaps::new(&maps, &train.entries).unwrap(),
        CachedMaps::new(&maps, &val.entries).unwrap(),
    );
    // Without a test split (hymenoptera has train and val only) the scores are on val, where
    // the epoch counts are also chosen: the per-count table is then the fair comparison.
    let (test, scored_on) = match test.y.is_empty() {
        true => (split(Split::Val), "val"),
        false => (test, "test"),
    };
    let test_x = manifest.maps(&workspace, &cut.tensor, &test.entries).unwrap();

    let started = Instant::now();
    let baseline = BaselineParams::default()
        .fit(train.x.view(), &train.y, n_classes, Some((val.x.view(), &val.y)))
        .expect("the baseline");
    let baseline_test = accuracy(baseline.model.predict_proba(test.x.view()).view(), &test.y);
    let baseline_seconds = started.elapsed().as_secs_f64();

    let (mut head_tests, mut fine_tests, mut fine_epochs, mut head_epochs, mut epoch_seconds) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Per epoch count: every seed's score, frozen head and fine-tune.
    let mut per_count: Vec<(usize, Vec<f64>, Vec<f64>)> = epochs.iter().map(|&e| (e, Vec::new(), Vec::new())).collect();
    for seed in 0..seeds {
        let params = HeadParams::default()
            .hidden(hidden.clone())
            .seed(seed)
            .epochs(max_epochs);
        let mut frozen = Vec::new();
        for &e in &epochs {
            let fitted = params
                .clone()
                .epochs(e)
                .fit(train.x.view(), &train.y, n_classes, None, &mut |_| {})
                .expect("the head");
            let v = accuracy(fitted.head.predict_proba(val.x.view()).view(), &val.y);
            let t = accuracy(fitted.head.predict_proba(test.x.view()).view(), &test.y);
            frozen.push((e, v, t));
        }
        for ((_, _, t), (_, f, _)) in frozen.iter().zip(per_count.iter_mut()) {
            f.push(*t);
        }
        let (e, _, t) = chosen(&frozen);
        head_tests.push(t);
        head_epochs.push(e);

        let ft = FinetuneParams {
            head: params,
            backbone_lr,
            batch_norm,
        };
        let mut scores = Vec::new();
        let mut observe = |stats: &headstart::head::EpochStats, top: &finetune::Top, head: &headstart::head::Head| {
            epoch_seconds.push(f64::from(stats.seconds));
            if epochs.contains(&stats.epoch) {
                let model = Finetuned::new(top.clone(), head.clone());
                let v = stats.val_accuracy.map_or(0.0, f64::from);
                let t = accuracy(model.predict_proba(test_x.view()).view(), &test.y);
                scores.push((stats.epoch, v, t));
            }
        };
        let valid = Some((&val_maps as &dyn MapRows, val.y.as_slice()));
        finetune::fit_observed(top.clone(), &train_maps, &train.y, n_classes, valid, &ft, &mut observe)
            .expect("the fine-tune");
        for ((_, _, t), (_, _, f)) in scores.iter().zip(per_count.iter_mut()) {
            f.push(*t);
        }
        let (e, _, t) = chosen(&scores);
        fine_tests.push(t);
        fine_epochs.push(e);
        eprintln!("seed {seed}: frozen head {frozen:?}, fine-tune {scores:?}");
    }

    let (flops, on_cut, peak) = pointwise_flops_and_peak(&top);
    let mut sorted = epoch_seconds.clone();
    sorted.sort_by(f64::total_cmp);
    let median_epoch = sorted[sorted.len() / 2];
    // Training: forward, weight gradient and input gradient (none for the first layer's
    // input, the cached map); validation: forward only.
    let per_image_train = 3.0 * flops - on_cut;
    let rate = (train.y.len() as f64 * per_image_train + val.y.len() as f64 * flops) / median_epoch;
    let (head_mean, head_std) = mean_std(&head_tests);
    let (fine_mean, fine_std) = mean_std(&fine_tests);
    let best_frozen = head_mean.max(baseline_test);
    println!(
        "{}: {} train / {} val / {} test, {} classes, cut {} ({}x{}x{}), head {:?}",
        workspace.display(),
        train.y.len(),
        val.y.len(),
        test.y.len(),
        n_classes,
        cut.name,
        cut.shape.channels,
        cut.shape.height,
        cut.shape.width,
        hidden
    );
    println!("  scores on {scored_on}; per epoch count, frozen head / fine-tune:");
    for (e, f, t) in &per_count {
        let ((fm, fs), (tm, ts)) = (mean_std(f), mean_std(t));
        println!("    {e:>3} epochs: {fm:.4} ± {fs:.4} / {tm:.4} ± {ts:.4}");
    }
    println!("  frozen MLP head     test {head_mean:.4} ± {head_std:.4} (epochs chosen on val: {head_epochs:?})");
    println!(
        "  frozen logistic     test {baseline_test:.4} (C = {} on val, {baseline_seconds:.1} s)",
        1.0 / baseline.chosen_alpha
    );
    println!("  fine-tuned top+head test {fine_mean:.4} ± {fine_std:.4} (epochs chosen on val: {fine_epochs:?})");
    println!(
        "  gain over the best frozen classifier: {:+.2} points",
        100.0 * (fine_mean - best_frozen)
    );
    println!(
        "  {median_epoch:.2} s per epoch (median); 1x1 convolutions {:.0} MFLOP per image forward; {:.1} GFLOP/s in training vs {:.1} GFLOP/s GEMM peak measured here ({:.0}%)",
        flops / 1e6,
        rate / 1e9,
        peak / 1e9,
        100.0 * rate / peak
    );
    let json = serde_json::json!({
        "workspace": workspace,
        "scored_on": scored_on,
        "per_epoch_count": per_count,
        "cut": cut,
        "train": train.y.len(), "val": val.y.len(), "test": test.y.len(),
        "hidden": hidden, "backbone_lr": backbone_lr, "epochs": epochs, "seeds": seeds,
        "head_test": head_tests, "head_epochs": head_epochs,
        "baseline_test": baseline_test, "baseline_c": 1.0 / baseline.chosen_alpha,
        "finetune_test": fine_tests, "finetune_epochs": fine_epochs,
        "gain_points": 100.0 * (fine_mean - best_frozen),
        "seconds_per_epoch": median_epoch,
        "gflops_training": rate / 1e9, "gflops_gemm_peak": peak / 1e9,
    });
    println!("BENCH_JSON {json}");
}
