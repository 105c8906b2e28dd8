"""The benchmark suite: runs headstart and its peers on the same images and embeddings, and
writes the tables of BENCHMARKS.md.

Why one script: these machines are shared and drift by 20% between runs, so compared runs must
be interleaved in one sitting (round 1 of every contender, then round 2, ...) and each figure is
the median over rounds; a table is only comparable within itself. Each table states the machine
and the versions it was measured with. Timings live here, never in tests.

    python3 -m venv .venv && .venv/bin/pip install -r benches/peers/requirements.txt
    .venv/bin/python benches/models.py            # once: the random-weight ResNet-50, fp32 and int8
    .venv/bin/python benches/run.py [--rounds 3] [--sections extract peers head baseline growth sweep sweep-accuracy phone] [--write]

Sections:
  extract  `cargo bench --bench extract` per backbone and data set: end to end against the network
           alone plus decode CPU time / cores (target: within 5%), int8 against fp32.
  peers    ResNet-50 fp32 on the same images: `headstart extract` (whole process) against the plain
           Python onnxruntime pipeline, PyTorch eager and Keras (benches/peers/).
  head     `headstart train-head` (whole process, startup included) against the identical PyTorch
           and Keras heads on the same cached embeddings, and the baseline's regularisation sweep
           against scikit-learn's (benches/head_reference.py).
  baseline the baseline's sweep (`cargo bench --bench baseline`) against scikit-learn's
           LogisticRegression sweep (benches/head_reference.py --lr-select val) on the same
           embeddings: flowers5, hymenoptera, a 6000-file cifar10 subset, and 80 generated
           overlapping classes (the many-class case); chosen C, accuracy and seconds.
  growth   cifar10, 6000 files against all 60000: scan + fully cached re-run, cache load, training
           time, peak memory; cold extract with --growth-cold (about 10 minutes for 60000).
  phone    150 camera-sized JPEGs (benches/phone_photos.py writes them; --phone-grain for the dense
           set): whole `extract` processes
           (this build; main's binary with --before-bin; the jpeg-simd build with --phone-simd)
           against Python with PIL's `draft` and onnxruntime, network alone and the bound, decode
           times per megapixel class and the embeddings' cosine to a full decode. Not in the
           default sections.
  sweep    `headstart sweep` (k-fold cross-validation of many heads): this machine's fp32 GEMM
           peak (numpy); the 36-configuration MLP grid on flowers5 and a 10010-file cifar10 subset
           (every 6th file) with its training FLOPs, GFLOP/s and share of the peak, against the same
           grid in PyTorch one configuration after another (a timed subset, extrapolated); the
           logistic C grid against scikit-learn's GridSearchCV and kNN against scikit-learn's on
           the same folds; a default sweep's test accuracy against the default heads; a learning
           curve (`cargo bench --bench learning_curve`). About 20 minutes a round.
  sweep-accuracy  the sweep section's accuracy part alone (3 seeds of a default sweep on the
           three sets against the default head and the PyTorch, Keras and scikit-learn heads).
           Nothing in it is timed, so it may run beside other work. Not in the default sections.

--write replaces each section's table in BENCHMARKS.md (between `<!-- bench:NAME -->` markers)
and always leaves the raw results in target/bench/results.json.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
WORK = ROOT / "target" / "bench"
BIN = ROOT / "target" / "release" / "headstart"
PY = sys.executable
RESNET = ROOT / "models" / "resnet50.random.onnx"
RESNET_INT8 = ROOT / "models" / "resnet50_int8.random.onnx"
RESNET_256 = ROOT / "models" / "resnet50_256.random.onnx"
SIMD_TARGET = ROOT / "target" / "simd"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def run(cmd, **kw):
    """Runs a command; returns (wall seconds, stdout). Fails loudly: a broken run is no figure."""
    start = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=ROOT, **kw)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        log(proc.stdout[-2000:], proc.stderr[-4000:])
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}")
    return wall, proc.stdout


def bench_json(stdout):
    return json.loads(next(l for l in stdout.splitlines() if l.startswith("BENCH_JSON ")).split(" ", 1)[1])


def mean(values):
    """The mean of the values that are not None; None when there are none."""
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def pct(v):
    return "n/a" if v is None else f"{v:.3f}"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def machine():
    flags = set()
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and model == "?":
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    wanted = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16"]
    versions = {"rustc": run(["rustc", "--version"])[1].split()[1]}
    # From the installed packages' metadata: importing TensorFlow and torch here would keep
    # gigabytes of them in this process while it times the others.
    for name, packages in (
        ("onnxruntime", ["onnxruntime"]),
        ("torch", ["torch"]),
        ("tensorflow", ["tensorflow-cpu", "tensorflow"]),
        ("sklearn", ["scikit-learn"]),
        ("numpy", ["numpy"]),
    ):
        found = []
        for package in packages:
            try:
                found.append(importlib.metadata.version(package))
            except importlib.metadata.PackageNotFoundError:
                pass
        versions[name] = found[0] if found else "absent"
    try:
        versions["headstart"] = run(["git", "rev-parse", "--short", "HEAD"])[1].strip()
    except SystemExit:
        versions["headstart"] = "?"
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)),
        "flags": [f for f in wanted if f in flags],
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "versions": versions,
        "python": platform.python_version(),
    }


def machine_line(m):
    v = ", ".join(f"{k} {val}" for k, val in m["versions"].items())
    return f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, flags {' '.join(m['flags'])}. Versions: {v}."


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Sections


def extract_section(rounds):
    exe = bench_executable()
    configs = [
        ("flowers5", "efficientnet_lite0", []),
        ("flowers5", "efficientnet_lite0 int8", ["--int8"]),
        ("hymenoptera", "efficientnet_lite0", []),
        ("hymenoptera", "efficientnet_lite0 int8", ["--int8"]),
        ("hymenoptera", "ResNet-50 fp32 (random weights)", ["--model", RESNET]),
        ("hymenoptera", "ResNet-50 int8 (random weights)", ["--model", RESNET_INT8]),
        ("hymenoptera", "ResNet-50 fp32 at 256 (random weights)", ["--model", RESNET_256]),
    ]
    results = {i: [] for i in range(len(configs))}
    for r in range(rounds):
        for i, (data, name, flags) in enumerate(configs):
            log(f"extract round {r + 1}/{rounds}: {data} {name}")
            results[i].append(bench_json(run([exe, SHARED / data, *flags, "--sample", "256"])[1]))
    rows = []
    for i, (data, name, _) in enumerate(configs):
        rs = results[i]
        m = {k: median([x[k] for x in rs]) for k in rs[0] if isinstance(rs[0][k], (int, float))}
        rows.append(
            [
                f"{data} ({m['images']:.0f})",
                name,
                f"{m['images_per_second']:.1f}",
                f"{m['network_images_per_second']:.1f}",
                f"{m['decode_ms']:.2f} + {m['resize_ms']:.2f}",
                f"{median([x['seconds'] / x['bound_seconds'] for x in rs]):.2f}",
                f"{m['rerun_seconds']:.2f}",
                f"{m['peak_rss_mib']:.0f}",
            ]
        )
    # int8 speed-up, end to end and network alone, per data set and backbone.
    speedups = []
    for fp32, int8 in ((0, 1), (2, 3), (4, 5)):
        e2e = median([b["images_per_second"] for b in results[int8]]) / median(
            [a["images_per_second"] for a in results[fp32]]
        )
        net = median([b["network_images_per_second"] for b in results[int8]]) / median(
            [a["network_images_per_second"] for a in results[fp32]]
        )
        speedups.append([configs[fp32][0], configs[fp32][1].split(" (")[0].replace(" fp32", ""), f"{e2e:.2f}x", f"{net:.2f}x"])
    text = table(
        [
            "data (images)",
            "backbone",
            "end to end img/s",
            "network alone img/s",
            "decode + crop/resize/normalise ms/img, 1 core",
            "end to end / (network + decode/cores)",
            "cache re-run s",
            "peak RSS MiB",
        ],
        rows,
    )
    text += "\n\nint8 against fp32 (same run):\n\n" + table(
        ["data", "backbone", "end to end", "network alone"], speedups
    )
    return text, results


def peers_section(rounds):
    data = SHARED / "hymenoptera" / "val"
    lite0 = ROOT / "models" / "efficientnet_lite0.onnx"
    contenders = {
        "ResNet-50: headstart extract (whole process)": ["--model", RESNET],
        "ResNet-50: Python, PIL + thread pool + onnxruntime": [PY, "benches/peers/python_ort.py", data, RESNET, "--preset", "torch"],
        "ResNet-50: PyTorch eager (torchvision)": [PY, "benches/peers/torch_resnet50.py", data],
        "ResNet-50: Keras ResNet50(weights=None).predict": [PY, "benches/peers/keras_resnet50.py", data],
        "EfficientNet-Lite0: headstart extract (whole process)": ["--model", "efficientnet_lite0"],
        "EfficientNet-Lite0: Python, PIL + thread pool + onnxruntime": [PY, "benches/peers/python_ort.py", data, lite0, "--preset", "tflite"],
    }
    results = {k: [] for k in contenders}
    for r in range(rounds):
        for name, cmd in contenders.items():
            log(f"peers round {r + 1}/{rounds}: {name}")
            if cmd[0] == "--model":
                ws = Path(tempfile.mkdtemp(dir=WORK))
                wall, out = run([BIN, "--workspace", ws, "--json", "--quiet", "extract", "--data", data, *cmd])
                summary = json.loads(out)
                shutil.rmtree(ws)
                results[name].append({"images_per_second": summary["images"] / wall, "network": summary["images_per_second"]})
            else:
                out = bench_json(run(cmd)[1])
                results[name].append(
                    {"images_per_second": out["images_per_second"], "network": (out["images"] - out["skipped"]) / out["network_seconds"]}
                )
    rows = []
    for name, rs in results.items():
        backbone = name.split(":")[0]
        ours = median([x["images_per_second"] for x in results[f"{backbone}: headstart extract (whole process)"]])
        e2e = median([x["images_per_second"] for x in rs])
        rows.append(
            [
                name,
                f"{e2e:.1f}",
                f"{median([x['network'] for x in rs]):.1f}",
                f"{ours / e2e:.2f}x",
                ", ".join(f"{x['images_per_second']:.1f}" for x in rs),
            ]
        )
    text = table(
        ["pipeline", "end to end img/s (median)", "in the network img/s", "headstart is", "rounds"], rows
    )
    return text, results


def phone_section(rounds, before=None, simd=False, grain=0):
    """150 camera-sized JPEGs (benches/phone_photos.py), default backbone: whole `extract`
    processes (main's binary when --before-bin names it, this build, the jpeg-simd build with
    --phone-simd) against the Python pipeline (PIL decoding with `draft`, onnxruntime), the
    extract bench's network-alone rate and bound, and decode times per megapixel class."""
    data = WORK / ("phone-photos" if not grain else f"phone-photos-grain{grain:g}")
    if not data.is_dir():
        log("writing the phone photos (not timed)")
        run([PY, "benches/phone_photos.py", "--out", data, "--grain", grain])
    lite0 = ROOT / "models" / "efficientnet_lite0.onnx"
    binaries = {}
    if before:
        binaries["headstart extract, before (main's binary: full decode)"] = Path(before)
    binaries["headstart extract (reduced JPEG decode)"] = BIN
    decoders = {"no SIMD": bench_executable("jpeg")}
    if simd:
        binaries["headstart extract (reduced JPEG decode, jpeg-simd)"] = simd_binary()
        decoders["jpeg-simd"] = bench_executable("jpeg", simd=True)
    python = "Python: PIL with draft + thread pool + onnxruntime"
    extract_bench = bench_executable("extract")
    results = {name: [] for name in [*binaries, python]}
    bench, decode = [], {name: [] for name in decoders}
    for r in range(rounds):
        for name, exe in binaries.items():
            log(f"phone round {r + 1}/{rounds}: {name}")
            ws = Path(tempfile.mkdtemp(dir=WORK))
            wall, out = run([exe, "--workspace", ws, "--json", "--quiet", "extract", "--data", data])
            shutil.rmtree(ws)
            results[name].append(json.loads(out)["images"] / wall)
        log(f"phone round {r + 1}/{rounds}: {python}")
        out = bench_json(run([PY, "benches/peers/python_ort.py", data, lite0, "--preset", "tflite"])[1])
        results[python].append(out["images_per_second"])
        log(f"phone round {r + 1}/{rounds}: extract bench")
        bench.append(bench_json(run([extract_bench, data, "--sample", "150"])[1]))
        for name, exe in decoders.items():
            log(f"phone round {r + 1}/{rounds}: decode bench, {name}")
            decode[name].append(bench_json(run([exe, data, "--rounds", "1"])[1]))
    ours = median(results["headstart extract (reduced JPEG decode)"])
    rows = [[name, f"{median(rs):.1f}", f"{ours / median(rs):.2f}x", ", ".join(f"{x:.1f}" for x in rs)] for name, rs in results.items()]
    m = {k: median([b[k] for b in bench]) for k in ("images_per_second", "network_images_per_second", "decode_ms", "resize_ms")}
    cores = bench[0]["cores"]
    bound = 1 / (1 / m["network_images_per_second"] + (m["decode_ms"] + m["resize_ms"]) / 1e3 / cores)
    text = table(["pipeline (whole process)", "img/s (median)", "headstart is", "rounds"], rows)
    text += (
        f"\n\nIn one process (`cargo bench --bench extract -- {data.relative_to(ROOT)} --sample 150`, medians):"
        f" end to end {m['images_per_second']:.1f} img/s; network alone on the same images decoded beforehand"
        f" {m['network_images_per_second']:.1f} img/s; decode {m['decode_ms']:.2f} + crop/resize/normalise"
        f" {m['resize_ms']:.2f} ms an image on one core; bound (network + decode / {cores} cores) {bound:.1f} img/s;"
        f" end to end / bound {median([b['seconds'] / b['bound_seconds'] for b in bench]):.2f} (time ratio)."
    )
    first = next(iter(decode.values()))
    classes = [c["megapixels"] for c in first[0]["classes"]]
    per_class = []
    for i, mp in enumerate(classes):
        row = [mp, first[0]["classes"][i]["files"], f"{median([d['classes'][i]['full_ms'] for d in first]):.1f}"]
        row += [f"{median([d['classes'][i]['reduced_ms'] for d in decode[name]]):.1f}" for name in decoders]
        per_class.append(row)
    row = ["all", first[0]["files"], f"{median([d['full_ms'] for d in first]):.1f}"]
    per_class.append(row + [f"{median([d['reduced_ms'] for d in decode[name]]):.1f}" for name in decoders])
    text += "\n\nDecoding, ms an image on one core (`cargo bench --bench jpeg`, medians of the rounds):\n\n" + table(
        ["megapixels", "files", "full (zune-jpeg)", *[f"reduced ({name})" for name in decoders]], per_class
    )
    c = first[0]
    text += (
        f"\n\nEmbeddings, reduced against full decode (cosine, {c['files']} photos): min {c['cosine_min']:.4f},"
        f" 5th percentile {c['cosine_p5']:.4f}, median {c['cosine_median']:.4f}."
    )
    if simd:
        same = decode["no SIMD"][0]["reduced_pixels_sha256"] == decode["jpeg-simd"][0]["reduced_pixels_sha256"]
        text += f" The two builds' reduced pixels are {'identical' if same else 'NOT identical'} (SHA-256 of all of them)."
    return text, {"extract": results, "bench": bench, "decode": decode}


