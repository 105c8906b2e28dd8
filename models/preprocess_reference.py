"""Reference preprocessing that headstart's Rust `preprocess` module must match pixel for pixel.

Why: embeddings are only comparable across tools if the input tensor is the same, so the
verification script and the golden-vector generator both use this one definition, and the Rust
tests compare against vectors it produced.

Geometry (all presets): a big RGB or grey JPEG is decoded reduced by 4 or 8 in the DCT domain
as far as keeps its shorter side at least 2 * resize (PIL's `draft`, told the exact reduction,
since it would also reduce by 2, which headstart does not; libjpeg-turbo reduces in both), EXIF
orientation applied, RGB, then the classic evaluation crop done in
a single resampling pass: a centred square of side min(w, h) * size / resize, in float pixel
coordinates, resized to size x size with PIL's BILINEAR (an antialiasing triangle filter when
downscaling). This equals "shorter side to `resize`, centre crop `size`" without resampling
twice.

Presets (value per channel, from 0..255 RGB pixels as float32):
    tflite     (x - 127) / 128                      EfficientNet-Lite and other TF-Lite models
    inception  x / 127.5 - 1                         Inception / MobileNet
    caffe      BGR order, x - [103.939, 116.779, 123.68], no scaling   Keras ResNet50
    torch      (x / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]   torchvision

Use: `from preprocess_reference import preprocess; chw = preprocess(path, "tflite")`
(with `models/` on sys.path). Run directly to print a tensor summary for one image:

    python models/preprocess_reference.py ../shared/data/hymenoptera/val/ants/800px-Meat_eater_ant_qeen_excavating_hole.jpg
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image, ImageOps

PRESETS = ("tflite", "inception", "caffe", "torch")

_CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)
_TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def crop_resize(img: Image.Image, resize: int = 256, size: int = 224) -> Image.Image:
    """Centre crop of side min(w, h) * size / resize, resampled to size x size in one pass."""
    w, h = img.size
    c = min(w, h) * size / resize
    box = ((w - c) / 2, (h - c) / 2, (w + c) / 2, (h + c) / 2)
    return img.resize((size, size), Image.BILINEAR, box=box)


def normalise(hwc: np.ndarray, preset: str) -> np.ndarray:
    """uint8 HWC RGB -> float32 CHW in the preset's value range and channel order."""
    x = hwc.astype(np.float32)
    if preset == "tflite":
        x = (x - np.float32(127.0)) / np.float32(128.0)
    elif preset == "inception":
        x = x / np.float32(127.5) - np.float32(1.0)
    elif preset == "caffe":
        x = x[..., ::-1] - _CAFFE_BGR_MEAN
    elif preset == "torch":
        x = (x / np.float32(255.0) - _TORCH_MEAN) / _TORCH_STD
    else:
        raise ValueError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


def reduction(width: int, height: int, shorter_side: int) -> int:
    """headstart's choice (src/preprocess/jpeg.rs): 8 or 4 if the shorter side stays at least
    `shorter_side`, else 1."""
    return next((d for d in (8, 4) if min(width, height) >= d * max(shorter_side, 1)), 1)


def load_rgb(path, shorter_side: int | None = None) -> Image.Image:
    """The image upright, as RGB; an RGB or grey JPEG reduced in the DCT domain while its
    shorter side stays at least `shorter_side` (None: full size)."""
    with Image.open(path) as img:
        if shorter_side and img.format == "JPEG" and img.mode in ("RGB", "L"):
            d = reduction(*img.size, shorter_side)
            if d > 1:
                # draft picks the largest power of 2 up to min(w // W, h // H), here exactly d.
                img.draft(img.mode, (img.size[0] // d, img.size[1] // d))
        # Phone photos store rotation as a tag; without this the network sees them sideways.
        return ImageOps.exif_transpose(img).convert("RGB")


def preprocess(path, preset: str = "tflite", resize: int = 256, size: int = 224) -> np.ndarray:
    """Image file -> float32 [3, size, size] tensor (CHW) for the given preset."""
    return normalise(np.asarray(crop_resize(load_rgb(path, 2 * resize), resize, size)), preset)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        t = preprocess(p)
        print(p, t.shape, f"min {t.min():.4f} max {t.max():.4f} mean {t.mean():.6f}")
