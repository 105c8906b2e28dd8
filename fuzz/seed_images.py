"""Writes the image seeds of the `image` fuzz target: small files of each format and variant the
tool reads. JPEG: baseline, progressive, grey, CMYK, EXIF orientation. PNG: grey, grey with
alpha, RGBA, 16-bit, palette with transparency. GIF: still and animated. WebP: lossy, lossless,
with alpha, animated. BMP: 24-bit, 32-bit with alpha, palette. TIFF in many variants (see
`tiff_variants`), among them the planar tiled 16-bit files that panicked the tiff crate on a
public corpus. Fuzzing mutates these.

    python fuzz/seed_images.py      # needs Pillow, and tifffile with imagecodecs for the TIFFs

The seeds are tiny (a few KB at most) so that the fuzzer's mutations stay cheap.
"""

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

OUT = Path(__file__).resolve().parent / "corpus" / "image"

# 20x12 does not fill a 16x16 tile either way, so tiled seeds carry padding on the right and at
# the bottom, where the tiff crate's planar bug lies.
TIFF_SIZE = (12, 20)  # rows, columns


def gradient(mode, size=(12, 8)):
    img = Image.new("RGB", size)
    img.putdata([(x * 20 % 256, y * 30 % 256, (x + y) * 10 % 256) for y in range(size[1]) for x in range(size[0])])
    return img.convert(mode)


def with_alpha(img):
    """`img` as RGBA with an alpha that varies, so that encoders keep the channel."""
    rgba = img.convert("RGBA")
    rgba.putalpha(gradient("L", img.size).transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    return rgba


def pil_seeds():
    rgb = gradient("RGB")
    rgb.save(OUT / "seed_baseline.jpg", quality=80)
    rgb.save(OUT / "seed_progressive.jpg", quality=80, progressive=True)
    gradient("L").save(OUT / "seed_grey.jpg", quality=80)
    gradient("CMYK").save(OUT / "seed_cmyk.jpg", quality=80)
    exif = Image.Exif()
    exif[0x0112] = 6
    rgb.save(OUT / "seed_exif6.jpg", quality=80, exif=exif.tobytes())
    gradient("L").save(OUT / "seed_grey.png")
    with_alpha(rgb).convert("LA").save(OUT / "seed_grey_alpha.png")
    with_alpha(rgb).save(OUT / "seed_rgba.png")
    gradient("I;16").save(OUT / "seed_16bit.png")
    pal = gradient("P")
    pal.info["transparency"] = 0
    pal.save(OUT / "seed_palette.png", transparency=0)
    frames = [gradient("RGB"), gradient("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    frames[0].save(OUT / "seed_animated.gif", save_all=True, append_images=frames[1:], duration=50)
    rgb.save(OUT / "seed_still.gif")
    rgb.save(OUT / "seed.webp", quality=80)
    rgb.save(OUT / "seed_lossless.webp", lossless=True)
    with_alpha(rgb).save(OUT / "seed_alpha.webp", quality=80)
    frames[0].save(OUT / "seed_animated.webp", save_all=True, append_images=frames[1:], duration=50, quality=80)
    rgb.save(OUT / "seed.bmp")
    with_alpha(rgb).save(OUT / "seed_rgba.bmp")
    gradient("P").save(OUT / "seed_palette.bmp")
    rgb.save(OUT / "seed.tiff")


def tiff_samples(kind):
    """The pixels of one TIFF colour kind, channels last: (array, photometric, extra arguments)."""
    rows, cols = TIFF_SIZE
    y, x = np.mgrid[0:rows, 0:cols]
    channels = [x * 12 % 256, y * 20 % 256, (x + y) * 8 % 256, 255 - x * 5]
    eight = np.stack(channels, axis=-1).astype(np.uint8)
    sixteen = eight.astype(np.uint16) * 257
    if kind == "grey8":
        return eight[..., 0], "minisblack", {}
    if kind == "grey16":
        return sixteen[..., 0], "minisblack", {}
    if kind == "grey_alpha8":
        return eight[..., :2], "minisblack", {"extrasamples": ["unassalpha"]}
    if kind == "palette8":
        colormap = (np.arange(256 * 3, dtype=np.uint32).reshape(3, 256) * 85 % 65536).astype(np.uint16)
        return eight[..., 0], "palette", {"colormap": colormap}
    if kind == "rgb8":
        return eight[..., :3], "rgb", {}
    if kind == "rgb16":
        return sixteen[..., :3], "rgb", {}
    if kind == "rgba8":
        return eight, "rgb", {"extrasamples": ["unassalpha"]}
    if kind == "rgba16":
        return sixteen, "rgb", {"extrasamples": ["unassalpha"]}
    if kind == "cmyk8":
        return eight, "separated", {}
    raise ValueError(kind)


def tiff_variants():
    """(kind, planar, layout, compression, predictor): every colour kind in strips and in
    tiles, each kind with more than one sample also in separate planes, the compressions taken
    in turn; and the planar tiled 16-bit kinds that panicked the tiff crate in every
    compression."""
    compressions = ["none", "lzw", "zlib", "packbits"]
    layouts = {
        "grey8": [("contig", "strip"), ("contig", "tile")],
        "grey16": [("contig", "strip"), ("contig", "tile")],
        "palette8": [("contig", "strip"), ("contig", "tile")],
    }
    both = [(planar, layout) for planar in ("contig", "separate") for layout in ("strip", "tile")]
    for kind in ("grey_alpha8", "rgb8", "rgb16", "rgba8", "rgba16", "cmyk8"):
        layouts[kind] = both
    variants = []
    for k, (kind, pairs) in enumerate(layouts.items()):
        for j, (planar, layout) in enumerate(pairs):
            if kind in ("rgb16", "rgba16") and (planar, layout) == ("separate", "tile"):
                continue  # all compressions, below
            # Shifted by the kind, so that each layout meets every compression.
            variants.append((kind, planar, layout, compressions[(j + k) % len(compressions)], False))
    for kind in ("rgb16", "rgba16"):
        for compression in compressions:
            variants.append((kind, "separate", "tile", compression, False))
    # The horizontal predictor undoes differences after decompression, a step of its own.
    variants.append(("rgb8", "contig", "strip", "lzw", True))
    variants.append(("rgb16", "separate", "tile", "zlib", True))
    variants.append(("grey16", "contig", "tile", "lzw", True))
    return variants


def write_tiff(path, kind, planar, layout, compression, predictor, byteorder="<"):
    data, photometric, extra = tiff_samples(kind)
    if planar == "separate":
        data = np.moveaxis(data, -1, 0)
    layout_args = {"tile": (16, 16)} if layout == "tile" else {"rowsperstrip": 4}
    tifffile.imwrite(
        path,
        data,
        byteorder=byteorder,
        photometric=photometric,
        planarconfig=planar if data.ndim == 3 else None,
        compression=None if compression == "none" else compression,
        predictor=predictor or None,
        metadata=None,
        **layout_args,
        **extra,
    )


def tiff_seeds():
    for kind, planar, layout, compression, predictor in tiff_variants():
        name = f"seed_{kind}_{planar}_{layout}_{compression}{'_predictor' if predictor else ''}.tif"
        write_tiff(OUT / name, kind, planar, layout, compression, predictor)
    write_tiff(OUT / "seed_rgb8_contig_strip_none_bigendian.tif", "rgb8", "contig", "strip", "none", False, ">")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    pil_seeds()
    tiff_seeds()
    for p in sorted(OUT.glob("seed*")):
        print(p.name, p.stat().st_size)


if __name__ == "__main__":
    main()