def simd_binary():
    """The headstart binary built with the jpeg-simd feature, in its own target folder so that
    the default build's binary stays in place."""
    run(["cargo", "build", "--release", "--features", "jpeg-simd", "--target-dir", SIMD_TARGET])
    return SIMD_TARGET / "release" / "headstart"


def workspace(name, data):
    """target/bench/NAME-ws: DATA extracted once with the default backbone (not timed)."""
    ws = WORK / f"{name}-ws"
    if not (ws / "dataset.json").is_file():
        log(f"extracting {name} once (not timed)")
        run([BIN, "--workspace", ws, "--quiet", "extract", "--data", data])
    return ws


def reference(source, *flags):
    """The JSON report of one benches/head_reference.py run on SOURCE (workspace or arrays file)."""
    report = WORK / "head_reference.json"
    run([PY, "benches/head_reference.py", source, *flags, "--json-out", report])
    return json.loads(report.read_text())


def head_section(rounds):
    ws = workspace("flowers5", SHARED / "flowers5")
    rows_by = {k: [] for k in ("headstart head", "PyTorch head", "Keras head", "headstart baseline sweep", "scikit-learn sweep")}
    for r in range(rounds):
        log(f"head round {r + 1}/{rounds}")
        wall, out = run([BIN, "--workspace", ws, "--json", "--quiet", "train-head", "--seed", r])
        acc = json.loads(run([BIN, "--workspace", ws, "--json", "--quiet", "eval", "--split", "test"])[1])
        rows_by["headstart head"].append(
            {"seconds": wall, "train_seconds": json.loads(out)["seconds"], "accuracy": acc["models"][0]["evaluation"]["accuracy"]}
        )
        _, out = run([BIN, "--workspace", ws, "--json", "--quiet", "train-head", "--seed", r, "--baseline"])
        baseline = json.loads(out)["baseline"]
        acc = json.loads(run([BIN, "--workspace", ws, "--json", "--quiet", "eval", "--split", "test"])[1])
        base_acc = next(m for m in acc["models"] if m["model"] != "head")["evaluation"]["accuracy"]
        rows_by["headstart baseline sweep"].append(
            {"seconds": baseline["seconds"], "accuracy": base_acc, "fits": len(baseline["sweep"])}
        )
        for res in reference(ws, "--frameworks", "torch", "keras", "sklearn", "--seeds", r)["results"]:
            name = {"torch": "PyTorch head", "keras": "Keras head", "sklearn": "scikit-learn sweep"}[res["framework"]]
            rows_by[name].append({"seconds": res["seconds"], "accuracy": res["accuracy"]})
    ours = median([x["seconds"] for x in rows_by["headstart head"]])
    ours_base = median([x["seconds"] for x in rows_by["headstart baseline sweep"]])
    rows = []
    for name, rs in rows_by.items():
        s = median([x["seconds"] for x in rs])
        base = ours_base if "sweep" in name else ours
        rows.append(
            [
                name,
                f"{s:.2f}",
                f"{median([x['accuracy'] for x in rs]):.3f}",
                f"{s / base:.1f}x" if name not in ("headstart head", "headstart baseline sweep") else "1",
                ", ".join(f"{x['seconds']:.2f}" for x in rs),
            ]
        )
    text = table(["", "seconds (median)", "flowers5 test accuracy (median)", "time / headstart's", "rounds"], rows)
    text += (
        "\n\nheadstart's head time is the whole `headstart train-head` process (start, cache load, "
        "5 epochs, validation, saving); its training loop alone took "
        f"{median([x['train_seconds'] for x in rows_by['headstart head']]):.2f} s. The PyTorch and "
        "Keras times are their training loops only (imports and data loading excluded)."
    )
    return text, rows_by


