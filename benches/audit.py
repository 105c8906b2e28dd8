#!/usr/bin/env python3
"""Quality and speed of `headstart audit` (BENCHMARKS.md, "Data audit").

    python benches/audit.py labels WS [WS ...]   # injected label flips: precision@k, recall@2k, time
    python benches/audit.py near WS DATA         # generated near-duplicate copies: recall, false pairs

`labels`: for each workspace (already extracted, e.g. flowers5 with the default backbone) and each
rate in --rates, flips that share of the train split's labels to another class at random (seed
--seed), re-extracts a copy of the workspace with those labels through a label file (the vectors
come from the cache), times `headstart audit --json` and scores its ranked list: precision at k
(k = number of flips) and recall at 2k. The same embeddings and flips go through scikit-learn's
5-fold logistic regression (self-confidence of the given label, the reference of issue 15), timed
the same way.

`near`: copies --copies photos of DATA (resized to 50-90%, JPEG quality 60-95, cropped by up to
10%, brightness +-10%) into a new data folder beside symlinks to the originals, extracts it into a
copy of WS (the originals' vectors come from the cache), runs `headstart audit --near-threshold
0.9` (below the default, to see the margins) and reports, per threshold of the aligned pixel
similarity, the share of copies paired with their original (recall) and the pairs of distinct
originals, every one of those listed with both scores so that they can be looked at: data sets
hold the same photo recoloured, recropped or at two sizes, which are not false pairs.
"""

import argparse
import csv
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from head_reference import load_store  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / "target" / "release" / "headstart"


def headstart(ws, *args, check=True):
    out = subprocess.run([str(BIN), "--workspace", str(ws), "--quiet", *args], capture_output=True, text=True)
    if check and out.returncode not in (0, 3):
        sys.exit(f"headstart {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return out


def fresh_copy(ws, name):
    dest = REPO / "target" / "bench" / name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(ws, dest, ignore=shutil.ignore_patterns("report", "runs", "sweeps", "*.safetensors", "*.lock"))
    return dest


def flip(manifest, rate, seed):
    """Labels with `rate` of the train split flipped: (rows of path, class name, split), flipped paths."""
    rng = random.Random(seed)
    classes = manifest["classes"]
    train = [e for e in manifest["entries"] if e["split"] == "train"]
    chosen = {e["path"] for e in rng.sample(train, round(rate * len(train)))}
    rows = []
    for e in manifest["entries"]:
        c = e["class"]
        if e["path"] in chosen:
            c = rng.choice([o for o in range(len(classes)) if o != c])
        rows.append((e["path"], classes[c], e["split"]))
    return rows, chosen


def scores(ranked, flipped):
    k = len(flipped)
    p = sum(1 for path in ranked[:k] if path in flipped) / k
    r = sum(1 for path in ranked[: 2 * k] if path in flipped) / k
    return p, r


def sklearn_ranking(ws, with_cleanlab=False):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    manifest, emb, row_of = load_store(ws)
    x = np.stack([emb[row_of[e["sha256"]]] for e in manifest["entries"]])
    y = np.array([e["class"] for e in manifest["entries"]])
    start = time.perf_counter()
    p = cross_val_predict(LogisticRegression(max_iter=1000), x, y, cv=5, method="predict_proba")
    seconds = time.perf_counter() - start
    confidence = p[np.arange(len(y)), y]
    order = np.argsort(confidence, kind="stable")
    paths = [manifest["entries"][i]["path"] for i in order]
    cleanlab = None
    if with_cleanlab:
        from cleanlab.filter import find_label_issues

        # cleanlab's confident learning on the same probabilities: its flagged images ranked by
        # self-confidence, then the unflagged ones in the same order.
        flagged = find_label_issues(y, p, return_indices_ranked_by="self_confidence")
        rest = [i for i in order if i not in set(flagged)]
        cleanlab = [manifest["entries"][i]["path"] for i in (*flagged, *rest)]
    return paths, seconds, cleanlab


def labels(args):
    rows_out = []
    for ws in map(Path, args.workspaces):
        manifest = json.loads((ws / "dataset.json").read_text())
        data = manifest["data_root"]
        for rate in map(float, args.rates.split(",")):
            copy = fresh_copy(ws, f"audit-labels-{ws.name}-{rate}")
            rows, flipped = flip(manifest, rate, args.seed)
            label_file = copy / "flipped.csv"
            with open(label_file, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows([("path", "label", "split"), *rows])
            headstart(copy, "extract", "--data", data, "--model", manifest["backbone"]["name"],
                      "--labels", str(label_file), "--split-column", "split")
            times, ranked = [], None
            for _ in range(args.rounds):
                start = time.perf_counter()
                out = headstart(copy, "audit", "--json")
                times.append(time.perf_counter() - start)
                ranked = [l["path"] for l in json.loads(out.stdout)["label_issues"]]
            p, r = scores(ranked, flipped)
            sk_ranked, sk_seconds, cl_ranked = sklearn_ranking(copy, args.cleanlab)
            sp, sr = scores(sk_ranked, flipped)
            row = dict(data=ws.name, images=len(manifest["entries"]), rate=rate, flips=len(flipped),
                       audit_precision=p, audit_recall=r, audit_listed=len(ranked),
                       audit_seconds=statistics.median(times), sklearn_precision=sp, sklearn_recall=sr,
                       sklearn_seconds=sk_seconds)
            if cl_ranked:
                row["cleanlab_precision"], row["cleanlab_recall"] = scores(cl_ranked, flipped)
            print(json.dumps(row), flush=True)
            rows_out.append(row)
    print(f"\n{platform.node()} {platform.processor()} python {platform.python_version()}")
    print("| data | images | flips | audit p@k | audit r@2k | audit s | sklearn LR p@k | r@2k | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows_out:
        print(f"| {r['data']} | {r['images']} | {r['flips']} ({r['rate']:.0%}) | {r['audit_precision']:.3f} | "
              f"{r['audit_recall']:.3f} | {r['audit_seconds']:.2f} | {r['sklearn_precision']:.3f} | "
              f"{r['sklearn_recall']:.3f} | {r['sklearn_seconds']:.2f} |")


def degrade(src, dest, rng):
    from PIL import Image, ImageEnhance

    img = Image.open(src).convert("RGB")
    w, h = img.size
    crop = rng.uniform(0, 0.10)
    dx, dy = int(w * crop * rng.random()), int(h * crop * rng.random())
    img = img.crop((dx, dy, dx + int(w * (1 - crop)), dy + int(h * (1 - crop))))
    scale = rng.uniform(0.5, 0.9)
    img = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))), Image.BILINEAR)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.9, 1.1))
    img.save(dest, quality=rng.randint(60, 95))


