//! The learning curve of headstart's head kinds: each fitted on the first n training images of
//! each class (by file name) and scored on the whole test split, for several n.
//!
//! cargo bench --bench learning_curve -- WORKSPACE [--per-class 1,2,5,10,20] [--seeds 0,1,2]
//!
//! WORKSPACE is a folder written by `headstart extract`; its train split gives the training
//! images and its test split (val when it has none) the scores. For each seed, n images of
//! every class are drawn at random (seeded) from the train split, and every kind is fitted on
//! that draw; accuracies are means over the seeds. The heads are the sweep's own
//! fits (`headstart::sweep::trial::fit`) of these configurations, built from a sweep space:
//! the default MLP head (`train-head`'s defaults, also seeded by the seed), logistic regression
//! at C = 1, cosine kNN with k = min(5, n) uniform, and the nearest prototype without shrinkage.
//!
//! Prints a readable table and one `BENCH_JSON {...}` line for benches/run.py.

use std::collections::BTreeMap;

use headstart::cache::load_snapshot;
use headstart::dataset::Split;
use headstart::sweep::space::{Space, TrialSpec};
use headstart::sweep::trial::{fit, score};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

fn list<T: std::str::FromStr>(text: &str) -> Vec<T> {
    text.split(',')
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("cannot read `{v}` in `{text}`"))
        })
        .collect()
}

/// The one configuration of a space given as JSON.
fn spec(space: Value, seed: u64) -> TrialSpec {
    let mut trials = Space::from_value(&space, seed).expect("a valid space").trials;
    assert_eq!(trials.len(), 1, "one configuration");
    trials.remove(0)
}

fn main() {
    let usage = "usage: learning_curve WORKSPACE [--per-class 1,2,5,10,20] [--seeds 0,1,2]";
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut workspace = None;
    let (mut per_class, mut seeds) = (vec![1usize, 2, 5, 10, 20], vec![0u64, 1, 2]);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--per-class" => per_class = list(&args.next().expect(usage)),
            "--seeds" => seeds = list(&args.next().expect(usage)),
            _ => workspace = Some(arg),
        }
    }
    let workspace = workspace.expect(usage);
    let (manifest, store) = load_snapshot(workspace.as_ref()).expect("a workspace written by extract");
    let classes = &manifest.classes;
    let train = manifest.split(&store, Split::Train).expect("the train split");
    let mut eval = manifest.split(&store, Split::Test).expect("the test split");
    let mut eval_split = "test";
    if eval.y.is_empty() {
        eval = manifest.split(&store, Split::Val).expect("the val split");
        eval_split = "val";
    }

    // Each class's training rows in file-name order, so that a seed's draw does not depend on the store's row order.
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes.len()];
    for (row, entry) in train.entries.iter().enumerate() {
        by_class[entry.sample.class].push(row);
    }
    for rows in &mut by_class {
        rows.sort_by(|&a, &b| train.entries[a].sample.path.cmp(&train.entries[b].sample.path));
    }

    let mut results = Vec::new();
    println!(
        "{}: {} classes, train {} (per class up to {}), scored on {} ({} images)",
        workspace,
        classes.len(),
        train.y.len(),
        by_class.iter().map(Vec::len).min().unwrap_or(0),
        eval_split,
        eval.y.len()
    );
    println!(
        "{:>9} {:>10} {:>10} {:>10} {:>10}",
        "per class", "mlp", "logistic", "knn", "prototype"
    );
    for &n in &per_class {
        // Each seed draws its own n images of every class, so the means are over subsets too.
        let subsets: Vec<Vec<usize>> = seeds
            .iter()
            .map(|&seed| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                by_class
                    .iter()
                    .flat_map(|rows| {
                        let mut rows = rows.clone();
                        rows.shuffle(&mut rng);
                        rows.truncate(n);
                        rows
                    })
                    .collect()
            })
            .collect();
        let kinds: [(&str, Value); 4] = [
            ("mlp", json!({"mlp": {}})),
            ("logistic", json!({"logistic": {"c": 1.0}})),
            ("knn", json!({"knn": {"k": n.min(5), "weights": "uniform"}})),
            ("prototype", json!({"prototype": {}})),
        ];
        let mut accuracy = BTreeMap::new();
        for (kind, space) in kinds {
            let mut scores = Vec::new();
            for (&seed, rows) in seeds.iter().zip(&subsets) {
                let s = spec(space.clone(), seed);
                let scored = fit(&s, train.x.view(), &train.y, rows, classes.len())
                    .map(|model| score(model.predict_proba(eval.x.view()).view(), &eval.y, classes, 0.0).accuracy);
                match scored {
                    Ok(a) => scores.push(a),
                    Err(e) => eprintln!("{kind} with {n} per class, seed {seed}, failed: {e}"),
                }
            }
            let mean = (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
            results.push(json!({
                "per_class": n, "train_images": subsets[0].len(), "kind": kind,
                "spec": spec(space, seeds[0]), "accuracy": mean, "runs": scores,
            }));
            accuracy.insert(kind, mean);
        }
        let cell = |k: &str| accuracy[k].map_or("failed".to_string(), |a| format!("{a:.3}"));
        println!(
            "{n:>9} {:>10} {:>10} {:>10} {:>10}",
            cell("mlp"),
            cell("logistic"),
            cell("knn"),
            cell("prototype")
        );
    }
    let out = json!({
        "workspace": workspace, "classes": classes.len(), "eval_split": eval_split,
        "eval_images": eval.y.len(), "seeds": seeds, "results": results,
    });
    println!("BENCH_JSON {out}");
}
