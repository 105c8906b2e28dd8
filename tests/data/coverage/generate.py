"""Writes the decode coverage corpus that `tests/decode_coverage.rs` compares with PIL.

Tiny images (13x9: odd sides catch stride and padding bugs) in every variant of the claimed
formats (JPEG, PNG, GIF, WebP, BMP, TIFF) that Pillow, tifffile and imagecodecs can write, plus
hand-built ones that none of them writes (BMP header versions, RLE and bit fields; interlaced PNG;
a JPEG with a short Adobe segment). Beside each file, `<file>.rgb` holds PIL's pixels: the bytes
of `ImageOps.exif_transpose(Image.open(file)).convert("RGB")`, rows top down. `manifest.json`
lists every file with its format, size, whether the format is lossy, and how the reference was
made. A file that PIL cannot decode is not kept: the corpus is what PIL decodes.

One exception to "PIL's convert": for images that PIL opens with more than 8 bits a sample (modes
I;16, I and F: 16-bit grey PNG, 12-, 16- and 32-bit grey and float TIFF), `convert("RGB")` clips
the values at 255 instead of scaling them, so such an image comes out white almost everywhere.
Their reference is PIL's decoded samples scaled to 0..255 (`v * 255 / (2^bits - 1)`, floats
`v * 255` clipped to 0..1), rounded: "reference": "pil-scaled" in the manifest.

    python tests/data/coverage/generate.py    # Pillow, numpy, tifffile, imagecodecs

The output is deterministic for given library versions (no random state, no time stamps), so a
re-run with the same versions changes no file. The corpus is committed; tests do not run this.
"""

import io
import json
import struct
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import PIL
import tifffile
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
W, H = 13, 9


def pattern(w=W, h=H):
    """RGB uint8, smooth enough for lossy codecs, with a sharp edge and saturated corners."""
    y, x = np.mgrid[0:h, 0:w]
    r = x * 255 // (w - 1)
    g = y * 255 // (h - 1)
    b = (x + 2 * y) * 255 // (w - 1 + 2 * (h - 1))
    img = np.stack([r, g, b], axis=-1).astype(np.uint8)
    img[0, 0] = (255, 0, 0)
    img[0, w - 1] = (0, 0, 255)
    img[h - 1, 0] = (0, 255, 0)
    return img


def asymmetric(w=W, h=H):
    """An image whose every flip and turn differs: for orientation tags."""
    img = pattern(w, h)
    img[: h // 3, : w // 3] = (250, 20, 20)
    img[h // 2 :, w // 2 :] = (20, 20, 250)
    return img


def rgb(w=W, h=H):
    return Image.fromarray(pattern(w, h), "RGB")


def alpha_of(w=W, h=H):
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 19 + y * 7) % 256).astype(np.uint8)


def rgba():
    return Image.fromarray(np.dstack([pattern(), alpha_of()]), "RGBA")


def grey():
    return rgb().convert("L")


def palette(colours=256):
    return rgb().quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def palette_entries(image, n):
    """The first `n` palette entries of a "P" image as (r, g, b), padded with black."""
    flat = list(image.getpalette() or []) + [0] * (3 * n)
    return [tuple(flat[3 * i : 3 * i + 3]) for i in range(n)]