def near(args):
    ws, data = Path(args.workspace), Path(args.data).resolve()
    rng = random.Random(args.seed)
    root = REPO / "target" / "bench" / "audit-near-data"
    if root.exists():
        shutil.rmtree(root)
    originals = sorted(p for p in data.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    for p in originals:
        link = root / p.relative_to(data)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(p)
    copy_of = {}
    for i, src in enumerate(rng.sample(originals, args.copies)):
        rel = src.relative_to(data)
        dest = root / rel.parent / f"zz_copy{i:04d}_{rel.stem}.jpg"
        degrade(src, dest, rng)
        copy_of[str(dest.relative_to(root))] = str(rel)
    copy = fresh_copy(ws, "audit-near-ws")
    manifest = json.loads((ws / "dataset.json").read_text())
    headstart(copy, "extract", "--data", str(root), "--model", manifest["backbone"]["name"])
    start = time.perf_counter()
    out = json.loads(headstart(copy, "audit", "--json", "--near-threshold", str(args.floor)).stdout)
    seconds = time.perf_counter() - start
    best = {}
    false_pairs = []
    for pair in out["near_duplicates"]:
        a, b, s = pair["a"]["path"], pair["b"]["path"], pair["pixels"]
        origin = lambda p: copy_of.get(p, p)  # noqa: E731
        if origin(a) == origin(b):
            for c in (a, b):
                if c in copy_of:
                    best[c] = max(best.get(c, 0.0), s)
        else:
            false_pairs.append((s, pair["similarity"], a, b))
    # A copy paired with a file other than its original stands for its original: the pair is
    # counted once, by the originals, at its best score. Originals with the same bytes (exact
    # duplicates, the audit's other list) are one.
    import hashlib

    digest = {}

    def same_bytes(rel):
        if rel not in digest:
            digest[rel] = hashlib.sha256((data / rel).read_bytes()).hexdigest()
        return digest[rel]

    by_origin = {}
    for s, cos, a, b in false_pairs:
        key = tuple(sorted((copy_of.get(a, a), copy_of.get(b, b))))
        if same_bytes(key[0]) != same_bytes(key[1]) and s > by_origin.get(key, (-1.0,))[0]:
            by_origin[key] = (s, cos)
    false_pairs = sorted(((s, cos, a, b) for (a, b), (s, cos) in by_origin.items()), reverse=True)
    copy_scores = sorted(best.get(c, 0.0) for c in copy_of)
    print(f"{len(originals)} originals, {len(copy_of)} copies; audit {seconds:.1f} s; lowest copy scores: "
          f"{[round(s, 3) for s in copy_scores[:5]]}")
    print("| aligned pixel threshold | copies found | pairs of distinct originals |")
    print("| --- | --- | --- |")
    for t in (0.90, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99):
        found = sum(1 for s in copy_scores if s >= t) / len(copy_scores)
        wrong = sum(1 for s, *_ in false_pairs if s >= t)
        print(f"| {t:.2f} | {found:.3f} | {wrong} |")
    print("pairs of distinct originals, most alike first (pixels, cosine, a, b):")
    for s, cos, a, b in false_pairs[: args.show]:
        print(f"  {s:.3f} {cos:.3f} {a} {b}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("labels")
    p.add_argument("workspaces", nargs="+")
    p.add_argument("--rates", default="0.05,0.10")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cleanlab", action="store_true",
                   help="also rank with cleanlab's find_label_issues (pip install cleanlab)")
    p = sub.add_parser("near")
    p.add_argument("workspace")
    p.add_argument("data")
    p.add_argument("--copies", type=int, default=300)
    p.add_argument("--floor", type=float, default=0.9, help="--near-threshold of the audit run")
    p.add_argument("--show", type=int, default=60, help="pairs of distinct files listed")
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    {"labels": labels, "near": near}[args.command](args)


if __name__ == "__main__":
    main()
