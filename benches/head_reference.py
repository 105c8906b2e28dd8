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

`--hidden`, `--dropout`, `--lr` and `--weight-decay` set the torch head (and the Keras head's
first three); `--weight-decay` is decoupled as in headstart's head (AdamW on the Linear kernels:
W <- W - lr * wd * W before the Adam step; biases and BatchNorm undecayed).

With `--cv K` nothing is scored on a held-out split: train + val are cross-validated on
headstart's own K folds (`headstart_folds`, src/folds.rs reproduced), as `headstart sweep` does.
torch runs every configuration of the --hidden x --dropout x --lr x --weight-decay grid in turn;
sklearn is GridSearchCV(Pipeline(StandardScaler, LogisticRegression)) over `--c`, the scaler
fitted per fold; knn is KNeighborsClassifier(metric="cosine", algorithm="brute") per `--k`.

The evaluation split is `test` when the workspace has test images, else `val`. Threads are
limited (default 2 intra-op, 1 inter-op) so timings are comparable on a shared machine.

Run from the repository root with numpy, safetensors and whichever frameworks you want
(torch; tensorflow or tensorflow-cpu for keras; scikit-learn); a missing framework is skipped
with a message:

    python benches/head_reference.py WORKSPACE [--seeds 0 1 2] [--eval-split val|test]
        [--frameworks torch keras sklearn] [--json-out results.json]
    python benches/head_reference.py WORKSPACE --cv 5 --frameworks torch sklearn knn
        [--hidden 256 512] [--dropout 0.2 0.5] [--lr 3e-4 1e-3] [--weight-decay 0 1e-4] [--c ...] [--k 10]

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

FRAMEWORKS = ("torch", "keras", "sklearn", "knn")


# ---------------------------------------------------------------------------------------------
# Workspace


def read_manifest(folder):
    """The workspace's dataset.json, parsed."""
    with open(os.path.join(folder, "dataset.json"), encoding="utf-8") as f:
        return json.load(f)


def load_store(folder):
    """Returns (the manifest, the embeddings f32 [rows, D], {file sha256 hex: row})."""
    manifest = read_manifest(folder)
    store = load_file(os.path.join(folder, "embeddings", manifest["backbone"]["key"], manifest["store"]))
    emb, sha = store["embeddings"], store["sha256"]
    if emb.shape[0] != sha.shape[0]:
        sys.exit(f"store has {emb.shape[0]} embeddings but {sha.shape[0]} hashes")
    return manifest, emb, {bytes(h).hex(): i for i, h in enumerate(sha)}


def split_rows(manifest, row_of, what="embedding"):
    """{split: (rows int64 [n], labels int64 [n])} of the manifest's entries, in manifest order,
    where row_of maps a file's sha256 hex to its row in the cache; entries without one are left
    out with a warning."""
    class_index = {c: i for i, c in enumerate(manifest["classes"])}
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
        print(f"warning: {missing} entries have no cached {what} and are left out", file=sys.stderr)
    return {s: (np.asarray(r, dtype=np.int64), np.asarray(labels[s], dtype=np.int64)) for s, r in rows.items()}


def load_workspace(folder):
    """Returns (classes, backbone, {split: (x f32 [n, D], y int64 [n])}) for the splits present."""
    manifest, emb, row_of = load_store(folder)
    splits = {s: (np.ascontiguousarray(emb[r], dtype=np.float32), y)
              for s, (r, y) in split_rows(manifest, row_of).items()}
    return list(manifest["classes"]), manifest["backbone"], splits


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