def overlapping_classes(path, seed=0, classes=80, dim=1280, per_class=(33, 10, 15), separation=0.3, rank=32):
    """Writes the generated many-class case as an arrays file (benches/head_reference.py's
    save_arrays): 80 classes of 33 train / 10 val / 15 test embeddings in 1280-d, about the
    shape of an 81-class grocery set (2640 train images) on which linfa-logistic's unpatched
    log-sum-exp cost 19 points. Like pooled CNN features, the values are non-negative with a
    per-feature scale; each class scales the features of a shared mean by exp(separation * z),
    and each image adds a 32-factor within-class variation shared by all classes (pose,
    lighting) and independent noise, clipped at 0. `separation` 0.3 makes the classes overlap:
    scikit-learn's linear probe gets about 0.7, like on the grocery set."""
    import numpy as np
    from head_reference import save_arrays

    rng = np.random.default_rng(seed)
    scale = np.abs(rng.normal(0.0, 1.0, dim)) * 0.6
    means = scale * np.exp(separation * rng.normal(size=(classes, dim)))
    factors = rng.normal(0.0, 0.6 / np.sqrt(rank), size=(rank, dim)) * scale
    splits = {}
    for split, n in zip(("train", "val", "test"), per_class):
        y = np.repeat(np.arange(classes), n)
        x = means[y] + rng.normal(size=(len(y), rank)) @ factors * np.sqrt(rank)
        x += rng.normal(0.0, 0.5, size=(len(y), dim)) * scale
        splits[split] = (np.maximum(x, 0.0), y)
    save_arrays(splits, path)


