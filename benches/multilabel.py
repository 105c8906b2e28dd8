"""Multi-label accuracy on real photos: headstart's head and one-vs-rest baseline against
scikit-learn's OneVsRestClassifier(LogisticRegression) on the same embeddings.

Why: the issue asks that the head's mAP be judged against scikit-learn's one-vs-rest logistic
regression, and there is no public multi-label set on these machines. Mosaics of the shared
flowers5 photos (CC-BY 2.0 by their Flickr authors; see ../shared/data/README.md) give one with
a known structure: a 2x2 grid of two photos (one on each diagonal), labelled with both photos'
classes, `a|b`, or with one class when both photos share it (a third of the mosaics). Photos are
assigned to train/val/test first (80/10/10) and a mosaic uses photos of one split only, so no
photo is seen in training and in the test.

    python benches/multilabel.py [--count 1000] [--seeds 0 1 2] [--bin target/release/headstart]

Then per seed: `headstart extract --labels tags.csv --label-column tags --split-column split`
(once), `train-head --baseline --seed S`, `eval --split test`; and scikit-learn on the cached
embeddings, standardised, C chosen on validation mAP over the same grid. Prints a table and one
`BENCH_JSON {...}` line. Needs numpy, pillow, safetensors, scikit-learn.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))
from head_reference import load_store  # noqa: E402  (the cache reader the other benches use)

FLOWERS = ROOT.parent / "shared" / "data" / "flowers5"
CELL = 160


def photos():
    """{class: [path]} of flowers5, sorted, so the mosaics depend on the seed only."""
    out = {}
    for folder in sorted(p for p in FLOWERS.iterdir() if p.is_dir()):
        out[folder.name] = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not out:
        sys.exit(f"no photos under {FLOWERS}")
    return out


def cell(path):
    with Image.open(path) as img:
        return ImageOps.fit(ImageOps.exif_transpose(img).convert("RGB"), (CELL, CELL), Image.BICUBIC)


def write_mosaics(out: Path, count: int, seed: int) -> Path:
    """Writes `count` mosaics and out/tags.csv (path, tags, split); returns the CSV's path."""
    rng = random.Random(seed)
    by_class = photos()
    pools = {}
    for c, paths in by_class.items():
        shuffled = paths[:]
        rng.shuffle(shuffled)
        n = len(shuffled)
        cut = [int(n * 0.8), int(n * 0.9)]
        pools[c] = {"train": shuffled[: cut[0]], "val": shuffled[cut[0] : cut[1]], "test": shuffled[cut[1] :]}
    classes = sorted(by_class)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        split = rng.choices(["train", "val", "test"], weights=[8, 1, 1])[0]
        a = rng.choice(classes)
        b = a if rng.random() < 1 / 3 else rng.choice([c for c in classes if c != a])
        pa, pb = rng.choice(pools[a][split]), rng.choice(pools[b][split])
        while pb == pa:
            pb = rng.choice(pools[b][split])
        ca, cb = cell(pa), cell(pb)
        mosaic = Image.new("RGB", (2 * CELL, 2 * CELL))
        for (x, y), tile in [((0, 0), ca), ((1, 1), ca), ((1, 0), cb), ((0, 1), cb)]:
            mosaic.paste(tile, (x * CELL, y * CELL))
        name = f"images/m{i:05d}.jpg"
        mosaic.save(out / name, quality=92)
        rows.append((name, "|".join(sorted({a, b})), split))
    tags = out / "tags.csv"
    with open(tags, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "tags", "split"])
        w.writerows(rows)
    return tags