def exif_with(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


# --- JPEG ------------------------------------------------------------------------------------


def jpeg_files():
    out = {}
    img = rgb()

    def save(name, image, **kw):
        buf = io.BytesIO()
        image.save(buf, "JPEG", **kw)
        out[name] = buf.getvalue()

    save("jpeg_420_q90.jpg", img, quality=90)
    save("jpeg_422.jpg", img, quality=90, subsampling=1)
    save("jpeg_444.jpg", img, quality=90, subsampling=0)
    save("jpeg_q100_444.jpg", img, quality=100, subsampling=0)
    save("jpeg_q30.jpg", img, quality=30)
    save("jpeg_progressive.jpg", img, quality=90, progressive=True)
    save("jpeg_optimized.jpg", img, quality=90, optimize=True)
    save("jpeg_restart_markers.jpg", img, quality=90, restart_marker_blocks=1)
    save("jpeg_grey.jpg", grey(), quality=90)
    save("jpeg_grey_progressive.jpg", grey(), quality=90, progressive=True)
    save("jpeg_cmyk.jpg", img.convert("CMYK"), quality=90)
    save("jpeg_cmyk_progressive.jpg", img.convert("CMYK"), quality=90, progressive=True)
    from PIL import ImageCms

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc[24:36] = bytes(12)  # the creation date, for a deterministic file
    icc[84:100] = bytes(16)  # the profile ID, a hash over the date: zero means "not computed"
    icc = bytes(icc)
    save("jpeg_icc.jpg", img, quality=90, icc_profile=icc)
    save("jpeg_comment_dpi.jpg", img, quality=90, comment=b"a comment", dpi=(300, 300))
    asym = Image.fromarray(asymmetric(), "RGB")
    for o in range(1, 9):
        save(f"jpeg_exif_orientation{o}.jpg", asym, quality=95, subsampling=0, exif=exif_with(o))
    # libjpeg-turbo through imagecodecs: what PIL's writer cannot choose.
    arr = pattern()
    out["jpeg_411.jpg"] = imagecodecs.jpeg8_encode(arr, level=90, subsampling="411")
    out["jpeg_440.jpg"] = imagecodecs.jpeg8_encode(arr, level=90, subsampling="440")
    out["jpeg_rgb_colorspace.jpg"] = imagecodecs.jpeg8_encode(arr, level=90, colorspace="RGB", outcolorspace="RGB")
    out["jpeg_lossless_sof3.jpg"] = imagecodecs.jpeg8_encode(arr, lossless=True)
    out["jpeg_lossless_sof3_grey.jpg"] = imagecodecs.jpeg8_encode(np.ascontiguousarray(arr[..., 0]), lossless=True)
    # An Adobe APP14 segment shorter than the 12 bytes of the full one ("Adobe", version, two
    # flag words, transform) but long enough for PIL (which reads the version): found on a
    # public corpus. Inserted right after SOI of a plain YCbCr JPEG.
    base = out["jpeg_420_q90.jpg"]
    for payload, name in ((b"Adobe\x00\x64", "jpeg_app14_short7.jpg"), (b"Adobe\x00\x64\x00\x00\x00", "jpeg_app14_short10.jpg")):
        segment = b"\xff\xee" + struct.pack(">H", len(payload) + 2) + payload
        out[name] = base[:2] + segment + base[2:]
    return out


# --- PNG -------------------------------------------------------------------------------------


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_interlaced(arr, colour_type, bit_depth, plte=None):
    """A hand-written Adam7 PNG (Pillow writes none) of whole-byte samples, filter 0 or 1."""
    h, w = arr.shape[:2]
    samples = arr.reshape(h, w, -1)
    bytes_per_pixel = samples.shape[2] * bit_depth // 8
    raw = b""
    for n, (x0, y0, dx, dy) in enumerate(ADAM7):
        sub = samples[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        dtype = ">u2" if bit_depth == 16 else "u1"
        for row in sub:
            line = row.astype(dtype).tobytes()
            if n % 2:  # Sub filter on every other pass, so both paths run.
                prev = bytes(bytes_per_pixel) + line[:-bytes_per_pixel]
                raw += b"\x01" + bytes((a - b) % 256 for a, b in zip(line, prev))
            else:
                raw += b"\x00" + line
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 1)
    body = png_chunk(b"IHDR", ihdr)
    if plte is not None:
        body += png_chunk(b"PLTE", plte)
    body += png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def png_files():
    out = {}

    def save(name, image, **kw):
        buf = io.BytesIO()
        image.save(buf, "PNG", **kw)
        out[name] = buf.getvalue()

    save("png_rgb8.png", rgb())
    save("png_rgba8.png", rgba())
    save("png_grey8.png", grey())
    save("png_grey_alpha8.png", rgba().convert("LA"))
    save("png_grey1.png", grey().point(lambda v: 255 if v > 100 else 0).convert("1", dither=Image.Dither.NONE))
    for bits in (1, 2, 4, 8):
        save(f"png_palette{bits}.png", palette(1 << bits), bits=bits)
    trns = palette(16)
    save("png_palette4_trns.png", trns, bits=4, transparency=bytes(range(0, 256, 16)))
    save("png_grey8_trns.png", grey(), transparency=128)
    save("png_rgb8_trns.png", rgb(), transparency=(255, 0, 0))
    grey16 = pattern()[..., 0].astype(np.uint16) * 257 + np.arange(W, dtype=np.uint16)
    save("png_grey16.png", Image.fromarray(grey16.astype(np.uint16)))
    rgb16 = pattern().astype(np.uint16) * 257 + 3
    out["png_rgb16.png"] = imagecodecs.png_encode(rgb16)
    out["png_rgba16.png"] = imagecodecs.png_encode(np.dstack([rgb16, alpha_of().astype(np.uint16) * 257]))
    out["png_grey_alpha16.png"] = imagecodecs.png_encode(np.dstack([grey16, alpha_of().astype(np.uint16) * 257]))
    out["png_interlaced_rgb8.png"] = png_interlaced(pattern(), 2, 8)
    out["png_interlaced_rgba8.png"] = png_interlaced(np.dstack([pattern(), alpha_of()]), 6, 8)
    out["png_interlaced_rgb16.png"] = png_interlaced(rgb16, 2, 16)
    pal = palette(256)
    plte = bytes(v for entry in palette_entries(pal, 256) for v in entry)
    out["png_interlaced_palette8.png"] = png_interlaced(np.asarray(pal), 3, 8, plte)
    save("png_exif_orientation6.png", Image.fromarray(asymmetric(), "RGB"), exif=exif_with(6))
    frames = [rgb(), rgb().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    save("png_apng.png", frames[0], save_all=True, append_images=frames[1:], duration=50)
    return out


# --- GIF -------------------------------------------------------------------------------------


def gif_files():
    out = {}

    def save(name, image, **kw):
        buf = io.BytesIO()
        image.save(buf, "GIF", **kw)
        out[name] = buf.getvalue()

    save("gif_palette256.gif", palette(256))
    save("gif_palette2.gif", palette(2))
    save("gif_palette16_interlaced.gif", palette(16), interlace=True)
    save("gif_palette16_not_interlaced.gif", palette(16), interlace=False)
    save("gif_grey.gif", grey())
    save("gif_transparency.gif", palette(16), transparency=3)
    frames = [palette(16), rgb().transpose(Image.Transpose.FLIP_LEFT_RIGHT).quantize(8)]
    save("gif_animated.gif", frames[0], save_all=True, append_images=frames[1:], duration=50, loop=0)
    return out


# --- WebP ------------------------------------------------------------------------------------


def webp_files():
    out = {}

    def save(name, image, **kw):
        buf = io.BytesIO()
        image.save(buf, "WEBP", **kw)
        out[name] = buf.getvalue()

    save("webp_lossy.webp", rgb(), quality=90)
    save("webp_lossy_alpha.webp", rgba(), quality=90)
    save("webp_lossless.webp", rgb(), lossless=True)
    save("webp_lossless_alpha.webp", rgba(), lossless=True, exact=True)
    save("webp_lossless_grey.webp", grey(), lossless=True)
    frames = [rgb(), rgb().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    save("webp_animated_lossless.webp", frames[0], save_all=True, append_images=frames[1:], lossless=True)
    save("webp_lossy_exif_orientation6.webp", Image.fromarray(asymmetric(), "RGB"), quality=95, exif=exif_with(6))
    return out


# --- BMP -------------------------------------------------------------------------------------


def bmp(pixels, bits, header=40, compression=0, palette_rgb=None, masks=None, top_down=False, colours_used=0):
    """A hand-built BMP. `pixels` is the already packed and padded pixel array (bytes, bottom-up
    unless `top_down`). `header`: 12 (OS/2 core), 40 (info), 52/56 (v2/v3), 108 (v4), 124 (v5)."""
    w, h = W, H
    if header == 12:
        info = struct.pack("<IHHHH", 12, w, h, 1, bits)
        pal = b"".join(bytes((b, g, r)) for r, g, b in palette_rgb) if palette_rgb else b""
    else:
        info = struct.pack(
            "<IiiHHIIiiII", header, w, -h if top_down else h, 1, bits, compression, len(pixels), 2835, 2835, colours_used, 0
        )
        if header >= 52:
            r, g, b, a = masks or (0, 0, 0, 0)
            info += struct.pack("<III", r, g, b)
            if header >= 56:
                info += struct.pack("<I", a)
            if header >= 108:
                info += b"sRGB" + bytes(36) + bytes(12)  # colour space type, endpoints, gamma
            if header == 124:
                info += struct.pack("<IIII", 4, 0, 0, 0)  # intent, profile data, size, reserved
        pal = b"".join(bytes((b, g, r, 0)) for r, g, b in palette_rgb) if palette_rgb else b""
    # Bit-field masks after a 40-byte header, as BI_BITFIELDS files most often carry them.
    extra = struct.pack("<III", *masks[:3]) if header == 40 and compression == 3 else b""
    offset = 14 + len(info) + len(extra) + len(pal)
    file_header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return file_header + info + extra + pal + pixels


def packed_rows(indices, bits, top_down=False):
    rows = []
    for row in indices:
        bitstring = "".join(format(int(v), f"0{bits}b") for v in row)
        bitstring += "0" * (-len(bitstring) % 32)
        rows.append(int(bitstring, 2).to_bytes(len(bitstring) // 8, "big"))
    return b"".join(rows if top_down else rows[::-1])


def direct_rows(words, bytes_per_pixel, top_down=False):
    rows = []
    for row in words:
        line = b"".join(int(v).to_bytes(bytes_per_pixel, "little") for v in row)
        rows.append(line + bytes(-len(line) % 4))
    return b"".join(rows if top_down else rows[::-1])


def rle8(indices):
    """RLE8 with both encoded runs and absolute runs, bottom-up, ending each line and the map."""
    out = b""
    for row in indices[::-1]:
        row = [int(v) for v in row]
        x = 0
        while x < len(row):
            run = 1
            while x + run < len(row) and row[x + run] == row[x] and run < 255:
                run += 1
            if run >= 2 or len(row) - x < 3:
                out += bytes((run, row[x]))
                x += run
            else:
                n = min(3 + (x % 3), len(row) - x)  # absolute run of 3 to 5
                literal = bytes(row[x : x + n])
                out += bytes((0, n)) + literal + bytes(len(literal) % 2)
                x += n
        out += b"\x00\x00"
    return out[:-2] + b"\x00\x01"


def rle4(indices):
    """RLE4: encoded runs of two alternating nibbles, and absolute runs, bottom-up."""
    out = b""
    for row in indices[::-1]:
        row = [int(v) for v in row]
        x = 0
        while x < len(row):
            if x % 4 == 0 and len(row) - x >= 3:
                n = min(5, len(row) - x)
                nib = row[x : x + n] + [0] * (n % 2)
                literal = bytes((nib[i] << 4) | nib[i + 1] for i in range(0, len(nib), 2))
                out += bytes((0, n)) + literal + bytes(len(literal) % 2)
                x += n
            else:
                n = min(2, len(row) - x)
                pair = (row[x] << 4) | (row[x + 1] if n == 2 else 0)
                out += bytes((n, pair))
                x += n
        out += b"\x00\x00"
    return out[:-2] + b"\x00\x01"


def bmp_files():
    out = {}

    def save(name, image, **kw):
        buf = io.BytesIO()
        image.save(buf, "BMP", **kw)
        out[name] = buf.getvalue()

    save("bmp_pil_rgb24.bmp", rgb())
    save("bmp_pil_rgba32.bmp", rgba())
    save("bmp_pil_grey8.bmp", grey())
    save("bmp_pil_palette8.bmp", palette(256))
    save("bmp_pil_1bit.bmp", grey().convert("1", dither=Image.Dither.NONE))
    out["bmp_imagecodecs_rgba32_v4.bmp"] = imagecodecs.bmp_encode(np.dstack([pattern(), alpha_of()]))

    arr = pattern()
    r, g, b = (arr[..., i].astype(np.uint32) for i in range(3))
    pal16 = palette(16)
    idx16 = np.asarray(pal16)
    rgb16 = palette_entries(pal16, 16)
    pal256 = palette(256)
    idx256 = np.asarray(pal256)
    rgb256 = palette_entries(pal256, 256)
    idx2 = (idx16 % 2).astype(np.uint8)
    rgb2 = [(10, 200, 30), (250, 240, 5)]

    bgr24 = (b | g << 8 | r << 16)
    for header in (12, 40, 52, 56, 108, 124):
        out[f"bmp_header{header}_rgb24.bmp"] = bmp(direct_rows(bgr24, 3), 24, header)
        out[f"bmp_header{header}_palette8.bmp"] = bmp(packed_rows(idx256, 8), 8, header, palette_rgb=rgb256)
    out["bmp_header40_palette4.bmp"] = bmp(packed_rows(idx16, 4), 4, palette_rgb=rgb16)
    out["bmp_header40_palette1.bmp"] = bmp(packed_rows(idx2, 1), 1, palette_rgb=rgb2)
    out["bmp_header12_palette4.bmp"] = bmp(packed_rows(idx16, 4), 4, 12, palette_rgb=rgb16)
    out["bmp_header40_palette8_16colours_used.bmp"] = bmp(packed_rows(idx16, 8), 8, palette_rgb=rgb16, colours_used=16)
    out["bmp_header40_rgb24_top_down.bmp"] = bmp(direct_rows(bgr24, 3, True), 24, top_down=True)
    out["bmp_header40_palette8_top_down.bmp"] = bmp(packed_rows(idx256, 8, True), 8, palette_rgb=rgb256, top_down=True)
    # 16 bits: 5-5-5 by default, 5-6-5 with bit fields.
    c555 = (r >> 3) << 10 | (g >> 3) << 5 | (b >> 3)
    c565 = (r >> 3) << 11 | (g >> 2) << 5 | (b >> 3)
    out["bmp_header40_rgb16_555.bmp"] = bmp(direct_rows(c555, 2), 16)
    out["bmp_header40_rgb16_565_bitfields.bmp"] = bmp(direct_rows(c565, 2), 16, 40, 3, masks=(0xF800, 0x07E0, 0x001F))
    out["bmp_header56_rgb16_565_bitfields.bmp"] = bmp(direct_rows(c565, 2), 16, 56, 3, masks=(0xF800, 0x07E0, 0x001F, 0))
    out["bmp_header124_rgb16_565_bitfields.bmp"] = bmp(direct_rows(c565, 2), 16, 124, 3, masks=(0xF800, 0x07E0, 0x001F, 0))
    a = alpha_of().astype(np.uint32)
    xrgb = b | g << 8 | r << 16
    argb = xrgb | a << 24
    out["bmp_header40_rgb32.bmp"] = bmp(direct_rows(xrgb, 4), 32)
    out["bmp_header40_rgb32_bitfields.bmp"] = bmp(direct_rows(xrgb, 4), 32, 40, 3, masks=(0xFF0000, 0xFF00, 0xFF))
    out["bmp_header40_rgb32_bitfields_rgba_order.bmp"] = bmp(
        direct_rows(r << 24 | g << 16 | b << 8 | a, 4), 32, 40, 3, masks=(0xFF000000, 0xFF0000, 0xFF00)
    )
    for header in (56, 108, 124):
        out[f"bmp_header{header}_rgba32_bitfields.bmp"] = bmp(
            direct_rows(argb, 4), 32, header, 3, masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000)
        )
    out["bmp_header40_rle8.bmp"] = bmp(rle8(idx256), 8, 40, 1, palette_rgb=rgb256)
    out["bmp_header124_rle8.bmp"] = bmp(rle8(idx256), 8, 124, 1, palette_rgb=rgb256)
    out["bmp_header40_rle4.bmp"] = bmp(rle4(idx16), 4, 40, 2, palette_rgb=rgb16)
    return out


# --- TIFF ------------------------------------------------------------------------------------


def tiff_kind(kind):
    """Samples of one TIFF colour kind (channels last) and the writer's arguments."""
    arr = pattern()
    a = alpha_of()
    g8 = np.asarray(grey())
    g16 = g8.astype(np.uint16) * 257 + (np.arange(W, dtype=np.uint16) * 5)[None, :]
    if kind == "bilevel":
        return g8 > 100, {"photometric": "minisblack"}
    if kind == "bilevel_miniswhite":
        return g8 > 100, {"photometric": "miniswhite"}
    if kind in ("grey2", "grey4"):
        bits = int(kind[-1])
        return (g8 >> (8 - bits)).astype(np.uint8), {"photometric": "minisblack", "bitspersample": bits}
    if kind == "grey8":
        return g8, {"photometric": "minisblack"}
    if kind == "grey8_miniswhite":
        return g8, {"photometric": "miniswhite"}
    if kind == "grey12":
        return (g16 >> 4).astype(np.uint16), {"photometric": "minisblack", "bitspersample": 12}
    if kind == "grey16":
        return g16, {"photometric": "minisblack"}
    if kind == "grey32":
        return g16.astype(np.uint32) * 65537, {"photometric": "minisblack"}
    if kind == "grey_float32":
        return (g8 / 255.0).astype(np.float32), {"photometric": "minisblack"}
    if kind == "grey_alpha8":
        return np.dstack([g8, a]), {"photometric": "minisblack", "extrasamples": ["unassalpha"]}
    if kind == "grey_alpha16":
        return np.dstack([g16, a.astype(np.uint16) * 257]), {"photometric": "minisblack", "extrasamples": ["unassalpha"]}
    if kind in ("palette8", "palette4"):
        n = 256 if kind == "palette8" else 16
        pal = palette(n)
        lut = np.array(palette_entries(pal, n), dtype=np.uint16).T * 257
        if n < 256:
            return np.asarray(pal), {"photometric": "palette", "colormap": lut, "bitspersample": 4}
        return np.asarray(pal), {"photometric": "palette", "colormap": lut}
    if kind == "rgb8":
        return arr, {"photometric": "rgb"}
    if kind == "rgb16":
        return arr.astype(np.uint16) * 257 + 3, {"photometric": "rgb"}
    if kind == "rgb_float32":
        return (arr / 255.0).astype(np.float32), {"photometric": "rgb"}
    if kind == "rgba8":
        return np.dstack([arr, a]), {"photometric": "rgb", "extrasamples": ["unassalpha"]}
    if kind == "rgba8_associated":
        premultiplied = (arr.astype(np.uint32) * a[..., None] // 255).astype(np.uint8)
        return np.dstack([premultiplied, a]), {"photometric": "rgb", "extrasamples": ["assocalpha"]}
    if kind == "rgba16":
        return np.dstack([arr, a]).astype(np.uint16) * 257, {"photometric": "rgb", "extrasamples": ["unassalpha"]}
    if kind == "cmyk8":
        return np.asarray(rgb().convert("CMYK")), {"photometric": "separated"}
    if kind == "cmyk16":
        return np.asarray(rgb().convert("CMYK")).astype(np.uint16) * 257, {"photometric": "separated"}
    if kind == "ycbcr8":
        return np.asarray(rgb().convert("YCbCr")), {"photometric": "ycbcr"}
    if kind == "cielab8":
        return np.asarray(rgb().convert("LAB")), {"photometric": "cielab"}
    raise ValueError(kind)


def write_tiff(kind, planar="contig", layout="strip", compression=None, predictor=None, byteorder="<", extratags=()):
    data, args = tiff_kind(kind)
    if planar == "separate" and data.ndim == 3:
        data = np.moveaxis(data, -1, 0)
        args["planarconfig"] = "separate"
    elif data.ndim == 3:
        args["planarconfig"] = "contig"
    if layout == "tile":
        args["tile"] = (16, 16)
    else:
        args["rowsperstrip"] = 4
    buf = io.BytesIO()
    if compression == "jpeg" and kind == "ycbcr8":
        # tifffile converts RGB to YCbCr in the JPEG codec itself.
        data = np.asarray(rgb())
        args.update(photometric="ycbcr", subsampling=(2, 2))
    tifffile.imwrite(
        buf,
        data,
        byteorder=byteorder,
        compression=compression,
        predictor=predictor,
        metadata=None,
        software=False,
        extratags=list(extratags),
        **args,
    )
    return buf.getvalue()


TIFF_KINDS = [
    "bilevel", "bilevel_miniswhite", "grey2", "grey4", "grey8", "grey8_miniswhite", "grey12", "grey16", "grey32",
    "grey_float32", "grey_alpha8", "grey_alpha16", "palette4", "palette8", "rgb8", "rgb16", "rgb_float32", "rgba8",
    "rgba8_associated", "rgba16", "cmyk8", "cmyk16", "ycbcr8", "cielab8",
]  # fmt: skip


def tiff_files():
    out = {}

    def add(name, make):
        try:
            out[name] = make()
        except Exception as e:  # a variant the writer refuses is simply not in the corpus
            print(f"  tifffile cannot write {name}: {e}")

    # Every colour kind uncompressed, in strips, in partial tiles, and (with more than one
    # sample) in separate planes.
    for kind in TIFF_KINDS:
        add(f"tiff_{kind}_strip.tif", lambda: write_tiff(kind))
        add(f"tiff_{kind}_tile.tif", lambda: write_tiff(kind, layout="tile"))
        if tiff_kind(kind)[0].ndim == 3:
            add(f"tiff_{kind}_separate_strip.tif", lambda: write_tiff(kind, planar="separate"))
            add(f"tiff_{kind}_separate_tile.tif", lambda: write_tiff(kind, planar="separate", layout="tile"))
    # Every compression on the common kinds.
    for compression in ("lzw", "zlib", "adobe_deflate", "packbits", "lzma", "zstd", "webp", "jpeg"):
        for kind in ("grey8", "rgb8", "rgba8", "grey16", "rgb16", "palette8", "cmyk8"):
            if compression in ("jpeg", "webp") and kind not in ("grey8", "rgb8", "rgba8"):
                continue
            add(f"tiff_{kind}_{compression}.tif", lambda: write_tiff(kind, compression=compression))
        add(f"tiff_rgb8_separate_tile_{compression}.tif", lambda: write_tiff("rgb8", "separate", "tile", compression))
    add("tiff_ycbcr8_jpeg.tif", lambda: write_tiff("ycbcr8", compression="jpeg"))
    for kind in ("grey8", "rgb8", "rgb16", "grey16", "rgba8"):
        add(f"tiff_{kind}_lzw_predictor.tif", lambda: write_tiff(kind, compression="lzw", predictor="horizontal"))
        add(f"tiff_{kind}_zlib_predictor_tile.tif", lambda: write_tiff(kind, layout="tile", compression="zlib", predictor="horizontal"))
    add("tiff_grey_float32_zlib_float_predictor.tif", lambda: write_tiff("grey_float32", compression="zlib", predictor="floatingpoint"))
    add("tiff_rgb_float32_zlib_predictor.tif", lambda: write_tiff("rgb_float32", compression="zlib", predictor="horizontal"))
    for kind in ("rgb8", "rgb16", "grey16", "cmyk8", "palette8"):
        add(f"tiff_{kind}_bigendian.tif", lambda: write_tiff(kind, byteorder=">"))
    add("tiff_rgb16_bigendian_lzw_predictor.tif", lambda: write_tiff("rgb16", compression="lzw", predictor="horizontal", byteorder=">"))
    # Orientation tag (274), all eight, on an image whose every flip and turn differs.
    asym = asymmetric()
    for o in range(1, 9):
        add(
            f"tiff_rgb8_orientation{o}.tif",
            lambda: _tiff_bytes(asym, photometric="rgb", extratags=[(274, 3, 1, o, True)]),
        )
    # Bilevel with the fax compressions (written by Pillow through libtiff), and multi-page.
    bilevel = grey().point(lambda v: 255 if v > 100 else 0).convert("1", dither=Image.Dither.NONE)
    for compression in ("group3", "group4", "tiff_ccitt", "packbits", "tiff_lzw"):
        buf = io.BytesIO()
        bilevel.save(buf, "TIFF", compression=compression)
        out[f"tiff_bilevel_pil_{compression}.tif"] = buf.getvalue()
    for mode in ("RGB", "L", "P", "CMYK", "LAB", "YCbCr", "RGBA", "LA", "I;16", "I;16B"):
        image = rgba().convert("LA") if mode == "LA" else (rgba() if mode == "RGBA" else rgb().convert(mode) if mode not in ("I;16", "I;16B") else Image.fromarray(tiff_kind("grey16")[0]).convert(mode))
        for compression in (None, "tiff_lzw", "jpeg"):
            if compression == "jpeg" and mode not in ("RGB", "L", "YCbCr", "CMYK"):
                continue
            image.info.pop("icc_profile", None)  # LAB carries one with a creation date
            buf = io.BytesIO()
            try:
                image.save(buf, "TIFF", compression=compression)
            except Exception as e:
                print(f"  Pillow cannot write TIFF {mode} {compression}: {e}")
                continue
            out[f"tiff_pil_{mode.replace(';', '')}_{compression or 'raw'}.tif"] = buf.getvalue()
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        tif.write(pattern(), photometric="rgb", metadata=None, software=False)
        tif.write(pattern()[::-1], photometric="rgb", metadata=None, software=False)
    out["tiff_rgb8_two_pages.tif"] = buf.getvalue()
    return out


def _tiff_bytes(data, **kw):
    buf = io.BytesIO()
    tifffile.imwrite(buf, data, metadata=None, software=False, **kw)
    return buf.getvalue()


# --- references ------------------------------------------------------------------------------


def tifffile_rgb(path):
    """tifffile's reading of a grey, RGB(A) or CMYK TIFF of 8, 16 or 32-bit unsigned samples, as
    RGB8 (16 bits: the high byte, as PIL reduces them; 32 bits: scaled and rounded; CMYK with
    PIL's formula), or None for anything else."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        if page.photometric not in (1, 2, 5) or page.bitspersample not in (8, 16, 32) or page.dtype.kind != "u":
            return None
        if any(e == 1 for e in np.atleast_1d(page.extrasamples)):
            return None
        data = page.asarray()
    if page.planarconfig == 2 and data.ndim == 3:
        data = np.moveaxis(data, 0, -1)
    if page.bitspersample == 16:
        data = data >> 8
    elif page.bitspersample == 32:
        data = np.floor(data.astype(np.float64) * 255 / (2**32 - 1) + 0.5)
    data = data.astype(np.uint8)
    if page.photometric == 1:  # grey, maybe with alpha
        grey = data if data.ndim == 2 else data[..., 0]
        return np.repeat(grey[..., None], 3, axis=2)
    if page.photometric == 5:  # CMYK, as PIL's cmyk2rgb
        return np.asarray(Image.fromarray(np.ascontiguousarray(data[..., :4]), "CMYK").convert("RGB"))
    return data[..., :3]


def reference(path):
    """PIL's pixels (see the module doc) and how they were made. For a TIFF that tifffile also
    reads (plain RGB or grey, 8 or 16 bits, not rotated), PIL's pixels are checked against
    tifffile's; where they differ by more than 1 PIL is wrong (it reads 16-bit separate planes
    as 8-bit ones, and unsigned 32-bit samples as signed), and tifffile's pixels are the
    reference instead."""
    pixels, how, size = pil_reference(path)
    if path.suffix == ".tif" and "orientation" not in path.name:
        other = tifffile_rgb(path)
        if other is not None and np.abs(other.astype(int) - pixels.astype(int)).max() > 1:
            return other, "tifffile, PIL wrong", size
    return pixels, how, size


def pil_reference(path):
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            values = np.asarray(im).astype(np.float64)
            if im.mode == "F":
                scaled = np.clip(values, 0, 1) * 255
            else:
                bits = 16 if im.mode.startswith("I;16") else 32
                tag = getattr(im, "tag_v2", {}).get(258) if hasattr(im, "tag_v2") else None
                if tag:
                    bits = tag[0] if isinstance(tag, tuple) else tag
                scaled = values * 255 / (2**bits - 1)
            grey8 = np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8)
            return np.repeat(grey8[..., None], 3, axis=2), "pil-scaled", im.size
        return np.asarray(im.convert("RGB")), "pil-convert", im.size


LOSSY = {"JPEG": True, "WEBP": None, "PNG": False, "GIF": False, "BMP": False, "TIFF": None}


def main():
    for old in HERE.glob("*/*"):
        old.unlink()
    groups = {"jpeg": jpeg_files, "png": png_files, "gif": gif_files, "webp": webp_files, "bmp": bmp_files, "tiff": tiff_files}
    entries = []
    refused = []
    for folder, make in groups.items():
        (HERE / folder).mkdir(exist_ok=True)
        for name, data in sorted(make().items()):
            path = HERE / folder / name
            path.write_bytes(data)
            try:
                pixels, how, (w, h) = reference(path)
            except Exception as e:
                # PIL's message names the file by its absolute path; the entry names it already.
                reason = str(e).replace(f" '{path}'", "")
                refused.append(f"{folder}/{name}: {type(e).__name__}: {reason}")
                path.unlink()
                continue
            with Image.open(path) as im:
                fmt = im.format
                lossy = fmt == "JPEG" and "lossless" not in name
                lossy |= fmt == "WEBP" and "lossless" not in name
                lossy |= fmt == "TIFF" and any(c in name for c in ("jpeg", "webp"))
            assert pixels.shape == (h, w, 3), (name, pixels.shape)
            (HERE / folder / (name + ".rgb")).write_bytes(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
            entries.append({"file": f"{folder}/{name}", "format": fmt, "width": w, "height": h, "lossy": bool(lossy), "reference": how})
    manifest = {
        "generated_by": "tests/data/coverage/generate.py",
        "pillow": PIL.__version__,
        "tifffile": tifffile.__version__,
        "imagecodecs": imagecodecs.__version__,
        "numpy": np.__version__,
        "pil_refused": refused,
        "pil_wrong": [e["file"] for e in entries if e["reference"].endswith("PIL wrong")],
        "files": entries,
    }
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(entries)} files, {len(refused)} that PIL refused (not kept):")
    for line in refused:
        print("  " + line)


if __name__ == "__main__":
    main()