def baseline_data():
    """(label, arrays file) per data set of the baseline section; workspaces are extracted once
    with the default backbone, and their embeddings written as arrays files each run."""
    from head_reference import load_workspace, save_arrays

    cifar = WORK / "cifar10-6000-flat"
    if not cifar.is_dir():
        subset(SHARED / "cifar10", cifar, 10, flat=True)
    sets = []
    for label, name, data in (
        ("flowers5", "flowers5", SHARED / "flowers5"),
        ("hymenoptera (C chosen and scored on val)", "hymenoptera", SHARED / "hymenoptera"),
        ("cifar10, every 10th file, split 80/10/10", "cifar10-6000", cifar),
    ):
        arrays = WORK / f"{name}.safetensors"
        save_arrays(load_workspace(workspace(name, data))[2], arrays)
        sets.append((label, arrays))
    generated = WORK / "overlap80.safetensors"
    overlapping_classes(generated)
    sets.append(("80 generated overlapping classes, 1280-d", generated))
    return sets


def baseline_section(rounds):
    exe = bench_executable("baseline")
    sets = baseline_data()
    results = {label: {"headstart": [], "sklearn": [], "sklearn converged": []} for label, _ in sets}

    def sklearn(arrays, tol):
        return reference(arrays, "--frameworks", "sklearn", "--lr-select", "val", "--lr-tol", tol)["results"][0]

    for r in range(rounds):
        for label, arrays in sets:
            log(f"baseline round {r + 1}/{rounds}: {label}")
            results[label]["headstart"].append(bench_json(run([exe, arrays])[1]))
            results[label]["sklearn"].append(sklearn(arrays, 1e-4))
    for label, arrays in sets:
        log(f"baseline: scikit-learn with tol 1e-8 on {label} (once, not timed)")
        results[label]["sklearn converged"].append(sklearn(arrays, 1e-8))
    rows = []
    for label, arrays in sets:
        ours, theirs = results[label]["headstart"], results[label]["sklearn"]
        first, converged = ours[0], results[label]["sklearn converged"][0]
        ours_s, theirs_s = median([x["seconds"] for x in ours]), median([x["seconds"] for x in theirs])
        rows.append(
            [
                f"{label} ({first['classes']} classes, {first['n_train']} train, {first['eval_split']})",
                f"{first['chosen_c']:g} / {theirs[0]['C']:g} / {converged['C']:g}",
                f"{first['accuracy']:.3f} / {theirs[0]['accuracy']:.3f} / {converged['accuracy']:.3f}",
                f"{ours_s:.2f} / {theirs_s:.2f}",
                f"{theirs_s / ours_s:.1f}x",
                sum(p["status"] != "converged" for p in first["sweep"]),
                ", ".join(f"{x['seconds']:.2f}" for x in ours) + " / " + ", ".join(f"{x['seconds']:.2f}" for x in theirs),
            ]
        )
    text = table(
        [
            "data (classes, train images, scored on)",
            "C chosen: headstart / scikit-learn / scikit-learn tol 1e-8",
            "accuracy: headstart / scikit-learn / scikit-learn tol 1e-8",
            "sweep s (median): headstart / scikit-learn",
            "scikit-learn time / headstart's",
            "headstart fits short of the tolerance",
            "rounds s: headstart / scikit-learn",
        ],
        rows,
    )
    text += (
        "\n\nBoth sweep C over the same 11 values (0.01 ... 1000) on standardised embeddings, pick "
        "the best validation accuracy (ties: lower log loss) and score that fit; headstart starts "
        "each C from the previous two solutions extrapolated in ln C, scikit-learn (its default, "
        "warm_start off) fits each from zero (lbfgs, max_iter 5000). "
        "headstart stops at an L2 norm of the mean objective's gradient of 1e-4 times min(1, 1/C); "
        "scikit-learn at a "
        "largest gradient component of `tol`: its default 1e-4 (timed) and 1e-8 (once, untimed: "
        "the optimum both should reach). Seconds are the sweep alone: `BaselineParams::fit` for "
        "headstart, the 11 fits and their validation scoring for scikit-learn (2 BLAS threads)."
    )
    return text, results


