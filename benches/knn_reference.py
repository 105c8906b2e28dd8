"""scikit-learn's exact cosine k-nearest neighbours on the folds `cargo bench --bench knn` uses.

Why: headstart's kNN (src/knn.rs) is its own blocked matrix product and top-k; this runs the
same recipe with the library people would otherwise use, for accuracy and time:
KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute", weights=...) on the
`x_train` rows of an arrays file, 5 folds by row index mod 5, each fold predicted by a model
fitted on the other four. Seconds are fit plus predict_proba over the 5 folds (the arrays are
loaded and split beforehand, as in the Rust bench). scikit-learn computes the cosines with
numpy's BLAS, whose threads follow OMP_NUM_THREADS / OPENBLAS_NUM_THREADS.

    python3 benches/knn_reference.py ARRAYS.safetensors [--k 10] [--weights uniform|distance]

Prints one line per fold, a summary, and one `BENCH_JSON {...}` line.
"""

import argparse
import json
import time

import numpy as np
from safetensors.numpy import load_file
from sklearn.neighbors import KNeighborsClassifier

FOLDS = 5


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arrays")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--weights", choices=("uniform", "distance"), default="uniform")
    args = parser.parse_args()

    tensors = load_file(args.arrays)
    x = np.ascontiguousarray(tensors["x_train"], dtype=np.float32)
    y = tensors["y_train"].astype(np.int64)
    rows = np.arange(len(x))
    fit_seconds = predict_seconds = 0.0
    correct = 0
    for fold in range(FOLDS):
        train, test = rows % FOLDS != fold, rows % FOLDS == fold
        xt, yt, xq, yq = x[train], y[train], x[test], y[test]
        started = time.perf_counter()
        knn = KNeighborsClassifier(n_neighbors=args.k, metric="cosine", algorithm="brute", weights=args.weights)
        knn.fit(xt, yt)
        fitted = time.perf_counter() - started
        started = time.perf_counter()
        probs = knn.predict_proba(xq)
        predicted = time.perf_counter() - started
        # argmax over the classes seen in training (knn.classes_), like headstart's first-largest.
        right = int((knn.classes_[probs.argmax(1)] == yq).sum())
        fit_seconds += fitted
        predict_seconds += predicted
        correct += right
        print(f"  fold {fold}: {len(xt)} train, {len(xq)} predicted; accuracy {right / len(xq):.4f}; "
              f"fit {fitted:.3f} s, predict {predicted:.3f} s")
    seconds = fit_seconds + predict_seconds
    accuracy = correct / len(x)
    print(f"{args.arrays}: {x.shape[0]} x {x.shape[1]}; {FOLDS}-fold scikit-learn cosine kNN k = {args.k} "
          f"{args.weights}: accuracy {accuracy:.4f}; {seconds:.3f} s "
          f"(fit {fit_seconds:.3f} s, predict {predict_seconds:.3f} s)")
    print("BENCH_JSON " + json.dumps({"n": int(x.shape[0]), "dim": int(x.shape[1]), "k": args.k,
                                      "weights": args.weights, "seconds": seconds, "fit_seconds": fit_seconds,
                                      "predict_seconds": predict_seconds, "accuracy": accuracy}))


if __name__ == "__main__":
    main()
