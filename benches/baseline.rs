//! The baseline's regularisation sweep on fixed embeddings, for comparison with scikit-learn's
//! (`benches/head_reference.py ARRAYS --frameworks sklearn --lr-select val` on the same file).
//!
//! cargo bench --bench baseline -- ARRAYS.safetensors
//!
//! ARRAYS holds `x_train`, `x_val` (f32 [n, D]) and `y_train`, `y_val` (i64 [n]), and optionally
//! `x_test`/`y_test`; `benches/run.py` writes it from a workspace or generates it. The default
//! `BaselineParams` are fitted on train with C chosen on val (the grid and the rule of
//! `headstart train-head --baseline`), then scored on test, or on val when there is no test.
//! The grid is held to its 11 values (`widen(0)`), as scikit-learn's is: `train-head` would go
//! on past an edge where the best C lies, which would compare different grids.
//! Seconds are the whole `fit`: standardisation, every alpha of the grid, validation scoring.
//!
//! Prints a readable summary and one `BENCH_JSON {...}` line for benches/run.py.

mod common;

use std::time::Instant;

use headstart::baseline::BaselineParams;
use ndarray::Array1;
use safetensors::SafeTensors;

use common::{labels, matrix};

fn main() {
    let usage = "usage: baseline ARRAYS.safetensors";
    let path = std::env::args().skip(1).find(|a| a != "--bench").expect(usage);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let file = SafeTensors::deserialize(&bytes).expect("a safetensors file");
    let (x, y) = (matrix(&file, "x_train"), labels(&file, "y_train"));
    let (xv, yv) = (matrix(&file, "x_val"), labels(&file, "y_val"));
    let (eval_split, xe, ye) = if file.names().contains(&&"x_test".to_string()) {
        ("test", matrix(&file, "x_test"), labels(&file, "y_test"))
    } else {
        ("val", xv.clone(), yv.clone())
    };
    let n_classes = y.iter().chain(&yv).chain(&ye).max().map_or(0, |m| m + 1);

    let started = Instant::now();
    let fitted = BaselineParams::default()
        .widen(0)
        .fit(x.view(), &y, n_classes, Some((xv.view(), &yv)))
        .expect("the baseline fits");
    let seconds = started.elapsed().as_secs_f64();

    let probs = fitted.model.predict_proba(xe.view());
    let predicted: Array1<usize> = probs
        .rows()
        .into_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b })
                .0
        })
        .collect();
    let correct = predicted.iter().zip(&ye).filter(|(p, y)| p == y).count();
    let accuracy = correct as f64 / ye.len() as f64;

    println!(
        "{path}: {} train x {}, {n_classes} classes; C = {} chosen on val; {eval_split} accuracy {accuracy:.4}; sweep {seconds:.2} s",
        x.nrows(),
        x.ncols(),
        1.0 / fitted.chosen_alpha
    );
    for p in &fitted.sweep {
        println!(
            "  C = {:>8.3}  train {:.3}  val {:.3}  |grad|/n {:.1e}  {:?}  {:.2} s",
            p.c,
            p.train_accuracy,
            p.val_accuracy.unwrap_or(f64::NAN),
            p.gradient_norm,
            p.status,
            p.seconds
        );
    }
    let json = serde_json::json!({
        "n_train": x.nrows(),
        "dim": x.ncols(),
        "classes": n_classes,
        "eval_split": eval_split,
        "seconds": seconds,
        "chosen_c": 1.0 / fitted.chosen_alpha,
        "accuracy": accuracy,
        "sweep": fitted.sweep,
    });
    println!("BENCH_JSON {json}");
}