# The sweep section's grids: the MLP grid (36 configurations), the 11 half-decade C
# values, and the PyTorch subset timed for the MLP grid: one configuration per hidden width,
# each standing for the 12 of its width (dropout, learning rate and decay do not change the work).
SWEEP_MLP = ["--heads", "mlp", "--lr", "0.0003,0.001,0.003", "--dropout", "0.2,0.5", "--hidden", "256,512,1024", "--weight-decay", "0,0.0001"]
SWEEP_MLP_PER_WIDTH = 12
TORCH_SUBSET = ["--hidden", "256", "512", "1024", "--lr", "0.001", "--dropout", "0.5", "--weight-decay", "0.0001"]
SWEEP_C = [f"{c:.6g}" for c in (10 ** (e / 2) for e in range(-4, 7))]
LEARNING_CURVE = [1, 2, 5, 10, 20]


def gemm_peak(n=4096, repeats=5):
    """This machine's fp32 GEMM rate: numpy's sgemm (OpenBLAS) of two n x n matrices on all
    cores, 2 n^3 FLOPs, best of `repeats` after one warm-up."""
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    cores = len(os.sched_getaffinity(0))
    with threadpool_limits(limits=cores, user_api="blas"):
        a @ b
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
    blas = next(i for i in threadpool_info() if i["user_api"] == "blas")
    return {"gflops": 2 * n**3 / min(times) / 1e9, "seconds": times,
            "blas": f"{blas['internal_api']} {blas['version']}, kernel {blas.get('architecture', '?')}, {cores} threads"}


def headstart_sweep(ws, *flags, fresh=True):
    """(wall seconds, JSON summary) of one `headstart sweep` process. `fresh` deletes the
    workspace's journal first: it would otherwise resume every trial already run."""
    if fresh:
        shutil.rmtree(ws / "sweeps", ignore_errors=True)
    wall, out = run([BIN, "--workspace", ws, "--json", "--quiet", "sweep", "--folds", 5, *flags])
    return wall, json.loads(out)


def dim(ws):
    return json.loads((ws / "dataset.json").read_text())["backbone"]["dim"]


def mlp_flops(summary, width):
    """(training, prediction) FLOPs of a sweep's MLP trials on `width`-d embeddings, matrix
    products only. Forward, per sample, 2 * sum(in * out) over the Dense layers (D->H, H->K);
    training counts 3 times that per sample and epoch: forward, the kernels' gradients and the
    inputs' gradients of both Dense layers (the first one's too: the BatchNorm before it is
    trained, so headstart and PyTorch both form it), on the k - 1 training folds; prediction
    once per held-out sample. BatchNorm, dropout, ReLU, softmax and Adam are left out."""
    n = sum(summary["fold_sizes"])
    train = predict = 0
    for r in summary["results"]:
        spec = r["spec"]
        widths = [width, *spec["hidden"], len(summary["classes"])]
        forward = 2 * sum(a * b for a, b in zip(widths, widths[1:]))
        for held in summary["fold_sizes"]:
            train += 3 * forward * (n - held) * spec["epochs"]
            predict += forward * held
    return train, predict


def sweep_accuracy(sets):
    """Part 5: a default `headstart sweep` (its default space and flags; seeds 0, 1, 2, only
    the MLP trials depend on them, so the others come from the journal after seed 0) against
    the default head (`train-head` + `eval`), PyTorch and Keras heads and scikit-learn's
    logistic regression (head_reference.py). Without a test split: 5-fold CV accuracy on the
    same folds, the default head's being the sweep's own trial of `train-head`'s settings."""
    seeds = [0, 1, 2]
    out = {}
    for label, ws in sets.items():
        has_test = any(e["split"] == "test" for e in json.loads((ws / "dataset.json").read_text())["entries"])
        log(f"sweep accuracy: {label}")
        runs = []
        for seed in seeds:
            wall, summary = headstart_sweep(ws, "--seed", seed, fresh=seed == seeds[0])
            winner = summary["results"][0]
            default = next(r for r in summary["results"] if r["spec"]["kind"] == "mlp" and r["spec"]["hidden"] == [512])
            runs.append({
                "winner": winner["spec"], "label": summary["refit"]["label"], "cv": winner["accuracy"]["mean"],
                "test": (summary["refit"]["test"] or {}).get("accuracy"), "default_head_cv": default["accuracy"]["mean"],
                "seconds": wall, "trials": len(summary["results"]), "resumed": summary["resumed"],
            })
        row = {"sweep": runs}
        if has_test:
            heads = []
            for seed in seeds:
                run([BIN, "--workspace", ws, "--json", "--quiet", "train-head", "--seed", seed])
                ev = json.loads(run([BIN, "--workspace", ws, "--json", "--quiet", "eval", "--split", "test"])[1])
                heads.append(next(m for m in ev["models"] if m["model"] == "head")["evaluation"]["accuracy"])
            row["default_head"] = heads
            ref = reference(ws, "--frameworks", "torch", "keras", "sklearn", "--seeds", *seeds)
        else:
            ref = reference(ws, "--frameworks", "torch", "sklearn", "--cv", 5, "--seeds", *seeds)
        row["reference"] = ref["results"]
        row["skipped"] = ref["skipped"]
        row["has_test"] = has_test
        out[label] = row
    return out


def learning_curve(sets):
    """Part 6: `cargo bench --bench learning_curve` (benches/learning_curve.rs) per data set."""
    exe = bench_executable("learning_curve")
    per_class = ",".join(map(str, LEARNING_CURVE))
    return {label: bench_json(run([exe, ws, "--per-class", per_class, "--seeds", "0,1,2"])[1]) for label, ws in sets.items()}


def sweep_sets():
    """The sweep section's data sets: flowers5, hymenoptera and every 6th cifar10 file."""
    cifar = WORK / "cifar10-10000"
    if not cifar.is_dir():
        subset(SHARED / "cifar10", cifar, 6)
    return {
        "flowers5": workspace("flowers5", SHARED / "flowers5"),
        "hymenoptera": workspace("hymenoptera", SHARED / "hymenoptera"),
        "cifar10, every 6th file": workspace("cifar10-10000", cifar),
    }


