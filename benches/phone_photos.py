"""Writes the phone-photo benchmark set: 150 camera-sized JPEGs made from the shared photos.

Why: headstart's users point it at phone and camera photos of 3-12 megapixels, where decoding
costs more than the network, and there are no such photos here. These stand in for them:
photos from ../shared/data/hymenoptera and ../shared/data/flowers5 (for tests and benchmarks
only: see that folder's README for their sources and licences; hymenoptera is a subset of
ImageNet, flowers5 is CC-BY 2.0 by its Flickr authors), centre-cropped to the camera's aspect,
upscaled with PIL's LANCZOS filter and saved at quality 90, 4:2:0, as phones do. A third carry
an EXIF orientation tag with the pixels stored turned accordingly, as a phone held upright
stores them (mostly 6, some of each other value); a few are progressive.

A smooth upscale holds little for the entropy coder: about 0.07 bytes a pixel, where a phone's
12 MP JPEG of real detail holds 0.25-0.4, and Huffman decoding, which no reduction skips, costs
by the bit. `--grain SIGMA` adds Gaussian grain of that deviation (of 255) before saving: 6 gives
0.22 bytes a pixel, a dense set that decodes as slowly as camera files do. The grain is then most
of what the network sees in these otherwise smooth pictures.

    python benches/phone_photos.py [--out target/bench/phone-photos] [--count 150] [--grain 0]

Writes OUT/<class>/<name>.jpg (classes: ants, bees, daisy, dandelion, rose, sunflower, tulip) and
OUT.json listing each file's size, megapixels, orientation and source. Never commit the images.
Deterministic: the same sources give the same files.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

# Camera sizes (landscape): a 12 MP phone main camera, and the 8, 6 and 3 MP modes and cameras.
SIZES = {12: (4000, 3000), 8: (3264, 2448), 6: (3000, 2000), 3: (2048, 1536)}
# Half the photos at 12 MP, the rest spread over the smaller sizes.
MEGAPIXELS = [12, 8, 12, 6, 12, 3]
# What each EXIF orientation asks a viewer to do (PIL's exif_transpose), and its inverse, which
# turns the upright photo into the stored pixels.
INVERSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
# Every third photo is tagged: mostly 6 (a phone held upright), each other value at least once.
TAGS = [6, 6, 8, 6, 3, 6, 2, 6, 4, 6, 5, 6, 7, 6, 8, 6, 3]


def sources(count):
    """(class, path) pairs: a third from hymenoptera (ants, bees), the rest from flowers5, each
    class taken evenly over its sorted files."""
    classes = [("ants", SHARED / "hymenoptera", "ants"), ("bees", SHARED / "hymenoptera", "bees")]
    classes += [(c, SHARED / "flowers5" / c, None) for c in ("daisy", "dandelion", "rose", "sunflower", "tulip")]
    per_class = [count // 6] * 2 + [(count - 2 * (count // 6)) // 5] * 5
    per_class[-1] += count - sum(per_class)
    picked = []
    for (name, folder, sub), n in zip(classes, per_class):
        if sub:
            files = sorted(p for split in ("train", "val") for p in (folder / split / sub).glob("*.jp*g"))
        else:
            files = sorted(folder.glob("*.jp*g"))
        step = len(files) / n
        picked += [(name, files[int(i * step)]) for i in range(n)]
    return picked


def make(job):
    index, name, source, out, grain = job
    rng = random.Random(index)
    megapixels = MEGAPIXELS[index % len(MEGAPIXELS)]
    width, height = SIZES[megapixels]
    with Image.open(source) as img:
        upright = ImageOps.exif_transpose(img).convert("RGB")
    # Portrait sources stay portrait; square ones (all of flowers5) alternate.
    w, h = upright.size
    if h > w or (h == w and rng.random() < 0.4):
        width, height = height, width
    # Centre crop to the camera's aspect, then upscale in one LANCZOS pass.
    scale = min(w / width, h / height)
    cw, ch = width * scale, height * scale
    # Clamped: the float box can land a hair outside the image, which PIL refuses.
    box = (max(0.0, (w - cw) / 2), max(0.0, (h - ch) / 2), min(w, (w + cw) / 2), min(h, (h + ch) / 2))
    big = upright.resize((width, height), Image.LANCZOS, box=box)
    if grain:
        noise = np.random.default_rng(index).normal(0.0, grain, (height, width, 3))
        big = Image.fromarray(np.clip(np.asarray(big, dtype=np.float32) + noise, 0, 255).round().astype(np.uint8))
    orientation = TAGS[(index // 3) % len(TAGS)] if index % 3 == 0 else 1
    stored = big.transpose(INVERSE[orientation]) if orientation != 1 else big
    exif = Image.Exif()
    exif[0x010F] = "headstart"  # Make
    exif[0x0110] = "phone_photos.py"  # Model
    exif[0x0112] = orientation
    progressive = index % 25 == 7
    path = out / name / f"{name}_{index:03d}_{megapixels}mp_o{orientation}{'_prog' if progressive else ''}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    stored.save(path, "JPEG", quality=90, subsampling="4:2:0", exif=exif.tobytes(), progressive=progressive)
    # The file must display as the upright photo: PIL's own EXIF handling reads it back upright.
    with Image.open(path) as back:
        assert ImageOps.exif_transpose(back).size == big.size, path
    return {
        "path": str(path.relative_to(out)),
        "source": str(source.relative_to(SHARED)),
        "width": stored.size[0],
        "height": stored.size[1],
        "megapixels": megapixels,
        "orientation": orientation,
        "progressive": progressive,
        "bytes": path.stat().st_size,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "target" / "bench" / "phone-photos")
    parser.add_argument("--count", type=int, default=150)
    parser.add_argument("--grain", type=float, default=0.0, help="Gaussian grain, deviation of 255 (0: none)")
    args = parser.parse_args()
    jobs = [(i, name, source, args.out, args.grain) for i, (name, source) in enumerate(sources(args.count))]
    with ProcessPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        files = list(pool.map(make, jobs))
    listing = args.out.with_suffix(".json")
    listing.write_text(json.dumps(files, indent=1) + "\n")
    total = sum(f["bytes"] for f in files)
    print(f"{len(files)} photos in {args.out}, {total / 2**20:.0f} MiB, {total / sum(f['width'] * f['height'] for f in files):.2f} bytes a pixel; list in {listing}")


if __name__ == "__main__":
    main()
