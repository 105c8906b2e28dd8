//! Exact cosine k-nearest neighbours, 5-fold on fixed embeddings, for comparison with
//! scikit-learn's brute-force `KNeighborsClassifier` (`benches/knn_reference.py ARRAYS` on the
//! same file, the same folds).
//!
//! cargo bench --bench knn -- ARRAYS.safetensors [--k 10] [--weights uniform|distance]
//!
//! ARRAYS is an arrays file as for `benches/baseline.rs` (`x_train` f32 [n, D], `y_train` i64
//! [n], other splits ignored). Its train rows are split into 5 folds by row index mod 5; each
//! fold is predicted by k-nearest neighbours fitted on the other four. Seconds are `fit` plus
//! `predict_proba` over the 5 folds; GFLOP/s counts only the similarity products
//! (`2 * n_query * n_train * D` per fold) but divides by the whole `predict_proba` time, top-k
//! selection and voting included, so it is a lower bound on the matrix product's own rate.
//! `RAYON_NUM_THREADS` and `MATMUL_NUM_THREADS` set the threads over query blocks and inside
//! each product.
//!
//! Prints a readable summary and one `BENCH_JSON {...}` line.

mod common;

use std::time::Instant;

use headstart::classifier::{argmax, Classifier};
use headstart::knn::{KnnParams, KnnWeights};
use ndarray::Axis;
use safetensors::SafeTensors;

const FOLDS: usize = 5;

use common::{labels, matrix};

fn main() {
    let usage = "usage: knn ARRAYS.safetensors [--k K] [--weights uniform|distance]";
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut params = KnnParams::default();
    let mut path = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--k" => params.k = rest.next().and_then(|v| v.parse().ok()).expect(usage),
            "--weights" => {
                params.weights = match rest.next().map(String::as_str) {
                    Some("uniform") => KnnWeights::Uniform,
                    Some("distance") => KnnWeights::Distance,
                    _ => panic!("{usage}"),
                }
            }
            _ => path = Some(arg.clone()),
        }
    }
    let path = path.expect(usage);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let file = SafeTensors::deserialize(&bytes).expect("a safetensors file");
    let (x, y) = (matrix(&file, "x_train"), labels(&file, "y_train"));
    let n_classes = y.iter().max().map_or(0, |m| m + 1);

    let (mut fit_seconds, mut predict_seconds, mut flops, mut correct) = (0.0, 0.0, 0.0, 0);
    let mut per_fold = Vec::new();
    for fold in 0..FOLDS {
        let (train_rows, test_rows): (Vec<usize>, Vec<usize>) = (0..x.nrows()).partition(|i| i % FOLDS != fold);
        let (xt, xq) = (x.select(Axis(0), &train_rows), x.select(Axis(0), &test_rows));
        let yt: Vec<usize> = train_rows.iter().map(|&i| y[i]).collect();

        let started = Instant::now();
        let knn = params.fit(xt.view(), &yt, n_classes).expect("knn fits");
        let fitted = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let probs = knn.predict_proba(xq.view());
        let predicted = started.elapsed().as_secs_f64();

        let right = probs
            .rows()
            .into_iter()
            .zip(&test_rows)
            .filter(|(row, &i)| argmax(*row) == y[i])
            .count();
        let fold_flops = 2.0 * xq.nrows() as f64 * xt.nrows() as f64 * x.ncols() as f64;
        fit_seconds += fitted;
        predict_seconds += predicted;
        flops += fold_flops;
        correct += right;
        per_fold.push(serde_json::json!({
            "fit_seconds": fitted,
            "predict_seconds": predicted,
            "accuracy": right as f64 / test_rows.len() as f64,
        }));
        println!(
            "  fold {fold}: {} train, {} predicted; accuracy {:.4}; fit {:.3} s, predict {:.3} s ({:.1} GFLOP/s)",
            xt.nrows(),
            xq.nrows(),
            right as f64 / test_rows.len() as f64,
            fitted,
            predicted,
            fold_flops / predicted / 1e9
        );
    }
    let seconds = fit_seconds + predict_seconds;
    let accuracy = correct as f64 / x.nrows() as f64;
    let gflops = flops / predict_seconds / 1e9;
    println!(
        "{path}: {} x {}, {n_classes} classes; {FOLDS}-fold cosine kNN k = {} {:?}: accuracy {accuracy:.4}; \
         {seconds:.3} s (fit {fit_seconds:.3} s, predict {predict_seconds:.3} s); {gflops:.1} GFLOP/s",
        x.nrows(),
        x.ncols(),
        params.k,
        params.weights
    );
    let json = serde_json::json!({
        "n": x.nrows(),
        "dim": x.ncols(),
        "classes": n_classes,
        "k": params.k,
        "weights": params.weights,
        "seconds": seconds,
        "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "gflops": gflops,
        "accuracy": accuracy,
        "folds": per_fold,
    });
    println!("BENCH_JSON {json}");
}