def sweep_accuracy_section(_rounds):
    """Part 5 of the sweep section alone: accuracy, nothing timed, so it may run beside other
    work (`--sections sweep-accuracy`)."""
    accuracy = sweep_accuracy(sweep_sets())
    return accuracy_table(accuracy).lstrip(), accuracy


def sweep_section(rounds):
    sets = sweep_sets()
    flowers, cifar_ws = sets["flowers5"], sets["cifar10, every 6th file"]
    mlp_sets = {"flowers5": flowers, "cifar10, every 6th file": cifar_ws}
    raw = {"peak": [], "mlp": {k: {"headstart": [], "torch": []} for k in mlp_sets}, "logistic": {"headstart": [], "sklearn": []},
           "knn": {"headstart": [], "sklearn": []}}
    for r in range(rounds):
        log(f"sweep round {r + 1}/{rounds}: GEMM peak")
        raw["peak"].append(gemm_peak())
        for label, ws in mlp_sets.items():
            log(f"sweep round {r + 1}/{rounds}: MLP grid on {label}, headstart")
            wall, summary = headstart_sweep(ws, *SWEEP_MLP, "--refit", "none")
            train, predict = mlp_flops(summary, dim(ws))
            raw["mlp"][label]["headstart"].append({"wall": wall, "summary": summary, "train_flops": train, "predict_flops": predict})
            log(f"sweep round {r + 1}/{rounds}: MLP grid subset on {label}, PyTorch")
            ref = reference(ws, "--frameworks", "torch", "--cv", 5, "--seeds", 0, *TORCH_SUBSET)
            raw["mlp"][label]["torch"].append(ref["results"])
        log(f"sweep round {r + 1}/{rounds}: logistic")
        wall, summary = headstart_sweep(flowers, "--heads", "logistic", "--c", ",".join(SWEEP_C), "--refit", "none")
        raw["logistic"]["headstart"].append({"wall": wall, "summary": summary})
        raw["logistic"]["sklearn"].append(reference(flowers, "--frameworks", "sklearn", "--cv", 5, "--c", *SWEEP_C)["results"][0])
        log(f"sweep round {r + 1}/{rounds}: knn and prototype")
        wall, summary = headstart_sweep(cifar_ws, "--heads", "knn,prototype", "--k", "1,5,10,20", "--knn-weights", "uniform,distance", "--refit", "none")
        raw["knn"]["headstart"].append({"wall": wall, "summary": summary})
        raw["knn"]["sklearn"].append(reference(cifar_ws, "--frameworks", "knn", "--cv", 5, "--k", 10)["results"][0])
    raw["accuracy"] = sweep_accuracy(sets)
    raw["learning_curve"] = learning_curve({k: sets[k] for k in ("cifar10, every 6th file", "flowers5")})
    return sweep_tables(raw, {k: dim(ws) for k, ws in sets.items()}), raw


