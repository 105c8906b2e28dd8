"""Is a reduced-precision or approximate cosine kNN worth offering? Accuracy (and, for the
approximate index, time) of 5-fold kNN on the folds `cargo bench --bench knn` uses.

Why: headstart's kNN (src/knn.rs) is exact, in f32, and bound by its similarity products
(2 * n_query * n_train * D FLOPs). Two ways to go faster exist: products in lower precision
(f16 or bf16 storage, int8 codes) and an approximate index that compares each query with a
fraction of the training rows (an inverted file, faiss's IndexIVFFlat). This measures what
each costs in accuracy on real embeddings, so the answer rests on numbers:

- exact f32: the reference (headstart's and scikit-learn's result);
- f16, bf16: unit rows rounded to that format, products in f32 (what a reduced-precision
  GEMM with f32 accumulation computes);
- int8: unit rows scaled per row to [-127, 127] and rounded, products exact (f64) and divided
  by both rows' scales;
- IVF: faiss IndexIVFFlat on inner products of unit rows, `nlist` lists trained on the fold's
  training rows, `nprobe` of them searched; its time beside faiss's exact IndexFlatIP.

Each variant reports 5-fold accuracy (k neighbours, uniform votes, ties to the lowest class as
headstart breaks them) and recall: the share of the exact top-k found.

    python3 benches/knn_precision.py ARRAYS.safetensors [--k 10] [--nlist 256] [--nprobe 4 16 64]
        [--variants f16 bf16 int8] [--no-faiss]

Prints a table and one `BENCH_JSON {...}` line. faiss comes from the faiss-cpu package; without
it the IVF rows are skipped with a message.
"""

import argparse
import json
import time

import numpy as np
from safetensors.numpy import load_file

FOLDS = 5
BLOCK = 2048


def unit(x):
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1)


def bf16(x):
    """Rounds f32 to the nearest bfloat16 (ties to even) and back."""
    bits = x.astype(np.float32).view(np.uint32)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return rounded.astype(np.uint32).view(np.float32)


def int8(x):
    """Per-row int8 codes, returned scaled back (in f64, so the products are the integer
    products divided by both rows' scales, exactly as an int8 GEMM would give them)."""
    scale = 127 / np.maximum(np.abs(x).max(axis=1, keepdims=True), 1e-12)
    return np.round(x * scale).astype(np.float64) / scale


def top_k(train, queries, k):
    """Indices of each query's k largest products with the training rows, best first
    (exact top-k by blocks of queries)."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), BLOCK):
        sims = queries[start:start + BLOCK] @ train.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, 1), axis=1, kind="stable")
        out[start:start + BLOCK] = np.take_along_axis(part, order, 1)
    return out


def vote(neighbours, y_train, n_classes):
    counts = np.zeros((len(neighbours), n_classes))
    np.add.at(counts, (np.repeat(np.arange(len(neighbours)), neighbours.shape[1]), y_train[neighbours].ravel()), 1)
    return counts.argmax(1)


def recall(found, exact):
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arrays")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--nlist", type=int, default=256)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--variants", nargs="+", help="only these of exact, f16, bf16, int8 (exact always runs)")
    parser.add_argument("--no-faiss", action="store_true", help="leave out the faiss rows")
    args = parser.parse_args()

    tensors = load_file(args.arrays)
    x = unit(np.ascontiguousarray(tensors["x_train"], dtype=np.float32))
    y = tensors["y_train"].astype(np.int64)
    n_classes = int(y.max()) + 1
    rows = np.arange(len(x))
    try:
        import faiss
    except ImportError:
        faiss = None
        print("faiss is not installed (pip install faiss-cpu): the IVF rows are skipped")
    if args.no_faiss:
        faiss = None

    variants = {"exact f32": lambda v: v, "f16": lambda v: v.astype(np.float16).astype(np.float32),
                "bf16": bf16, "int8": int8}
    if args.variants:
        variants = {k: v for k, v in variants.items() if k == "exact f32" or k in args.variants}
    results = {name: {"correct": 0, "recall": [], "seconds": 0.0} for name in variants}
    ivf_names = [f"IVF nlist {args.nlist} nprobe {p}" for p in args.nprobe] if faiss else []
    for name in (["faiss exact (IndexFlatIP)"] + ivf_names) if faiss else []:
        results[name] = {"correct": 0, "recall": [], "seconds": 0.0}
    for fold in range(FOLDS):
        train, test = rows % FOLDS != fold, rows % FOLDS == fold
        xt, yt, xq, yq = x[train], y[train], x[test], y[test]
        exact = None
        for name, convert in variants.items():
            started = time.perf_counter()
            found = top_k(convert(xt), convert(xq), args.k)
            results[name]["seconds"] += time.perf_counter() - started
            exact = found if exact is None else exact
            results[name]["correct"] += int((vote(found, yt, n_classes) == yq).sum())
            results[name]["recall"].append(recall(found, exact))
        if faiss:
            started = time.perf_counter()
            flat = faiss.IndexFlatIP(x.shape[1])
            flat.add(xt)
            _, found = flat.search(xq, args.k)
            r = results["faiss exact (IndexFlatIP)"]
            r["seconds"] += time.perf_counter() - started
            r["correct"] += int((vote(found, yt, n_classes) == yq).sum())
            r["recall"].append(recall(found, exact))
            started = time.perf_counter()
            quantizer = faiss.IndexFlatIP(x.shape[1])
            ivf = faiss.IndexIVFFlat(quantizer, x.shape[1], args.nlist, faiss.METRIC_INNER_PRODUCT)
            ivf.train(xt)
            ivf.add(xt)
            built = time.perf_counter() - started
            for name, nprobe in zip(ivf_names, args.nprobe):
                ivf.nprobe = nprobe
                started = time.perf_counter()
                _, found = ivf.search(xq, args.k)
                r = results[name]
                r["seconds"] += built + time.perf_counter() - started
                r["correct"] += int((vote(found, yt, n_classes) == yq).sum())
                r["recall"].append(recall(found, exact))
        print(f"  fold {fold} done")
    print(f"{args.arrays}: {x.shape[0]} x {x.shape[1]}, {FOLDS}-fold cosine kNN, k = {args.k}, uniform votes")
    print("| variant | accuracy | recall of the exact top-k | seconds (5 folds) |")
    print("| --- | --- | --- | --- |")
    summary = {}
    for name, r in results.items():
        summary[name] = {"accuracy": r["correct"] / len(x), "recall": float(np.mean(r["recall"])), "seconds": r["seconds"]}
        print(f"| {name} | {summary[name]['accuracy']:.4f} | {summary[name]['recall']:.4f} | {r['seconds']:.1f} |")
    print("BENCH_JSON " + json.dumps({"k": args.k, "rows": len(x), "variants": summary}))


if __name__ == "__main__":
    main()
