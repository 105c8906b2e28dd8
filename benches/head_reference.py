"""Reference heads in PyTorch, Keras and scikit-learn on a headstart workspace's cached embeddings.

Why: headstart trains its classifier head (and its logistic-regression baseline) with its own
code rather than a deep-learning framework. This script fits the same recipes with the
frameworks people would otherwise use, on exactly the embeddings `headstart extract` cached, so
that accuracy and training time can be compared with `headstart train`:

1. torch   - the head as headstart defines it: BatchNorm1d(D, eps=1e-3, momentum=0.01) ->
             Dropout(0.5) -> Linear(D, 512) -> ReLU -> BatchNorm1d(512) -> Dropout(0.5) ->
             Linear(512, K); softmax cross-entropy; Adam(1e-3, betas (0.9, 0.999), eps 1e-7);
             batch 32, reshuffled each epoch, last partial batch kept; Glorot-uniform kernels,
             zero biases (Keras' initialisation). Seconds = the training epochs only.
2. keras   - the classic Keras transfer-learning head: Sequential([Input((D,)),
             BatchNormalization(), Dropout(0.5), Dense(512, relu), BatchNormalization(),
             Dropout(0.5), Dense(K, softmax)]), Adam(1e-3, epsilon=1e-7), sparse categorical
             cross-entropy, batch 32, shuffle=True, `keras.utils.set_random_seed(seed)`.
             Seconds = `fit` only (so the first epoch includes tracing the train step).
3. sklearn - LogisticRegression (lbfgs, max_iter 5000; multinomial for 3+ classes, binary
             logistic for 2) on StandardScaler-ed features, C over 11 log-spaced values
             0.01 ... 1000, picked by accuracy on the `val` split (ties: lower log loss), or by
             stratified 5-fold CV on train when the workspace has no val split or val is the
             evaluation split (`--lr-select` overrides). With val, the sweep's own fit of the
             chosen C is kept (seconds = the sweep, as headstart's); with CV it is refitted on
             train (seconds = sweep + refit). Deterministic, so it runs once.

The evaluation split is `test` when the workspace has test images, else `val`. Threads are
limited (default 2 intra-op, 1 inter-op) so timings are comparable on a shared machine.

Run from the repository root with numpy, safetensors and whichever frameworks you want
(torch; tensorflow or tensorflow-cpu for keras; scikit-learn); a missing framework is skipped
with a message:

    python benches/head_reference.py WORKSPACE [--seeds 0 1 2] [--eval-split val|test]
        [--frameworks torch keras sklearn] [--json-out results.json]

WORKSPACE is a folder written by `headstart extract` (dataset.json plus
embeddings/<backbone key>/<the store file dataset.json names>), or an arrays file as
`benches/run.py` writes for `cargo bench --bench baseline` (`x_train`, `y_train`, `x_val`,
`y_val`, optionally `x_test`, `y_test`; see `save_arrays`). Prints a table of (framework, seed, accuracy on the
evaluation split, seconds), then per framework the mean accuracy over seeds and the median time.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np
from safetensors.numpy import load_file

FRAMEWORKS = ("torch", "keras", "sklearn")


# ---------------------------------------------------------------------------------------------
# Workspace


def load_workspace(folder):
    """Returns (classes, backbone, {split: (x f32 [n, D], y int64 [n])}) for the splits present."""
    with open(os.path.join(folder, "dataset.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    classes = list(manifest["classes"])
    backbone = manifest["backbone"]
    store = load_file(os.path.join(folder, "embeddings", backbone["key"], manifest["store"]))
    emb, sha = store["embeddings"], store["sha256"]
    if emb.shape[0] != sha.shape[0]:
        sys.exit(f"store has {emb.shape[0]} embeddings but {sha.shape[0]} hashes")
    row_of = {bytes(h).hex(): i for i, h in enumerate(sha)}
    class_index = {c: i for i, c in enumerate(classes)}
    rows, labels, missing = {}, {}, 0
    for e in manifest["entries"]:
        row = row_of.get(e["sha256"].lower())
        if row is None:
            missing += 1
            continue
        rows.setdefault(e["split"], []).append(row)
        c = e["class"]  # a class index (or, tolerated, a class name)
        labels.setdefault(e["split"], []).append(c if isinstance(c, int) else class_index[c])
    if missing:
        print(f"warning: {missing} entries have no cached embedding and are left out", file=sys.stderr)
    splits = {
        s: (np.ascontiguousarray(emb[r], dtype=np.float32), np.asarray(labels[s], dtype=np.int64))
        for s, r in rows.items()
    }
    return classes, backbone, splits


def load_arrays(path):
    """The same as load_workspace for an arrays file written by save_arrays."""
    tensors = load_file(path)
    splits = {s: (np.ascontiguousarray(tensors[f"x_{s}"], dtype=np.float32), tensors[f"y_{s}"].astype(np.int64))
              for s in ("train", "val", "test") if f"x_{s}" in tensors}
    n_classes = 1 + max(int(y.max()) for _, y in splits.values())
    dim = splits["train"][0].shape[1]
    return [str(i) for i in range(n_classes)], {"key": os.path.basename(path), "dim": dim}, splits


def save_arrays(splits, path):
    """Writes {split: (x, y)} as one safetensors file: `x_<split>` f32 [n, D], `y_<split>` i64 [n]."""
    from safetensors.numpy import save_file

    tensors = {}
    for s, (x, y) in splits.items():
        tensors[f"x_{s}"] = np.ascontiguousarray(x, dtype=np.float32)
        tensors[f"y_{s}"] = np.ascontiguousarray(y, dtype=np.int64)
    save_file(tensors, path)


def accuracy(pred, y):
    return float(np.mean(np.asarray(pred) == y))


# ---------------------------------------------------------------------------------------------
# PyTorch


def run_torch(data, n_classes, seeds, args):
    import torch
    from torch import nn
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set in this process
    (xtr, ytr), (xev, yev) = data["train"], data["eval"]
    xtr_t, ytr_t, xev_t = torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xev)
    d, n = xtr.shape[1], xtr.shape[0]
    results = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.BatchNorm1d(d, eps=1e-3, momentum=0.01),
            nn.Dropout(args.dropout),
            nn.Linear(d, args.hidden),
            nn.ReLU(),
            nn.BatchNorm1d(args.hidden, eps=1e-3, momentum=0.01),
            nn.Dropout(args.dropout),
            nn.Linear(args.hidden, n_classes),
        )
        for m in model:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
        gen = torch.Generator().manual_seed(seed)
        skipped = 0
        model.train()
        start = time.perf_counter()
        for _ in range(args.epochs):
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, args.batch_size):
                idx = perm[i : i + args.batch_size]
                if len(idx) < 2:  # BatchNorm1d cannot train on a single sample
                    skipped += 1
                    continue
                loss = F.cross_entropy(model(xtr_t[idx]), ytr_t[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        seconds = time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            pred = model(xev_t).argmax(1).numpy()
        r = {"framework": "torch", "seed": seed, "accuracy": accuracy(pred, yev), "seconds": seconds,
             "final_batch_loss": loss.item()}
        if skipped:
            r["skipped_single_sample_batches"] = skipped
        results.append(r)
        print_row(r)
    return results, {"torch": torch.__version__}


# ---------------------------------------------------------------------------------------------
# Keras


def run_keras(data, n_classes, seeds, args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # Must happen before TensorFlow creates its runtime (i.e. before any op runs).
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras = tf.keras
    (xtr, ytr), (xev, yev) = data["train"], data["eval"]
    d = xtr.shape[1]

    class EpochTimes(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.ends = time.perf_counter(), []

        def on_epoch_end(self, epoch, logs=None):
            self.ends.append(time.perf_counter() - self.start)

    results = []
    for seed in seeds:
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([
            keras.Input((d,)),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(args.dropout),
            keras.layers.Dense(args.hidden, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(args.dropout),
            keras.layers.Dense(n_classes, activation="softmax"),
        ])
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-7),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        timer = EpochTimes()
        start = time.perf_counter()
        hist = model.fit(xtr, ytr, batch_size=args.batch_size, epochs=args.epochs, shuffle=True,
                         verbose=0, callbacks=[timer])
        seconds = time.perf_counter() - start
        pred = model.predict(xev, batch_size=256, verbose=0).argmax(1)
        r = {"framework": "keras", "seed": seed, "accuracy": accuracy(pred, yev), "seconds": seconds,
             "epoch_end_seconds": timer.ends, "final_epoch_loss": float(hist.history["loss"][-1])}
        results.append(r)
        print_row(r)
    return results, {"tensorflow": tf.__version__, "keras": keras.__version__}


# ---------------------------------------------------------------------------------------------
# scikit-learn


def run_sklearn(data, n_classes, args):
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    import inspect

    extra = {}
    if "multi_class" in inspect.signature(LogisticRegression).parameters:  # scikit-learn < 1.7
        extra["multi_class"] = "multinomial"
    cs = np.logspace(-2, 3, 11)
    (xtr, ytr), (xev, yev) = data["train"], data["eval"]
    labels = np.arange(n_classes)
    unconverged = 0

    def fit(x, y, c):
        nonlocal unconverged
        scaler = StandardScaler().fit(x)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model = LogisticRegression(C=c, solver="lbfgs", tol=args.lr_tol, max_iter=5000, **extra).fit(scaler.transform(x), y)
        unconverged += sum(issubclass(w.category, ConvergenceWarning) for w in caught)
        return scaler, model

    def score(scaler, model, x, y):
        p = model.predict_proba(scaler.transform(x))
        return accuracy(model.classes_[p.argmax(1)], y), log_loss(y, p, labels=labels)

    mode = args.lr_select
    if mode == "auto":
        mode = "val" if "val" in data["splits"] and data["eval_split"] != "val" else "cv"
    if mode == "val" and "val" not in data["splits"]:
        sys.exit("--lr-select val: the workspace has no val split")
    with threadpool_limits(limits=args.threads):
        start = time.perf_counter()
        sweep = []
        if mode == "val":
            xv, yv = data["splits"]["val"]
            for c in cs:
                fitted = fit(xtr, ytr, c)
                acc, loss = score(*fitted, xv, yv)
                sweep.append({"C": float(c), "accuracy": acc, "log_loss": loss, "fitted": fitted})
        else:
            folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(xtr, ytr))
            for c in cs:
                scores = [score(*fit(xtr[a], ytr[a], c), xtr[b], ytr[b]) for a, b in folds]
                sweep.append({"C": float(c), "accuracy": float(np.mean([s[0] for s in scores])),
                              "log_loss": float(np.mean([s[1] for s in scores]))})
        best = min(sweep, key=lambda s: (-s["accuracy"], s["log_loss"]))
        scaler, model = best.pop("fitted") if mode == "val" else fit(xtr, ytr, best["C"])
        for s in sweep:
            s.pop("fitted", None)
        seconds = time.perf_counter() - start
    acc, _ = score(scaler, model, xev, yev)
    r = {"framework": "sklearn", "seed": None, "accuracy": acc, "seconds": seconds,
         "selection": mode, "C": best["C"], "sweep": sweep, "n_iter": int(np.max(model.n_iter_)),
         "convergence_warnings": unconverged}
    print_row(r, note=f"C={best['C']:g} by {mode}")
    return [r], {"scikit-learn": sklearn.__version__}


# ---------------------------------------------------------------------------------------------


def print_row(r, note=""):
    seed = "-" if r["seed"] is None else str(r["seed"])
    print(f"{r['framework']:<9} {seed:>4} {r['accuracy']:>9.4f} {r['seconds']:>9.3f}  {note}".rstrip(), flush=True)


def summarise(results):
    out = {}
    for fw in FRAMEWORKS:
        rs = [r for r in results if r["framework"] == fw]
        if rs:
            accs = [r["accuracy"] for r in rs]
            out[fw] = {"runs": len(rs), "mean_accuracy": statistics.fmean(accs),
                       "std_accuracy": statistics.pstdev(accs) if len(accs) > 1 else 0.0,
                       "median_seconds": statistics.median(r["seconds"] for r in rs)}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("workspace")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--eval-split", choices=["val", "test"])
    p.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS))
    p.add_argument("--lr-select", choices=["auto", "val", "cv"], default="auto",
                   help="how sklearn picks C (auto: val unless val is the evaluation split, else 5-fold CV)")
    p.add_argument("--lr-tol", type=float, default=1e-4,
                   help="scikit-learn's tol (its default, 1e-4, can stop many-class fits far from the optimum)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (inter-op: 1)")
    p.add_argument("--json-out")
    args = p.parse_args()

    loader = load_arrays if os.path.isfile(args.workspace) else load_workspace
    classes, backbone, splits = loader(args.workspace)
    eval_split = args.eval_split or ("test" if "test" in splits else "val")
    for s in ("train", eval_split):
        if s not in splits:
            sys.exit(f"the workspace has no {s} images")
    data = {"train": splits["train"], "eval": splits[eval_split], "splits": splits, "eval_split": eval_split}
    counts = {s: int(len(y)) for s, (_, y) in sorted(splits.items())}
    print(f"workspace {os.path.basename(os.path.normpath(args.workspace))}: {len(classes)} classes, "
          f"D={splits['train'][0].shape[1]} ({backbone.get('name', backbone['key'])}), splits {counts}, "
          f"evaluating on {eval_split}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    if load is not None:
        # Timings mean little when other processes compete for the cores: PyTorch with 2
        # threads on 2 busy cores ran 10-100x slower than alone.
        print(f"load average {load[0]:.2f} on {os.cpu_count()} CPUs, {args.threads} intra-op threads")
    print(f"{'framework':<9} {'seed':>4} {'accuracy':>9} {'seconds':>9}")

    results, versions, skipped = [], {"python": platform.python_version(), "numpy": np.__version__}, {}
    for fw in args.frameworks:
        try:
            if fw == "torch":
                rs, v = run_torch(data, len(classes), args.seeds, args)
            elif fw == "keras":
                rs, v = run_keras(data, len(classes), args.seeds, args)
            else:
                rs, v = run_sklearn(data, len(classes), args)
        except ImportError as e:
            need = {"torch": "torch", "keras": "tensorflow (or tensorflow-cpu)", "sklearn": "scikit-learn"}[fw]
            print(f"{fw:<9} skipped: {e} (install {need} to run it)", flush=True)
            skipped[fw] = str(e)
            continue
        results += rs
        versions.update(v)

    summary = summarise(results)
    print(f"\n{'framework':<9} {'runs':>4} {'mean acc':>9} {'std':>7} {'median s':>9}")
    for fw, s in summary.items():
        print(f"{fw:<9} {s['runs']:>4} {s['mean_accuracy']:>9.4f} {s['std_accuracy']:>7.4f} {s['median_seconds']:>9.3f}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))

    if args.json_out:
        report = {
            "workspace": os.path.basename(os.path.normpath(args.workspace)),
            "backbone": {k: backbone.get(k) for k in ("name", "key", "dim")},
            "classes": classes, "split_counts": counts, "eval_split": eval_split,
            "settings": {k: getattr(args, k) for k in ("seeds", "epochs", "batch_size", "hidden", "dropout",
                                                       "threads", "lr_select", "lr_tol")},
            "load_average_at_start": load, "cpu_count": os.cpu_count(),
            "versions": versions, "results": results, "summary": summary, "skipped": skipped,
        }
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
