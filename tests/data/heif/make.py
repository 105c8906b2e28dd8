"""Makes the HEIC and AVIF test images in this folder and their reference pixels.

    python3 -m pip install "pillow==13.0.0" "pillow-heif==1.8.1" numpy
    python3 tests/data/heif/make.py

pillow-heif writes HEIC (its wheel bundles libheif with x265), Pillow writes AVIF (its wheel
bundles libavif). Each image's reference is what Python reads back, `Image.open(f).convert("RGB")`
(pillow-heif's libheif and libde265 for HEIC, Pillow's libavif for AVIF), saved as `<name>.png`.
headstart's decoder (libheif 1.15 from Debian 12) must come within a level or two of it: the coded
YUV is the same for both, only the conversion to RGB differs. Except in `rotated.avif`, the one
file with 4:2:0 chroma decoded by another library: libavif upsamples chroma bilinearly, libheif
1.15 by repeating samples, so they differ by up to 126 levels along the mark's sharp edges and 3
on the gradients (mean 2.2); tests/heif.rs allows a mean of 3 there. `plain.avif` is 4:4:4.
`deep.heic` is 10-bit (as HDR phone photos are), which both read as 8 bits. `alpha.heic` has an
alpha channel (a ramp), which both drop without blending.

The `rotated` files hold a landscape picture that is shown rotated 90 degrees clockwise (EXIF
orientation 6), the way phones store portrait photos: pillow-heif writes an `irot` box and keeps
EXIF orientation 6 as well (as iPhones do), Pillow writes `irot` and drops the EXIF tag. Upright,
they are portrait, with the yellow corner mark at the top right. Decoding must apply `irot` once:
a decoder that also applied the EXIF tag would turn the HEIC upside down.
"""

from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, ImageOps

HERE = Path(__file__).parent
W, H = 64, 48


def picture() -> Image.Image:
    """Smooth gradients (what codecs keep well) and a yellow mark in the top-left corner."""
    x = np.arange(W)[None, :].repeat(H, 0)
    y = np.arange(H)[:, None].repeat(W, 1)
    rgb = np.stack([x * 4, y * 5, 200 - y * 2], axis=-1).clip(0, 255).astype(np.uint8)
    rgb[:12, :16] = (250, 220, 20)
    return Image.fromarray(rgb, "RGB")


def exif_orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


def main() -> None:
    pillow_heif.register_heif_opener()
    img = picture()
    img.save(HERE / "plain.heic", quality=90)
    img.save(HERE / "rotated.heic", quality=90, exif=exif_orientation(6).tobytes())
    img.save(HERE / "plain.avif", quality=90, subsampling="4:4:4")
    img.save(HERE / "rotated.avif", quality=90, exif=exif_orientation(6).tobytes())
    deep = (np.asarray(img).astype(np.uint16) * 257).tobytes()
    pillow_heif.options.SAVE_HDR_TO_12_BIT = False
    pillow_heif.from_bytes("RGB;16", img.size, deep).save(HERE / "deep.heic", quality=90)
    alpha = img.copy()
    alpha.putalpha(Image.fromarray((np.arange(W)[None, :].repeat(H, 0) * 4).astype(np.uint8), "L"))
    alpha.save(HERE / "alpha.heic", quality=90)
    for name in ["plain.heic", "rotated.heic", "deep.heic", "alpha.heic", "plain.avif", "rotated.avif"]:
        with Image.open(HERE / name) as decoded:
            # Pillow's AVIF reader leaves irot/imir to EXIF orientation (it moves them there).
            rgb = ImageOps.exif_transpose(decoded).convert("RGB")
        rgb.save(HERE / (name.replace(".", "_") + ".png"))
        print(name, (HERE / name).stat().st_size, "bytes", rgb.size)


if __name__ == "__main__":
    main()