def sweep_tables(raw, dims):
    """The sweep section's text from sweep_section's raw results."""
    def listed(values, fmt="{:.1f}"):
        return ", ".join(fmt.format(v) for v in values)

    peaks = [x["gflops"] for x in raw["peak"]]
    peak = max(peaks)
    text = (
        f"**Peak**: numpy `a @ b`, 4096 x 4096 fp32 ({raw['peak'][0]['blas']}), best of 5 per round: "
        f"**{peak:.0f} GFLOP/s** (rounds: {listed(peaks, '{:.0f}')}).\n\n"
    )

    # MLP grid: whole grid, then per hidden width.
    rows, width_rows = [], []
    for label, res in raw["mlp"].items():
        ours, torch = res["headstart"], res["torch"]
        first = ours[0]["summary"]
        n = sum(first["fold_sizes"])
        wall = median([x["wall"] for x in ours])
        flops = ours[0]["train_flops"] + ours[0]["predict_flops"]
        by_width = {}
        for round_results in torch:
            for t in round_results:
                by_width.setdefault(t["config"]["hidden"], []).append(t["seconds"])
        torch_grid = SWEEP_MLP_PER_WIDTH * sum(median(v) for v in by_width.values())
        best = first["results"][0]
        failed = sum(r["status"] != "done" for r in first["results"])
        rows.append([
            f"{label} ({n} train + val, {len(first['classes'])} classes, D {dims[label]})",
            f"{wall:.1f}",
            f"{ours[0]['train_flops'] / 1e12:.2f} + {ours[0]['predict_flops'] / 1e12:.3f}",
            f"{flops / wall / 1e9:.0f}",
            f"{flops / wall / 1e9 / peak:.0%}",
            f"{torch_grid:.0f}",
            f"{torch_grid / wall:.1f}x",
            f"{best['accuracy']['mean']:.3f} ({best['spec']['hidden'][0]}, {best['spec']['learning_rate']:.4g}, {best['spec']['dropout']:g}, {best['spec']['weight_decay']:g})"
            + (f"; {failed} failed" if failed else ""),
            listed([x["wall"] for x in ours]),
        ])
        for width, torch_s in by_width.items():
            trials = [[r for r in x["summary"]["results"] if r["spec"]["hidden"] == [width]] for x in ours]
            trial_s = median([median([r["seconds"] for r in t]) for t in trials])
            trial_flops = sum(mlp_flops({**first, "results": trials[0][:1]}, dims[label]))
            # The configuration PyTorch ran (the spec holds f32 values).
            same = next(r for r in trials[0] if all(math.isclose(r["spec"][k], v, rel_tol=1e-6) for k, v in
                                                    (("learning_rate", 0.001), ("dropout", 0.5), ("weight_decay", 1e-4))))
            torch_acc = [t["accuracy"] for rr in torch for t in rr if t["config"]["hidden"] == width]
            width_rows.append([
                label, width, f"{trial_s:.2f}", f"{trial_flops / trial_s / 1e9:.0f}",
                f"{median(torch_s):.2f}", f"{median(torch_s) / trial_s:.1f}x",
                f"{same['accuracy']['mean']:.3f} / {torch_acc[0]:.3f}",
            ])
    text += "MLP grid (36 configurations x 5 folds, 5 epochs, batch 32), `headstart sweep " + " ".join(SWEEP_MLP) + " --folds 5 --refit none`:\n\n"
    text += table(
        ["data", "headstart wall s (median)", "TFLOP: training + held-out prediction", "achieved GFLOP/s",
         "share of peak", "PyTorch, same grid in turn, s (extrapolated)", "PyTorch / headstart",
         "best CV accuracy (hidden, lr, dropout, wd)", "rounds s"],
        rows,
    )
    text += "\n\nPer hidden width (headstart: median trial of the 12 of that width, 5 folds on one worker thread; PyTorch: its one configuration lr 0.001, dropout 0.5, wd 1e-4, 5 folds, 2 threads):\n\n"
    text += table(
        ["data", "hidden", "headstart trial s (1 thread)", "headstart GFLOP/s per thread", "PyTorch s (2 threads)",
         "PyTorch / headstart trial", "CV accuracy lr 0.001 dropout 0.5 wd 1e-4: headstart / PyTorch"],
        width_rows,
    )

    # Logistic.
    ours, theirs = raw["logistic"]["headstart"], raw["logistic"]["sklearn"]
    first = ours[0]["summary"]
    grid = {r["spec"]["c"]: r["accuracy"]["mean"] for r in first["results"] if r["status"] == "done"}
    ours_c, theirs_c = first["results"][0]["spec"]["c"], theirs[0]["C"]
    theirs_grid = {g["C"]: g["accuracy"] for g in theirs[0]["grid"]}
    near = lambda table_, c: next(v for k, v in table_.items() if abs(k - c) <= 1e-6 * c)
    wall, sk = median([x["wall"] for x in ours]), median([x["seconds"] for x in theirs])
    text += f"\n\nLogistic regression, flowers5, C in {{{', '.join(SWEEP_C)}}}, 5 folds (the same folds for both):\n\n"
    text += table(
        ["", "seconds (median)", "chosen C", "CV accuracy of the chosen C", "CV accuracy at the other's C", "time / headstart's", "rounds s"],
        [
            ["`headstart sweep --heads logistic`", f"{wall:.1f}", f"{ours_c:g}", f"{grid[ours_c]:.4f}", f"{near(grid, theirs_c):.4f}", "1", listed([x["wall"] for x in ours])],
            ["scikit-learn GridSearchCV", f"{sk:.1f}", f"{theirs_c:g}", f"{theirs[0]['accuracy']:.4f}", f"{near(theirs_grid, ours_c):.4f}", f"{sk / wall:.1f}x", listed([x["seconds"] for x in theirs])],
        ],
    )

    # kNN and prototype.
    ours, theirs = raw["knn"]["headstart"], raw["knn"]["sklearn"]
    first = ours[0]["summary"]
    k10 = next(r for r in first["results"] if r["spec"]["kind"] == "knn" and r["spec"]["k"] == 10 and r["spec"]["weights"] == "uniform")
    k10_s = median([next(r["seconds"] for r in x["summary"]["results"] if r["id"] == k10["id"]) for x in ours])
    wall, sk = median([x["wall"] for x in ours]), median([x["seconds"] for x in theirs])
    best = first["results"][0]
    text += f"\n\nkNN and prototype, cifar10 (every 6th file, {sum(first['fold_sizes'])} train images), 5 folds:\n\n"
    text += table(
        ["", "seconds (median)", "k=10 uniform: seconds / CV accuracy", "best (CV accuracy)", "rounds s"],
        [
            [f"`headstart sweep --heads knn,prototype` ({len(first['results'])} trials, 2 workers)", f"{wall:.1f}",
             f"{k10_s:.2f} (one thread) / {k10['accuracy']['mean']:.4f}", f"{best['spec']['kind']} {best['spec'].get('k', '')} {best['spec'].get('weights', '')} ({best['accuracy']['mean']:.4f})",
             listed([x["wall"] for x in ours], "{:.2f}")],
            ["scikit-learn KNeighborsClassifier(cosine, brute), k=10", f"{sk:.2f}", f"{sk:.2f} (2 BLAS threads) / {theirs[0]['accuracy']:.4f}", "", listed([x["seconds"] for x in theirs], "{:.2f}")],
        ],
    )

    text += accuracy_table(raw["accuracy"])

    # Learning curve.
    for label, lc in raw["learning_curve"].items():
        kinds = ["mlp", "logistic", "knn", "prototype"]
        acc = {(r["per_class"], r["kind"]): r["accuracy"] for r in lc["results"]}
        text += f"\n\nLearning curve, {label}: the first n training images of each class (by file name), scored on {lc['eval_split']} ({lc['eval_images']} images):\n\n"
        text += table(["per class", "MLP (mean of 3 seeds)", "logistic C=1", "kNN k=min(5, n)", "prototype"],
                      [[n, *(pct(acc.get((n, k))) for k in kinds)] for n in LEARNING_CURVE])
    return text


def accuracy_table(accuracy):
    """The accuracy table of the sweep section from sweep_accuracy's results."""
    rows = []
    for label, row in accuracy.items():
        ref = row["reference"]
        fw = lambda name: mean([r["accuracy"] for r in ref if r["framework"] == name])
        kinds = ", ".join(sorted({x["label"] for x in row["sweep"]}))
        if row["has_test"]:
            sweep_acc, head = mean([x["test"] for x in row["sweep"]]), mean(row["default_head"])
            scored = "test"
        else:
            sweep_acc, head = mean([x["cv"] for x in row["sweep"]]), mean([x["default_head_cv"] for x in row["sweep"]])
            scored = "5-fold CV (no test split)"
        keras = fw("keras")
        rows.append([
            label, scored, kinds, f"{mean([x['cv'] for x in row['sweep']]):.3f}", pct(sweep_acc), pct(head), pct(fw("torch")),
            pct(keras) if keras is not None else ("absent" if "keras" in row["skipped"] else "not in CV mode"),
            pct(fw("sklearn")), f"{(sweep_acc - head) * 100:+.1f}",
        ])
    text = "\n\nAccuracy: default `headstart sweep` (16 configurations: MLP hidden none and 512, logistic C 0.01-100, kNN k 1-20 uniform/distance, prototype) against the default heads; means of seeds 0, 1, 2:\n\n"
    text += table(
        ["data", "scored on", "winner(s) over the seeds", "winner CV accuracy", "sweep (refitted winner)", "default head (train-head)",
         "PyTorch head", "Keras head", "scikit-learn logistic", "sweep - default head, points"],
        rows,
    )
    return text


