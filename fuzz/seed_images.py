"""Writes the image seeds of the `image` fuzz target: one small file per format and variant the
tool reads (baseline, progressive and CMYK JPEG with and without EXIF orientation, 8/16-bit,
palette and alpha PNG, animated GIF, WebP, BMP, TIFF). Fuzzing mutates these.

    python fuzz/seed_images.py      # needs Pillow
"""

from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parent / "corpus" / "image"


def gradient(mode, size=(12, 8)):
    img = Image.new("RGB", size)
    img.putdata([(x * 20 % 256, y * 30 % 256, (x + y) * 10 % 256) for y in range(size[1]) for x in range(size[0])])
    return img.convert(mode)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rgb = gradient("RGB")
    rgb.save(OUT / "seed_baseline.jpg", quality=80)
    rgb.save(OUT / "seed_progressive.jpg", quality=80, progressive=True)
    gradient("CMYK").save(OUT / "seed_cmyk.jpg", quality=80)
    exif = Image.Exif()
    exif[0x0112] = 6
    rgb.save(OUT / "seed_exif6.jpg", quality=80, exif=exif.tobytes())
    gradient("L").save(OUT / "seed_grey.png")
    gradient("RGBA").save(OUT / "seed_rgba.png")
    gradient("I;16").save(OUT / "seed_16bit.png")
    pal = gradient("P")
    pal.info["transparency"] = 0
    pal.save(OUT / "seed_palette.png", transparency=0)
    frames = [gradient("RGB"), gradient("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    frames[0].save(OUT / "seed_animated.gif", save_all=True, append_images=frames[1:], duration=50)
    rgb.save(OUT / "seed.webp", quality=80)
    rgb.save(OUT / "seed.bmp")
    rgb.save(OUT / "seed.tiff")
    for p in sorted(OUT.glob("seed*")):
        print(p.name, p.stat().st_size)


if __name__ == "__main__":
    main()
