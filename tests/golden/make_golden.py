"""Write the golden embeddings that the Rust tests compare `headstart`'s backbone output with.

Why: the Rust pipeline (decode, EXIF, crop-resize, normalise, onnxruntime) must give the same
1280-d embedding as the Python reference in models/preprocess_reference.py. The images are
chosen to exercise the awkward paths of a loader: a `.jpeg` extension (also the smallest photo,
so the crop is upscaled), the only very wide photo (2592 px, which also carries the only EXIF
orientation tag in the set, value 1), a small portrait, the palette GIF that is not a real
photo, and bees in portrait and landscape.

Besides each embedding, `input_mean` / `input_std` summarise the preprocessed input tensor, so
a mismatch can be told apart as preprocessing or backbone.

Run from the repo root (needs numpy, onnxruntime, pillow):

    python tests/golden/make_golden.py   # writes tests/golden/efficientnet_lite0_hymenoptera.json
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "models"))
from preprocess_reference import preprocess  # noqa: E402

DATA = os.path.join(ROOT, "..", "shared", "data", "hymenoptera")
MODEL = os.path.join(ROOT, "models", "efficientnet_lite0.onnx")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "efficientnet_lite0_hymenoptera.json")
PRESET = "tflite"

IMAGES = [
    "train/ants/formica.jpeg",  # .jpeg extension; 193x130, smallest: the crop is upscaled
    "val/ants/ants-devouring-remains-of-large-dead-insect-on-red-tile-in-Stellenbosch-South-Africa-closeup-1-DHD.jpg",  # 2592x1944, EXIF orientation 1
    "train/ants/Ant_1.jpg",  # 199x272 portrait
    "train/ants/imageNotFound.gif",  # palette GIF, not a photo
    "train/bees/205835650_e6f2614bee.jpg",  # 311x500 portrait
    "val/bees/1297972485_33266a18d9.jpg",  # 500x375 landscape, the common shape
]


def sig6(v) -> float:
    return float(f"{float(v):.6g}")


def main():
    with open(MODEL, "rb") as fh:
        sha = hashlib.sha256(fh.read()).hexdigest()
    with open(os.path.join(ROOT, "models", "efficientnet_lite0.json")) as fh:
        if json.load(fh)["sha256"] != sha:
            sys.exit("models/efficientnet_lite0.onnx does not match models/efficientnet_lite0.json")

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(MODEL, so, providers=["CPUExecutionProvider"])

    images = []
    for rel in IMAGES:
        x = preprocess(os.path.join(DATA, rel), PRESET)
        (emb,) = sess.run(["features"], {"input": x[None]})
        images.append({
            "path": rel,
            "input_mean": sig6(x.mean(dtype=np.float64)),
            "input_std": sig6(x.std(dtype=np.float64)),
            "embedding": [sig6(v) for v in emb[0]],
        })
    doc = {"model_sha256": sha, "preset": PRESET, "images": images}
    with open(OUT, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))
        fh.write("\n")
    print(f"{os.path.relpath(OUT, ROOT)}: {len(images)} images, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