def subset(src, dst, every, flat=False):
    """A class-folder copy of SRC made of symlinks to every `every`-th file of each class. With
    `flat`, split folders are merged into <class>/<split>-<file> (so extract splits by hash)."""
    if dst.exists():
        shutil.rmtree(dst)
    for folder in sorted(p for p in src.rglob("*") if p.is_dir()):
        files = sorted(f for f in folder.iterdir() if f.is_file())
        if files:
            rel = folder.relative_to(src)
            out = dst / (rel.name if flat else rel)
            out.mkdir(parents=True, exist_ok=flat)
            prefix = f"{rel.parts[0]}-" if flat and len(rel.parts) > 1 else ""
            for f in files[::every]:
                (out / f"{prefix}{f.name}").symlink_to(f)


def timed_extract(ws, data):
    """(wall seconds, peak RSS MiB) of one `headstart extract` process."""
    start = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "PEAK_KB %M", str(BIN), "--workspace", str(ws), "--quiet", "extract", "--data", str(data)],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    wall = time.perf_counter() - start
    return wall, int(re.search(r"PEAK_KB (\d+)", proc.stderr).group(1)) / 1024


def growth_section(cold):
    cifar = SHARED / "cifar10"
    small = WORK / "cifar10-6000"
    subset(cifar, small, 10)
    rows = []
    for data, label in ((small, "6000"), (cifar, "60000")):
        ws = WORK / f"growth-{label}"
        if cold and ws.exists():
            shutil.rmtree(ws)
        if cold or not (ws / "dataset.json").is_file():
            log(f"growth: cold extract of {label} files")
            cold_s, peak_cold = timed_extract(ws, data)
        else:
            cold_s = peak_cold = None
        rerun, peak_rerun = timed_extract(ws, data)  # fully cached: scan, hash, load
        wall, out = run([BIN, "--workspace", ws, "--json", "--quiet", "train-head", "--epochs", "5"])
        train = json.loads(out)["seconds"]
        rows.append(
            [
                label,
                f"{cold_s:.1f}" if cold_s else "(cached)",
                f"{peak_cold:.0f}" if peak_cold else "",
                f"{rerun:.2f}" + (f" ({rerun / cold_s:.1%} of cold)" if cold_s else ""),
                f"{peak_rerun:.0f}",
                f"{wall - train:.2f}",
                f"{train:.2f}",
            ]
        )
    text = table(
        ["files", "cold extract s", "peak RSS cold MiB", "fully cached re-run s", "peak RSS re-run MiB", "train-head outside training s (start, cache load, save)", "5 epochs s"],
        rows,
    )
    return text, rows


def bench_executable(name="extract", simd=False):
    features = ["--features", "jpeg-simd", "--target-dir", str(SIMD_TARGET)] if simd else []
    out = subprocess.run(
        ["cargo", "bench", "--bench", name, "--no-run", "--message-format", "json", *features],
        capture_output=True, text=True, cwd=ROOT, check=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == name and msg.get("executable"):
            return msg["executable"]
    raise SystemExit(f"cargo bench --bench {name} --no-run built no executable")


def write(name, text, m, flags=""):
    path = ROOT / "BENCHMARKS.md"
    doc = path.read_text()
    how = (
        f"One run of each size on {time.strftime('%Y-%m-%d')}, by `python benches/run.py --sections growth --growth-cold`."
        if name == "growth"
        else f"One run of each seed on {time.strftime('%Y-%m-%d')}, by `python benches/run.py --sections sweep-accuracy` (accuracy only, nothing timed)."
        if name == "sweep-accuracy"
        else f"Median of the rounds shown, run interleaved on {time.strftime('%Y-%m-%d')} by `python benches/run.py --sections {name.split('-')[0]}{flags}`."
    )
    block = f"<!-- bench:{name} -->\n{machine_line(m)}\n{how}\n\n{text}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    doc = pattern.sub(lambda _: block, doc) if pattern.search(doc) else doc.rstrip() + "\n\n" + block + "\n"
    path.write_text(doc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sections", nargs="+", default=["extract", "peers", "head", "baseline", "growth", "sweep"])
    parser.add_argument("--growth-cold", action="store_true", help="also time cold extraction of 60000 files")
    parser.add_argument("--before-bin", help="phone: a headstart binary to compare against (main's, before a change)")
    parser.add_argument("--phone-simd", action="store_true", help="phone: also the jpeg-simd build (needs nasm)")
    parser.add_argument("--phone-grain", type=float, default=0.0, help="phone: the photos' grain (benches/phone_photos.py --grain)")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} is missing: the benchmarks run on the shared data sets")
    for model in (RESNET, RESNET_INT8) if {"extract", "peers"} & set(args.sections) else ():
        if not model.is_file():
            raise SystemExit(f"{model} is missing: run `python benches/models.py` first")
    run(["cargo", "build", "--release"])
    m = machine()
    log(machine_line(m))
    results = {"machine": m}
    for name in args.sections:
        started = time.perf_counter()
        if name == "growth":
            text, raw = growth_section(args.growth_cold)
        elif name == "phone":
            text, raw = phone_section(args.rounds, args.before_bin, args.phone_simd, args.phone_grain)
        else:
            sections = {"extract": extract_section, "peers": peers_section, "head": head_section, "baseline": baseline_section,
                        "sweep": sweep_section, "sweep-accuracy": sweep_accuracy_section}
            text, raw = sections[name](args.rounds)
        log(f"{name}: {time.perf_counter() - started:.0f} s\n{text}\n")
        print(f"## {name}\n\n{text}\n", flush=True)
        results[name] = {"table": text, "raw": raw}
        if args.write:
            flags = f" --rounds {args.rounds}" if name not in ("growth", "sweep-accuracy") else ""
            if name == "phone":
                flags += " --before-bin MAIN_BINARY" if args.before_bin else ""
                flags += " --phone-simd" if args.phone_simd else ""
                if args.phone_grain:
                    flags += f" --phone-grain {args.phone_grain:g}"
                    name = f"phone-grain{args.phone_grain:g}"
            write(name, text, m, flags)
    (WORK / "results.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
