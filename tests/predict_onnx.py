"""Runs a model written by `headstart export` with Python onnxruntime alone, no headstart.

Why: the export must work "anywhere ONNX Runtime runs". This script reads the preprocessing that
export records in the model's metadata, prepares each image with the reference preprocessing in
models/preprocess_reference.py (PIL), runs the model and prints JSON:
{"labels": [...], "probabilities": [[...], ...]} in the order the images were given.
The integration test `tests/classify.rs` compares its output with `headstart predict`.

    python tests/predict_onnx.py .headstart/export/model.onnx IMAGE [IMAGE ...]
"""

import json
import os
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models"))
from preprocess_reference import preprocess  # noqa: E402


def main() -> None:
    model, images = sys.argv[1], sys.argv[2:]
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    spec = json.loads(meta["headstart.preprocessing"])
    labels = meta["headstart.labels"].split("\n")
    (output,) = session.get_outputs()
    name = session.get_inputs()[0].name
    rows = []
    # One image per call: converted backbones often fix the batch at 1.
    for path in images:
        chw = preprocess(path, spec["preset"], resize=spec["resize"], size=spec["size"])
        x = chw.transpose(1, 2, 0) if spec["layout"] == "nhwc" else chw
        (probs,) = session.run([output.name], {name: x[None].astype(np.float32)})
        rows.append([float(p) for p in probs[0]])
    json.dump({"labels": labels, "probabilities": rows}, sys.stdout)


if __name__ == "__main__":
    main()