def run(cmd):
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if done.returncode not in (0, 3):
        sys.exit(f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def load_targets(ws: Path):
    """{split: (x [n, D], y 0/1 [n, labels])} from a multi-label workspace's cache."""
    manifest, emb, row_of = load_store(ws)
    k = len(manifest["classes"])
    rows, targets = {}, {}
    for e in manifest["entries"]:
        row = row_of.get(e["sha256"].lower())
        if row is None:
            continue
        t = np.zeros(k, dtype=np.float32)
        t[e["labels"]] = 1
        rows.setdefault(e["split"], []).append(row)
        targets.setdefault(e["split"], []).append(t)
    return manifest["classes"], {s: (np.asarray(emb[r], dtype=np.float64), np.asarray(targets[s])) for s, r in rows.items()}


def sklearn_ovr(splits, threads, ours_c):
    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    (x, y), (xv, yv), (xt, yt) = splits["train"], splits["val"], splits["test"]
    scaler = StandardScaler().fit(x)
    x, xv, xt = scaler.transform(x), scaler.transform(xv), scaler.transform(xt)

    def m_ap(y_true, p):
        present = y_true.sum(0) > 0
        return float(average_precision_score(y_true[:, present], p[:, present], average="macro"))

    sweep = []
    with threadpool_limits(threads):
        for c in np.logspace(-3, 2, 11):
            model = OneVsRestClassifier(LogisticRegression(C=c, max_iter=5000)).fit(x, y)
            sweep.append((m_ap(yv, model.predict_proba(xv)), float(c), model))
        same = OneVsRestClassifier(LogisticRegression(C=ours_c, max_iter=5000)).fit(x, y)
    val, c, model = max(sweep, key=lambda s: s[0])
    return {"C": c, "val_map": val, "test_map": m_ap(yt, model.predict_proba(xt)),
            "same_c_val_map": m_ap(yv, same.predict_proba(xv)), "same_c_test_map": m_ap(yt, same.predict_proba(xt))}, sklearn.__version__


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--bin", default=ROOT / "target" / "release" / "headstart")
    parser.add_argument("--out", default=ROOT / "target" / "bench" / "multilabel")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    out = Path(args.out)
    tags = out / "tags.csv"
    if not tags.is_file():
        print(f"writing {args.count} mosaics to {out} (not timed)", file=sys.stderr)
        write_mosaics(out, args.count, seed=0)
    ws = out / "ws"
    hs = [args.bin, "--workspace", ws, "--json", "--quiet"]
    run([*hs, "extract", "--data", out, "--labels", tags, "--label-column", "tags", "--split-column", "split"])
    classes, splits = load_targets(ws)
    sizes = {s: len(splits[s][0]) for s in ("train", "val", "test")}
    results = []
    for seed in args.seeds:
        trained = json.loads(run([*hs, "train-head", "--baseline", "--seed", seed]))
        ours_c = 1 / trained["baseline"]["chosen_alpha"]
        summary = json.loads(run([*hs, "eval", "--split", "test"]))
        for m in summary["multi_label"]:
            e = m["evaluation"]
            results.append({"seed": seed, "model": m["model"], "map": e["mean_average_precision"],
                            "subset_accuracy": e["subset_accuracy"], "hamming_loss": e["hamming_loss"],
                            "micro_f1": e["micro_f1"]})
    peer, version = sklearn_ovr(splits, args.threads, ours_c)

    def row(model):
        rs = [r for r in results if r["model"] == model]
        cell = lambda k: f"{statistics.mean(r[k] for r in rs):.3f} ± {statistics.pstdev(r[k] for r in rs):.3f}"
        return f"| headstart {model} | {cell('map')} | {cell('subset_accuracy')} | {cell('hamming_loss')} | {cell('micro_f1')} |"

    print(f"{args.count} mosaics of flowers5 photos, {len(classes)} labels; train/val/test {sizes['train']}/{sizes['val']}/{sizes['test']}; seeds {args.seeds}")
    print("| classifier | test mAP | subset accuracy | Hamming loss | micro F1 |")
    print("| --- | --- | --- | --- | --- |")
    for model in ("head", "baseline"):
        print(row(model))
    print(f"| scikit-learn {version} OneVsRest(LogisticRegression), the baseline's C = {ours_c:.3g} | {peer['same_c_test_map']:.3f} | | | |")
    print(f"| scikit-learn {version} OneVsRest(LogisticRegression), C = {peer['C']:.3g} by val mAP | {peer['test_map']:.3f} | | | |")
    print("BENCH_JSON " + json.dumps({"sizes": sizes, "classes": classes, "headstart": results, "baseline_c": ours_c, "sklearn": peer, "sklearn_version": version}))


if __name__ == "__main__":
    main()
