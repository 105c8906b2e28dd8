"""Does augmentation or test-time augmentation help a head on frozen features? BENCHMARKS.md,
"Augmented views and test-time augmentation".

For each data set and backbone, in one workspace:
  1. `extract --tta`               plain vectors of every image, mirrored views of val and test;
  2. `extract --tta --augment 4`   4 augmented views of every train image (only those computed);
  3. `extract --tta --augment 8`   4 more (views 0-3 are reused, as the cache keys them by index).
After each step the head is trained with 3 seeds at 5 and 20 epochs, with the views it has
(policy with-plain; after step 3 also views-only), and evaluated on the held-out split with and
without --tta. The logistic-regression baseline is fitted once on the plain vectors (it never
uses views) and evaluated with and without --tta: the reference any gain must beat.

Data: flowers5 (hash split 80/10/10, test), hymenoptera (its own train/val folders; the val
folder is the held-out split), and a 10-class cifar10 subset of 5000 files (every 12th, split by
hash). Writes target/bench/augment.json and prints the tables.

    python benches/augment.py [--backbones efficientnet_lite0,efficientnet_lite1,efficientnet_lite2] [--ks 0,4,8]
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
WORK = ROOT / "target" / "bench"
BIN = ROOT / "target" / "release" / "headstart"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import subset  # noqa: E402

SEEDS = (1, 2, 3)
EPOCHS = (5, 20)


def headstart(ws, *args):
    out = subprocess.run([str(BIN), "--workspace", str(ws), "--quiet", "--json", *map(str, args)],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode not in (0, 3):
        sys.exit(f"headstart {' '.join(map(str, args))} failed:\n{out.stderr}")
    return json.loads(out.stdout)


def data_sets():
    cifar = WORK / "cifar10-5000-flat"
    if not cifar.is_dir():
        subset(SHARED / "cifar10", cifar, 12, flat=True)
    return [
        ("flowers5", SHARED / "flowers5", "test"),
        ("hymenoptera", SHARED / "hymenoptera", "val"),
        ("cifar10-5000", cifar, "test"),
    ]


def accuracies(ws, split):
    """(head, baseline) accuracy on `split`, without and with --tta."""
    result = {}
    for tta in (False, True):
        args = ["eval", "--split", split] + (["--tta"] if tta else [])
        models = {m["model"]: m["evaluation"]["accuracy"] for m in headstart(ws, *args)["models"]}
        result[tta] = models
    return result


def train_and_eval(ws, split, policy, rows):
    for epochs in EPOCHS:
        for seed in SEEDS:
            headstart(ws, "train-head", "--epochs", epochs, "--seed", seed, "--augment", policy)
            for tta, models in accuracies(ws, split).items():
                rows.append({"policy": policy, "epochs": epochs, "seed": seed, "tta": tta,
                             "head": models["head"], "baseline": models.get("baseline")})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", default="efficientnet_lite0")
    parser.add_argument("--sets", default="flowers5,hymenoptera,cifar10-5000")
    parser.add_argument("--ks", default="0,4,8", help="numbers of views to extract in turn (0 first)")
    parser.add_argument("--report", action="store_true", help="only print the tables of augment.json")
    args = parser.parse_args()
    results = []
    out = WORK / "augment.json"
    if out.is_file():
        results = json.loads(out.read_text())
    if args.report:
        return report(results)
    for backbone in args.backbones.split(","):
        for name, data, split in data_sets():
            if name not in args.sets.split(","):
                continue
            ws = WORK / f"augment-{name}-{backbone}"
            record = {"backbone": backbone, "data": name, "split": split, "extract": {}, "runs": []}
            for k in map(int, args.ks.split(",")):
                flags = ["--model", backbone, "--tta"] + (["--augment", k] if k else [])
                start = time.perf_counter()
                summary = headstart(ws, "extract", "--data", data, *flags)
                record["extract"][k] = {"seconds": time.perf_counter() - start,
                                        "images": summary["images"], "views": summary["views"],
                                        "computed": summary["computed"],
                                        "views_computed": summary["views_computed"],
                                        "mirrored_computed": summary["mirrored_computed"]}
                print(f"{backbone} {name} K={k}: {record['extract'][k]}", flush=True)
                rows = []
                if k == 0:
                    headstart(ws, "train-head", "--epochs", 5, "--baseline")
                    train_and_eval(ws, split, "off", rows)
                else:
                    train_and_eval(ws, split, "with-plain", rows)
                    if k == max(map(int, args.ks.split(","))):
                        train_and_eval(ws, split, "views-only", rows)
                for r in rows:
                    r["k"] = k
                record["runs"].extend(rows)
            results = [r for r in results if (r["backbone"], r["data"]) != (backbone, name)] + [record]
            out.write_text(json.dumps(results, indent=1))
            report([record])


def report(results):
    """BENCHMARKS.md's tables from augment.json: per data set, one row per backbone, number of
    views, policy and epochs; then the mean over the data sets of each setting measured on all."""
    cells = {}
    shown = None
    for record in sorted(results, key=lambda r: (r["data"], r["backbone"])):
        if record["data"] != shown:
            shown = record["data"]
            print(f"\n{record['data']} ({record['split']} split):\n")
            print("| backbone | views K | policy | epochs | head | head + TTA |")
            print("| --- | --- | --- | --- | --- | --- |")
        groups = {}
        for r in record["runs"]:
            groups.setdefault((r["k"], r["policy"], r["epochs"]), []).append(r)
        for (k, policy, epochs), rs in groups.items():
            row = []
            for tta in (False, True):
                vals = [r["head"] for r in rs if r["tta"] == tta]
                cells.setdefault((record["backbone"], k, policy, epochs, tta), {})[record["data"]] = statistics.mean(vals)
                row.append(f"{statistics.mean(vals):.3f} ± {statistics.pstdev(vals):.3f}")
            print(f"| {record['backbone']} | {k} | {policy} | {epochs} | {row[0]} | {row[1]} |")
        base = {tta: next(r["baseline"] for r in record["runs"] if r["tta"] == tta) for tta in (False, True)}
        for tta in (False, True):
            cells.setdefault((record["backbone"], 0, "baseline", 0, tta), {})[record["data"]] = base[tta]
        print(f"| {record['backbone']} | | baseline (plain vectors) | | {base[False]:.3f} | {base[True]:.3f} |")
    n_sets = len({r["data"] for r in results})
    print(f"\nMean over the {n_sets} data sets:\n")
    print("| backbone | views K | policy | epochs | TTA | mean accuracy |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (backbone, k, policy, epochs, tta), by_set in sorted(cells.items(), key=lambda c: -statistics.mean(c[1].values())):
        if len(by_set) == n_sets:
            print(f"| {backbone} | {k or ''} | {policy} | {epochs or ''} | {'on' if tta else 'off'} | "
                  f"{statistics.mean(by_set.values()):.4f} |")


if __name__ == "__main__":
    main()