def headstart_folds(folder, k):
    """The fold of each train and val image of a workspace, in the order [train rows, val rows]
    of load_workspace: headstart's rule (src/folds.rs) reproduced. Per class, groups of files
    sharing a base name up to `_nohash_` are ordered by the first 8 bytes of the SHA-256 of
    their key (big-endian; ties by key), laid on a line of the class's N files, and a group goes
    to fold k * (2 * files_before + size) // (2 * N), rotated by the class name's point mod k."""
    import hashlib

    def point(text):
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")

    with open(os.path.join(folder, "dataset.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    classes = list(manifest["classes"])
    # The same order as load_workspace's train rows then val rows (entries without an embedding
    # are left out there too, so keep only those whose hash is in the store).
    store = load_file(os.path.join(folder, "embeddings", manifest["backbone"]["key"], manifest["store"]))
    cached = {bytes(h).hex() for h in store["sha256"]}
    entries = [e for split in ("train", "val") for e in manifest["entries"]
               if e["split"] == split and e["sha256"].lower() in cached]
    groups = {}
    for i, e in enumerate(entries):
        c = e["class"] if isinstance(e["class"], int) else classes.index(e["class"])
        base = e["path"].rsplit("/", 1)[-1]
        key = base[: base.index("_nohash_")] if "_nohash_" in base else base
        groups.setdefault(c, {}).setdefault(key, []).append(i)
    fold = np.full(len(entries), -1, dtype=np.int64)
    for c, class_groups in groups.items():
        total = sum(len(v) for v in class_groups.values())
        offset = point(classes[c]) % k
        before = 0
        for _, key in sorted((point(key), key) for key in class_groups):
            files = class_groups[key]
            fold[files] = (k * (2 * before + len(files)) // (2 * total) + offset) % k
            before += len(files)
    return fold


def accuracy(pred, y):
    return float(np.mean(np.asarray(pred) == y))


# ---------------------------------------------------------------------------------------------
# PyTorch


def torch_setup(threads):
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set in this process
    return torch


def make_head(torch, d, n_classes, hidden, dropout):
    """The head as headstart defines it, initialised from torch's current seed; returns (model,
    its Linear kernels). hidden None: a single Linear(d, K)."""
    from torch import nn

    if hidden is None:
        model = nn.Sequential(nn.Linear(d, n_classes))
    else:
        model = nn.Sequential(
            nn.BatchNorm1d(d, eps=1e-3, momentum=0.01),
            nn.Dropout(dropout),
            nn.Linear(d, hidden),
            nn.ReLU(),
            nn.BatchNorm1d(hidden, eps=1e-3, momentum=0.01),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )
    kernels = []
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
            kernels.append(m.weight)
    return model, kernels


def torch_fit(torch, xtr_t, ytr_t, n_classes, seed, hp):
    """Trains the head on tensors xtr_t, ytr_t with hp's hidden, dropout, lr, weight_decay,
    epochs and batch_size; returns (model in eval mode, seconds of the epochs, final batch loss,
    single-sample batches skipped). The optimiser is AdamW on the Linear kernels with `weight_decay`
    (decoupled: W <- W - lr * wd * W before the Adam step, as headstart's head) and plain Adam on
    everything else; with weight_decay 0 that is Adam throughout."""
    import torch.nn.functional as F

    d, n = xtr_t.shape[1], xtr_t.shape[0]
    torch.manual_seed(seed)
    model, kernels = make_head(torch, d, n_classes, hp.hidden, hp.dropout)
    others = [p for p in model.parameters() if all(p is not k for k in kernels)]
    groups = [{"params": kernels, "weight_decay": hp.weight_decay}, {"params": others, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=hp.lr, betas=(0.9, 0.999), eps=1e-7)
    gen = torch.Generator().manual_seed(seed)
    skipped = 0
    loss = None
    model.train()
    start = time.perf_counter()
    for _ in range(hp.epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, hp.batch_size):
            idx = perm[i : i + hp.batch_size]
            if len(idx) < 2:  # BatchNorm1d cannot train on a single sample
                skipped += 1
                continue
            loss = F.cross_entropy(model(xtr_t[idx]), ytr_t[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    seconds = time.perf_counter() - start
    model.eval()
    return model, seconds, None if loss is None else loss.item(), skipped


def run_torch(data, n_classes, seeds, args):
    torch = torch_setup(args.threads)
    (xtr, ytr), (xev, yev) = data["train"], data["eval"]
    xtr_t, ytr_t, xev_t = torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xev)
    hp = hyper(args)[0]
    results = []
    for seed in seeds:
        model, seconds, loss, skipped = torch_fit(torch, xtr_t, ytr_t, n_classes, seed, hp)
        with torch.no_grad():
            pred = model(xev_t).argmax(1).numpy()
        r = {"framework": "torch", "seed": seed, "accuracy": accuracy(pred, yev), "seconds": seconds,
             "final_batch_loss": loss}
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
    hp = hyper(args)[0]
    if hp.weight_decay:
        sys.exit("keras: --weight-decay is not implemented for the Keras head")
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
            keras.layers.Dropout(hp.dropout),
            keras.layers.Dense(hp.hidden, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(hp.dropout),
            keras.layers.Dense(n_classes, activation="softmax"),
        ])
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=hp.lr, epsilon=1e-7),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        timer = EpochTimes()
        start = time.perf_counter()
        hist = model.fit(xtr, ytr, batch_size=hp.batch_size, epochs=hp.epochs, shuffle=True,
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


def hyper(args):
    """The head configurations of the grid --hidden x --dropout x --lr x --weight-decay, in that
    nesting (the last varies fastest), each with --epochs and --batch-size."""
    from itertools import product
    from types import SimpleNamespace

    return [SimpleNamespace(hidden=h, dropout=d, lr=lr, weight_decay=wd, epochs=args.epochs, batch_size=args.batch_size)
            for h, d, lr, wd in product(args.hidden, args.dropout, args.lr, args.weight_decay)]


# ---------------------------------------------------------------------------------------------
# Cross-validation on train + val with headstart's folds (--cv K)


def cv_torch(data, n_classes, args):
    """Every configuration of the grid on every fold, one after another, for each of --seeds.
    Seconds per configuration and seed: gathering the fold's rows, the epochs and predicting the
    held-out fold, all folds."""
    torch = torch_setup(args.threads)
    x, y, fold = data["x"], data["y"], data["fold"]
    results = []
    for seed in args.seeds:
        for hp in hyper(args):
            start = time.perf_counter()
            accs = []
            for f in range(args.cv):
                train, held = fold != f, fold == f
                xt, yt = torch.from_numpy(x[train]), torch.from_numpy(y[train])
                model, _, _, _ = torch_fit(torch, xt, yt, n_classes, seed, hp)
                with torch.no_grad():
                    accs.append(accuracy(model(torch.from_numpy(x[held])).argmax(1).numpy(), y[held]))
            r = {"framework": "torch", "seed": seed, "config": vars(hp), "fold_accuracy": accs,
                 "accuracy": float(np.mean(accs)), "seconds": time.perf_counter() - start}
            results.append(r)
            print_row(r, note=f"hidden={hp.hidden} dropout={hp.dropout} lr={hp.lr} wd={hp.weight_decay}")
    return results, {"torch": torch.__version__}


def cv_splits(fold, k):
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(k)]


def cv_sklearn(data, n_classes, args):
    """GridSearchCV of Pipeline(StandardScaler, LogisticRegression) over --c on the folds,
    scaling fitted per fold; the best C by mean accuracy, ties by lower log loss (headstart's
    rule). Seconds: the grid search (no refit)."""
    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    pipe = make_pipeline(StandardScaler(), LogisticRegression(solver="lbfgs", tol=args.lr_tol, max_iter=5000))
    search = GridSearchCV(pipe, {"logisticregression__C": args.c}, cv=cv_splits(data["fold"], args.cv),
                          scoring={"accuracy": "accuracy", "log_loss": "neg_log_loss"}, refit=False)
    with threadpool_limits(limits=args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        search.fit(data["x"], data["y"])
        seconds = time.perf_counter() - start
    cv = search.cv_results_
    grid = [{"C": float(c), "accuracy": float(a), "log_loss": float(-l)}
            for c, a, l in zip(args.c, cv["mean_test_accuracy"], cv["mean_test_log_loss"])]
    best = min(grid, key=lambda g: (-g["accuracy"], g["log_loss"]))
    r = {"framework": "sklearn", "seed": None, "accuracy": best["accuracy"], "C": best["C"], "seconds": seconds,
         "grid": grid}
    print_row(r, note=f"C={best['C']:g} by {args.cv}-fold CV")
    return [r], {"scikit-learn": sklearn.__version__}


def cv_knn(data, n_classes, args):
    """KNeighborsClassifier(metric="cosine", algorithm="brute") for each --k and both vote
    weights on the folds; seconds: fit and predict, all folds."""
    import sklearn
    from sklearn.neighbors import KNeighborsClassifier
    from threadpoolctl import threadpool_limits

    x, y = data["x"], data["y"]
    results = []
    with threadpool_limits(limits=args.threads):
        for k in args.k:
            start = time.perf_counter()
            accs = []
            for train, held in cv_splits(data["fold"], args.cv):
                model = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(x[train], y[train])
                accs.append(accuracy(model.predict(x[held]), y[held]))
            r = {"framework": "knn", "seed": None, "k": k, "fold_accuracy": accs, "accuracy": float(np.mean(accs)),
                 "seconds": time.perf_counter() - start}
            results.append(r)
            print_row(r, note=f"k={k} uniform, cosine, brute")
    return results, {"scikit-learn": sklearn.__version__}


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
    p.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=["torch", "keras", "sklearn"],
                   help="knn only with --cv")
    p.add_argument("--lr-select", choices=["auto", "val", "cv"], default="auto",
                   help="how sklearn picks C (auto: val unless val is the evaluation split, else 5-fold CV)")
    p.add_argument("--lr-tol", type=float, default=1e-4,
                   help="scikit-learn's tol (its default, 1e-4, can stop many-class fits far from the optimum)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--hidden", type=int, nargs="+", default=[512])
    p.add_argument("--dropout", type=float, nargs="+", default=[0.5])
    p.add_argument("--lr", type=float, nargs="+", default=[1e-3])
    p.add_argument("--weight-decay", type=float, nargs="+", default=[0.0],
                   help="decoupled (AdamW) decay of the Linear kernels, as headstart's head")
    p.add_argument("--cv", type=int, metavar="K",
                   help="cross-validate on train + val with headstart's K folds instead (torch: every configuration "
                        "of the --hidden/--dropout/--lr/--weight-decay grid; sklearn: GridSearchCV over --c; "
                        "knn: KNeighborsClassifier for each --k)")
    p.add_argument("--c", type=float, nargs="+", default=list(np.logspace(-2, 3, 11)), help="C grid of --cv sklearn")
    p.add_argument("--k", type=int, nargs="+", default=[10], help="neighbours of --cv knn")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (inter-op: 1)")
    p.add_argument("--json-out")
    args = p.parse_args()

    loader = load_arrays if os.path.isfile(args.workspace) else load_workspace
    classes, backbone, splits = loader(args.workspace)
    counts = {s: int(len(y)) for s, (_, y) in sorted(splits.items())}
    name = os.path.basename(os.path.normpath(args.workspace))
    dim = splits["train"][0].shape[1]
    if args.cv:
        if loader is load_arrays:
            sys.exit("--cv needs a workspace folder: the folds come from its file names")
        if "keras" in args.frameworks:
            sys.exit("--cv: keras is not implemented")
        parts = [splits[s] for s in ("train", "val") if s in splits]
        data = {"x": np.concatenate([x for x, _ in parts]), "y": np.concatenate([y for _, y in parts]),
                "fold": headstart_folds(args.workspace, args.cv)}
        eval_split = f"{args.cv}-fold CV on train + val"
        print(f"workspace {name}: {len(classes)} classes, D={dim}, splits {counts}, {eval_split}, fold sizes "
              f"{np.bincount(data['fold'], minlength=args.cv).tolist()} (headstart's folds)")
    else:
        if "knn" in args.frameworks:
            sys.exit("knn runs only with --cv")
        if len(hyper(args)) > 1:
            sys.exit("several --hidden/--dropout/--lr/--weight-decay values need --cv")
        eval_split = args.eval_split or ("test" if "test" in splits else "val")
        for s in ("train", eval_split):
            if s not in splits:
                sys.exit(f"the workspace has no {s} images")
        data = {"train": splits["train"], "eval": splits[eval_split], "splits": splits, "eval_split": eval_split}
        print(f"workspace {name}: {len(classes)} classes, D={dim} ({backbone.get('name', backbone['key'])}), "
              f"splits {counts}, evaluating on {eval_split}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    if load is not None:
        # Timings mean little when other processes compete for the cores: PyTorch with 2
        # threads on 2 busy cores ran 10-100x slower than alone.
        print(f"load average {load[0]:.2f} on {os.cpu_count()} CPUs, {args.threads} intra-op threads")
    print(f"{'framework':<9} {'seed':>4} {'accuracy':>9} {'seconds':>9}")

    results, versions, skipped = [], {"python": platform.python_version(), "numpy": np.__version__}, {}
    for fw in args.frameworks:
        try:
            if args.cv:
                rs, v = {"torch": cv_torch, "sklearn": cv_sklearn, "knn": cv_knn}[fw](data, len(classes), args)
            elif fw == "torch":
                rs, v = run_torch(data, len(classes), args.seeds, args)
            elif fw == "keras":
                rs, v = run_keras(data, len(classes), args.seeds, args)
            else:
                rs, v = run_sklearn(data, len(classes), args)
        except ImportError as e:
            need = {"torch": "torch", "keras": "tensorflow (or tensorflow-cpu)"}.get(fw, "scikit-learn")
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
            "settings": {k: getattr(args, k) for k in ("seeds", "epochs", "batch_size", "hidden", "dropout", "lr",
                                                       "weight_decay", "threads", "lr_select", "lr_tol", "cv", "c", "k")},
            "load_average_at_start": load, "cpu_count": os.cpu_count(),
            "versions": versions, "results": results, "summary": summary, "skipped": skipped,
        }
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
