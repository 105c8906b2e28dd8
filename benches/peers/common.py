"""What the extract peers share: the image list, the preprocessing and the result line.

Every peer embeds the same files (all images under DATA, sorted, the same order as headstart)
with the same preprocessing definition (models/preprocess_reference.py, which headstart's own
preprocessing is tested against), so that only the framework differs.
"""

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "models"))
from preprocess_reference import preprocess  # noqa: E402,F401

SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


def images(data):
    """Every image file under DATA, sorted; hidden files skipped as headstart skips them."""
    files = []
    for path in sorted(Path(data).rglob("*")):
        parts = path.relative_to(data).parts
        if path.is_file() and path.suffix.lower() in SUFFIXES and not any(p.startswith(".") for p in parts):
            files.append(path)
    return files


def cores():
    return len(os.sched_getaffinity(0))


def safe(function, path, *args):
    """A file the decoder refuses becomes None (counted as skipped), as in headstart."""
    try:
        return function(path, *args)
    except Exception:
        return None


def arguments(doc):
    """The options every peer takes: the image folder and the batch size."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("data")
    parser.add_argument("--batch", type=int, default=32)
    return parser


def batches(files, load, size):
    """(loaded images, how many of this batch could not be loaded) per batch of `size` files,
    loaded in this thread, as a notebook loop does."""
    for i in range(0, len(files), size):
        loaded = [safe(load, p) for p in files[i : i + size]]
        yield [x for x in loaded if x is not None], sum(x is None for x in loaded)


def report(peer, n_images, skipped, seconds, network_seconds, **extra):
    print(
        "BENCH_JSON "
        + json.dumps(
            {
                "peer": peer,
                "images": n_images,
                "skipped": skipped,
                "seconds": seconds,
                "network_seconds": network_seconds,
                "images_per_second": (n_images - skipped) / seconds,
                **extra,
            }
        ),
        flush=True,
    )
