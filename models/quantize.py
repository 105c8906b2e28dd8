"""Static int8 quantization of a backbone, calibrated on your own images.

Why: on CPUs with VNNI or AMX, ONNX Runtime's int8 kernels run a convolutional backbone several
times faster than fp32, and a static (calibrated) per-channel quantization keeps the features
close enough that a head trained on them loses little accuracy. The calibration must see images
like the ones you will embed, preprocessed exactly as headstart preprocesses them, so this script
reads the backbone's description (preset, sizes) and uses models/preprocess_reference.py, the
definition headstart's Rust preprocessing is tested against.

What it does: ONNX Runtime's own tooling (`onnxruntime.quantization`): `quant_pre_process`
(shape inference and graph optimisation), then `quantize_static` in QDQ format, weights int8
per output channel, activations uint8 (or int8), MinMax calibration on up to --count images taken from
DATA in a stable order (sorted paths, every k-th file). It writes the quantized model and a
description beside it (`<output stem>.json`), so `headstart extract --model <output>` works, and
with --register, links it from the fp32 description so that `headstart extract --int8` finds it.

    python models/quantize.py efficientnet_lite0 --data ../shared/data/flowers5 \
        --output models/efficientnet_lite0_int8.onnx --register
    python models/quantize.py models/resnet50.onnx --data DIR --output models/resnet50_int8.onnx

Needs: onnxruntime, onnx, numpy, pillow (benches/peers/requirements.txt pins them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from preprocess_reference import PRESETS, preprocess  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


def fail(message):
    print(f"quantize.py: {message}", file=sys.stderr)
    sys.exit(2)


def resolve(model):
    """(onnx path, description dict or None, description path or None) for a name or a path."""
    if model.endswith(".onnx") or os.path.isfile(model):
        path = Path(model)
        beside = path.with_suffix(".json")
        if beside.is_file():
            return path, json.loads(beside.read_text()), beside
        return path, None, None
    described = HERE / f"{model}.json"
    if not described.is_file():
        fail(f"no backbone named {model!r} in {HERE}: pass a name from there or an .onnx path")
    description = json.loads(described.read_text())
    return described.parent / description["file"], description, described


def calibration_images(data, count):
    """Every k-th image of DATA in sorted order: deterministic and spread over all classes."""
    files = sorted(
        p for p in Path(data).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        fail(f"no images under {data}: pass --data with a folder of class sub-folders")
    step = max(1, len(files) // count)
    return files[::step][:count]


class Reader:
    """onnxruntime.quantization.CalibrationDataReader over preprocessed images, one at a time
    (the bundled models may have their batch fixed at 1)."""

    def __init__(self, input_name, files, preset, resize, size):
        self.input_name = input_name
        self.files = iter(files)
        self.args = (preset, resize, size)

    def get_next(self):
        for path in self.files:
            try:
                x = preprocess(path, *self.args)
            except Exception as err:  # an unreadable calibration image is skipped, not fatal
                print(f"skipping {path}: {err}", file=sys.stderr)
                continue
            return {self.input_name: x[None]}
        return None

    def rewind(self):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a backbone name from models/ or an .onnx path")
    parser.add_argument("--data", required=True, help="calibration images (class folders)")
    parser.add_argument("--output", type=Path, required=True, help="quantized .onnx to write")
    parser.add_argument("--count", type=int, default=200, help="calibration images (default 200)")
    parser.add_argument("--preset", choices=PRESETS, help="default: the description's")
    parser.add_argument("--size", type=int, help="network input side (default: the description's)")
    parser.add_argument("--resize", type=int, help="shorter side before the crop")
    parser.add_argument(
        "--activations",
        choices=("uint8", "int8"),
        default="uint8",
        help="activation type (default uint8: ONNX Runtime's fastest x86 kernels take u8 x s8)",
    )
    parser.add_argument(
        "--register",
        action="store_true",
        help="name the output as the model's int8 version in its description (for --int8)",
    )
    args = parser.parse_args()

    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    path, description, described = resolve(args.model)
    description = description or {}
    preset = args.preset or description.get("preset")
    if preset is None:
        fail(f"{path} has no description beside it: pass --preset ({', '.join(PRESETS)})")
    size = args.size or description.get("input_size") or 224
    resize = args.resize or description.get("resize") or size * 256 // 224

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    files = calibration_images(args.data, args.count)
    print(f"calibrating {path.name} on {len(files)} images of {args.data} ({preset}, {size} from {resize})")

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(path), str(prepared))
        quantize_static(
            str(prepared),
            str(args.output),
            Reader(input_name, files, preset, resize, size),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8 if args.activations == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    onnx.checker.check_model(str(args.output))

    sha256 = hashlib.sha256(args.output.read_bytes()).hexdigest()
    name = args.output.stem
    out_description = {
        "name": name,
        "file": args.output.name,
        "sha256": sha256,
        "preset": preset,
        "input_size": size,
        "resize": resize,
        "output": description.get("output"),
        "output_dim": description.get("output_dim"),
        "source": (
            f"{description.get('name', path.stem)} quantized by models/quantize.py: static QDQ, "
            f"int8 per-channel weights, {args.activations} activations, MinMax on {len(files)} images of "
            f"{Path(args.data).name}"
        ),
    }
    if "licence" in description:
        out_description["licence"] = description["licence"]
    out_json = args.output.with_suffix(".json")
    out_json.write_text(json.dumps(out_description, indent=2) + "\n")
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.1f} MB, sha256 {sha256}) and {out_json}")

    if args.register:
        if described is None:
            fail(f"--register needs a description beside {path}")
        registered = json.loads(described.read_text())
        registered["int8"] = name
        described.write_text(json.dumps(registered, indent=2) + "\n")
        print(f"{described.name} now names {name} as its int8 version")


if __name__ == "__main__":
    main()
