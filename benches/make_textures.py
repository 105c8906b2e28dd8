"""Writes a procedural texture classification set, far from ImageNet, under CC0-1.0.

Why: the shared photo sets (hymenoptera, flowers5, cifar10) are all ImageNet-like, where a frozen
backbone's pooled features already separate the classes and fine-tuning its top block gains
little. To measure where it pays off (issue 17) we need a set whose classes differ mainly in what
ImageNet features handle poorly: the characteristic scale of noise, fine periodicity, the kind of
orientation field. Every image here is drawn from numpy noise by this script, so the whole set is
ours to license: CC0-1.0 (public domain dedication), written into OUT/README.md.

Classes (each image draws its own scale, orientation, phase, contrast, colour or grey, pixel
noise, blur, JPEG quality and a distractor texture, so neighbouring classes overlap):

    noise_fine    band-pass noise, centre frequency 0.09-0.28 cycles/px
    noise_medium  band-pass noise, 0.04-0.12 cycles/px
    noise_coarse  band-pass noise, 0.015-0.055 cycles/px
    stripes       straight parallel stripes, period 5-26 px, slightly phase-warped
    wood          rings about a centre up to 3 image-widths away (far: nearly stripes), warped
    marble        veins: 1 - |sin(stripe + turbulence)|^p, strongly warped
    fibres        orientation-filtered noise: streaks of one direction
    cracks        Voronoi cell borders (F2 - F1 small), cells 14-44 px
    spots         soft blobs on a jittered grid, 9-36 px apart
    weave         plain weave: a checker of horizontal and vertical thread segments

    python benches/make_textures.py [--out target/bench/textures] [--train 150 --val 40 --test 60]
        [--size 256] [--seed 17] [--classes noise_fine,stripes,...] [--difficulty 1.0]
        [--probe]   # then: logistic regression on frozen EfficientNet-Lite0 embeddings

Writes OUT/{train,val,test}/<class>/<class>_<split>_<index>.jpg and OUT/README.md. Each image's
random stream is seeded by (seed, split, class, index) alone, so changing counts or the class list
leaves the other images unchanged. Deterministic: the same seed, size, difficulty and numpy and
Pillow versions give byte-identical files (numpy's Generator distributions and pocketfft are not
guaranteed bit-stable across numpy releases). `--probe` needs onnxruntime and scikit-learn; it
embeds OUT with models/efficientnet_lite0.onnx (preprocessing of models/preprocess_reference.py,
tflite preset) and fits a LogisticRegression with C chosen on val, printing val/test accuracy.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("train", "val", "test")
# Upper ends of the nuisances each image draws uniformly, all scaled by --difficulty: weight of the
# distractor texture, illumination gradient (field deviations per image width), pixel grain
# (of full range), Gaussian blur radius (px). Calibrated so that difficulty 1 puts a logistic
# regression on frozen EfficientNet-Lite0 features in the 70-88% band: with the defaults, val
# 0.850, test 0.823 (C=0.01, numpy 2.4.6, Pillow 13.0.0, onnxruntime 1.32.0).
MIX, GRADIENT, GRAIN, BLUR = 0.75, 1.2, 0.09, 1.6
TAU = 2 * np.pi


# ---------------------------------------------------------------- noise primitives


def _freqs(n):
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    return fx, fy


def _std(a):
    a = a - a.mean()
    s = a.std()
    return a / s if s > 0 else a


def band_noise(rng, n, f0, octaves=0.6, theta=None, spread=None):
    """Zero-mean, unit-deviation noise with a log-Gaussian spectrum around f0 cycles/px; with
    theta, only frequency vectors within ~spread radians of that direction (streaks across it)."""
    fx, fy = _freqs(n)
    f = np.hypot(fx, fy)
    f[0, 0] = 1e-9
    h = np.exp(-0.5 * (np.log2(f / f0) / octaves) ** 2)
    if theta is not None:
        d = (np.arctan2(fy, fx) - theta + np.pi / 2) % np.pi - np.pi / 2
        h *= np.exp(-0.5 * (d / spread) ** 2)
    h[0, 0] = 0.0
    w = rng.standard_normal((n, n))
    return _std(np.fft.irfft2(np.fft.rfft2(w) * h, s=(n, n)))


def fbm(rng, n, beta=2.0, fmin=2.0):
    """Fractal (1/f^beta power) noise, no content below fmin cycles per image."""
    fx, fy = _freqs(n)
    f = np.hypot(fx, fy) * n
    h = np.where(f >= fmin, np.maximum(f, 1e-9) ** (-beta / 2), 0.0)
    w = rng.standard_normal((n, n))
    return _std(np.fft.irfft2(np.fft.rfft2(w) * h, s=(n, n)))


def turbulence(rng, n, fmin=2.0, octaves=5):
    """Sum of |band noise| over octaves (Perlin's turbulence), unit deviation."""
    t = np.zeros((n, n))
    for o in range(octaves):
        f = fmin * 2**o / n
        if f > 0.4:
            break
        t += np.abs(band_noise(rng, n, f, 0.5)) / 2**o
    return _std(t)


def coords(n, theta=0.0):
    """Pixel grid (x, y), and u, v rotated by theta."""
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    u = x * np.cos(theta) + y * np.sin(theta)
    v = -x * np.sin(theta) + y * np.cos(theta)
    return x, y, u, v


def jittered_points(rng, n, cell, jitter=0.9):
    """One random point per cell of a grid of about `cell` px, periodic over the image."""
    g = max(2, int(round(n / cell)))
    c = n / g
    off = (rng.random((g, g, 2)) - 0.5) * jitter + 0.5
    return g, c, off


def voronoi(rng, n, cell, jitter=0.9):
    """F1, F2 distances (px) to the two nearest jittered grid points, and the nearest's id."""
    g, c, off = jittered_points(rng, n, cell, jitter)
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    gi, gj = (y // c).astype(int), (x // c).astype(int)
    f1 = np.full((n, n), np.inf)
    f2 = np.full((n, n), np.inf)
    ident = np.zeros((n, n), dtype=np.int64)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            ci, cj = gi + di, gj + dj
            pi_, pj = ci % g, cj % g
            py = (ci + off[pi_, pj, 0]) * c
            px = (cj + off[pi_, pj, 1]) * c
            d = np.hypot(x - px, y - py)
            closer = d < f1
            f2 = np.where(closer, f1, np.minimum(f2, d))
            ident = np.where(closer, pi_ * g + pj, ident)
            f1 = np.where(closer, d, f1)
    return f1, f2, ident, g


# ---------------------------------------------------------------- classes (values ~ [0, 1])


def noise_fine(rng, n):
    return band_noise(rng, n, rng.uniform(0.09, 0.28), rng.uniform(0.35, 0.8))


def noise_medium(rng, n):
    return band_noise(rng, n, rng.uniform(0.04, 0.12), rng.uniform(0.35, 0.8))


def noise_coarse(rng, n):
    return band_noise(rng, n, rng.uniform(0.015, 0.055), rng.uniform(0.35, 0.8))


def stripes(rng, n):
    period = np.exp(rng.uniform(np.log(5), np.log(26)))
    _, _, u, _ = coords(n, rng.uniform(0, np.pi))
    phase = u * TAU / period + rng.uniform(0, TAU)
    phase += rng.uniform(0, 1.2) * fbm(rng, n, 2.5, 1.0)
    return np.tanh(rng.uniform(0.5, 4.0) * np.sin(phase))


def wood(rng, n):
    period = np.exp(rng.uniform(np.log(5), np.log(22)))
    dist = rng.uniform(0.0, 3.0) * n
    a = rng.uniform(0, TAU)
    x, y, _, _ = coords(n)
    cx, cy = n / 2 + dist * np.cos(a), n / 2 + dist * np.sin(a)
    r = np.hypot(x - cx, y - cy) + rng.uniform(1, 6) * fbm(rng, n, 2.5, 1.0)
    ring = (r / period + rng.uniform()) % 1.0
    grain = 0.15 * band_noise(rng, n, rng.uniform(0.1, 0.3), 0.5, a + np.pi / 2, 0.15)
    return ring ** rng.uniform(1.0, 4.0) + grain


def marble(rng, n):
    period = np.exp(rng.uniform(np.log(20), np.log(90)))
    _, _, u, _ = coords(n, rng.uniform(0, np.pi))
    s = np.sin(u * TAU / period + rng.uniform(1.5, 4.0) * turbulence(rng, n, rng.uniform(1.5, 4.0)))
    return 1.0 - np.abs(s) ** rng.uniform(0.3, 1.0)


def fibres(rng, n):
    f0 = np.exp(rng.uniform(np.log(0.04), np.log(0.25)))
    return band_noise(rng, n, f0, rng.uniform(0.4, 1.0), rng.uniform(0, np.pi), rng.uniform(0.04, 0.25))


def cracks(rng, n):
    f1, f2, ident, g = voronoi(rng, n, rng.uniform(14, 44), rng.uniform(0.6, 1.0))
    width = rng.uniform(0.8, 3.0)
    edge = 1.0 - np.exp(-(((f2 - f1) / width) ** 2))
    shade = rng.uniform(0, 0.35) * rng.random(g * g)[ident]
    return edge + shade


def spots(rng, n):
    spacing = rng.uniform(9, 36)
    f1, _, ident, g = voronoi(rng, n, spacing, rng.uniform(0.5, 1.0))
    radius = spacing * rng.uniform(0.15, 0.4) * rng.uniform(0.7, 1.3, g * g)[ident]
    soft = rng.uniform(0.5, 3.0)
    blob = 1.0 / (1.0 + np.exp((f1 - radius) / soft))
    return blob * rng.uniform(0.6, 1.0, g * g)[ident]


def weave(rng, n):
    p = np.exp(rng.uniform(np.log(5), np.log(20)))
    _, _, u, v = coords(n, rng.uniform(0, np.pi / 2))
    u, v = u + rng.uniform(0, 2 * p), v + rng.uniform(0, 2 * p)
    ci, cj = np.floor(u / p), np.floor(v / p)
    horiz = (ci + cj) % 2 == 0
    # A thread is bright in the middle, dark at its edges; across it varies along the other axis.
    across_u = np.sin(np.pi * ((v / p) % 1.0))
    across_v = np.sin(np.pi * ((u / p) % 1.0))
    thread = np.where(horiz, across_u, across_v) ** rng.uniform(0.3, 1.5)
    return thread * (1 - rng.uniform(0, 0.5) * np.where(horiz, 1.0, 0.0))


CLASSES = {
    f.__name__: f
    for f in (noise_fine, noise_medium, noise_coarse, stripes, wood, marble, fibres, cracks, spots, weave)
}


# ---------------------------------------------------------------- rendering


def colourise(rng, t):
    """Field -> uint8 RGB: random contrast and offset, grey (40%) or a two- or three-colour ramp."""
    t = _std(t)
    t = 0.5 + t * rng.uniform(0.12, 0.3)
    t = np.clip(t, 0.0, 1.0)
    if rng.random() < 0.4:
        lo, hi = sorted(rng.uniform(0, 1, 2))
        lo, hi = lo * 0.5, 0.5 + hi * 0.5
        rgb = np.repeat((lo + (hi - lo) * t)[..., None], 3, axis=2)
    else:
        k = 2 if rng.random() < 0.6 else 3
        stops = rng.uniform(0, 1, (k, 3))
        while np.linalg.norm(stops[-1] - stops[0]) < 0.45:  # visible contrast
            stops = rng.uniform(0, 1, (k, 3))
        if rng.random() < 0.5:
            stops = np.sort(stops, axis=0)  # a ramp from dark to light
        pos = np.linspace(0, 1, k)
        rgb = np.stack([np.interp(t, pos, stops[:, c]) for c in range(3)], axis=2)
    return rgb


def render(name, rng, n, difficulty):
    field = _std(CLASSES[name](rng, n))
    # A distractor texture of random scale, so class boundaries blur.
    mix = rng.uniform(0, MIX) * difficulty
    if mix > 0:
        d = band_noise(rng, n, np.exp(rng.uniform(np.log(0.012), np.log(0.3))), 0.7)
        field = np.sqrt(1 - min(mix, 0.9) ** 2) * field + min(mix, 0.9) * d
    # Slow illumination gradient.
    _, _, u, _ = coords(n, rng.uniform(0, TAU))
    field = field + rng.uniform(0, GRADIENT) * difficulty * (u / n)
    rgb = colourise(rng, field)
    rgb += rng.normal(0, rng.uniform(0, GRAIN) * difficulty, rgb.shape)
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    blur = rng.uniform(0, BLUR) * difficulty
    if blur > 0.3:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    return img, int(rng.integers(70, 96))


def image_seed(seed, split, name, index):
    h = hashlib.sha256(f"{seed}/{split}/{name}/{index}".encode()).digest()
    return int.from_bytes(h[:8], "little")


def generate(out, counts, size, seed, classes, difficulty):
    out = Path(out)
    written = 0
    for stale in sorted(out.glob("*/*/*.jpg")):  # a previous run's images, any class
        if stale.parts[-3] in SPLITS:
            stale.unlink()
    for folder in sorted(out.glob("*/*")):
        if folder.parts[-2] in SPLITS and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    for split, count in zip(SPLITS, counts):
        for name in classes:
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                rng = np.random.default_rng(image_seed(seed, split, name, i))
                img, quality = render(name, rng, size, difficulty)
                img.save(folder / f"{name}_{split}_{i:04d}.jpg", quality=quality, optimize=False)
                written += 1
    return written


README = """# Procedural textures (headstart benchmark set)

{total} JPEG images, {size}x{size} px, {nclass} classes, split train {train} / val {val} / test {test}
per class, as `{{train,val,test}}/<class>/<class>_<split>_<index>.jpg`.

Made by `benches/make_textures.py` of the headstart repository:

    {command}

(seed {seed}, difficulty {difficulty}, numpy {numpy}, Pillow {pillow}). Every pixel comes from
numpy's random generator seeded per image by SHA-256 of `seed/split/class/index`; no photograph or
other outside material is used. Same seed, options and numpy/Pillow versions give byte-identical
files.

## Classes

{class_lines}

Each image also draws a random contrast, grey (40%) or a random two- or three-colour ramp, a
band-pass noise distractor of random scale (weight up to {mix:.2f}, the class texture keeping
sqrt(1 - w^2)), a slow illumination gradient,
Gaussian pixel noise, a Gaussian blur of up to {blur:.1f} px and a JPEG quality of 70-95, so the
classes overlap: fine noise blurred looks like medium noise, far-centred wood like stripes, weakly
turbulent marble like wavy stripes, strongly oriented fibres like stripes.

## Licence

CC0-1.0. The images are generated by us and dedicated to the public domain under the Creative
Commons CC0 1.0 Universal dedication (SPDX: CC0-1.0): use,
copy, modify and redistribute them for any purpose without asking and without attribution.
"""

DESCRIPTIONS = {
    "noise_fine": "isotropic band-pass noise, centre frequency 0.09-0.28 cycles/px",
    "noise_medium": "isotropic band-pass noise, 0.04-0.12 cycles/px",
    "noise_coarse": "isotropic band-pass noise, 0.015-0.055 cycles/px",
    "stripes": "straight parallel stripes, period 5-26 px, any angle, slight phase warp, soft to hard edges",
    "wood": "growth rings about a centre 0-3 image widths away, period 5-22 px, warped, with fine grain",
    "marble": "veins: 1 - |sin(stripe + turbulence)|^p, period 20-90 px, strong turbulence",
    "fibres": "noise filtered to one orientation (streaks), 0.04-0.25 cycles/px, spread 0.04-0.25 rad",
    "cracks": "Voronoi cell borders (F2 - F1 small), cells 14-44 px, faint per-cell shading",
    "spots": "soft round blobs on a jittered grid 9-36 px apart, radius 15-40% of the spacing",
    "weave": "plain weave: checker of horizontal and vertical thread segments, period 5-20 px",
}


def write_readme(out, args, classes, counts):
    lines = "\n".join(f"- `{c}`: {DESCRIPTIONS[c]}" for c in classes)
    import PIL

    text = README.format(
        total=sum(counts) * len(classes), size=args.size, nclass=len(classes),
        train=counts[0], val=counts[1], test=counts[2],
        command="python " + " ".join(["benches/make_textures.py"] + [a for a in sys.argv[1:] if a != "--probe"]),
        seed=args.seed, difficulty=args.difficulty, numpy=np.__version__, pillow=PIL.__version__,
        class_lines=lines, mix=MIX * args.difficulty, blur=BLUR * args.difficulty,
    )
    (Path(out) / "README.md").write_text(text)


# ---------------------------------------------------------------- probe


def probe(out, classes, threads=2, batch=32):
    """Logistic regression on frozen EfficientNet-Lite0 features: (val, test) accuracy, best C."""
    import onnxruntime as ort
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sys.path.insert(0, str(ROOT / "models"))
    from preprocess_reference import preprocess

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(ROOT / "models" / "efficientnet_lite0.onnx"), opts)
    data = {}
    for split in SPLITS:
        paths, labels = [], []
        for k, name in enumerate(classes):
            files = sorted((Path(out) / split / name).glob("*.jpg"))
            paths += files
            labels += [k] * len(files)
        feats = []
        for i in range(0, len(paths), batch):
            x = np.stack([preprocess(p, "tflite") for p in paths[i : i + batch]])
            feats.append(sess.run(["features"], {"input": x})[0])
        data[split] = (np.concatenate(feats), np.array(labels))
    scaler = StandardScaler().fit(data["train"][0])
    xs = {s: scaler.transform(data[s][0]) for s in SPLITS}
    best = None
    for c in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0):
        m = LogisticRegression(C=c, max_iter=3000).fit(xs["train"], data["train"][1])
        acc = m.score(xs["val"], data["val"][1])
        if best is None or acc > best[0]:
            best = (acc, c, m)
    val, c, m = best
    test = m.score(xs["test"], data["test"][1])
    pred = m.predict(xs["test"])
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(confusion, (data["test"][1], pred), 1)
    return val, test, c, confusion


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "target" / "bench" / "textures"))
    ap.add_argument("--train", type=int, default=150)
    ap.add_argument("--val", type=int, default=40)
    ap.add_argument("--test", type=int, default=60)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--classes", default=",".join(CLASSES), help="comma-separated subset of: " + ", ".join(CLASSES))
    ap.add_argument("--difficulty", type=float, default=1.0, help="scales distractor, gradient, noise, blur")
    ap.add_argument("--probe", action="store_true", help="then fit a logistic regression on Lite0 features")
    ap.add_argument("--probe-only", action="store_true", help="probe OUT as it is, generate nothing")
    args = ap.parse_args()
    classes = [c for c in args.classes.split(",") if c]
    unknown = [c for c in classes if c not in CLASSES]
    if unknown:
        ap.error(f"unknown classes {unknown}; choose from {', '.join(CLASSES)}")
    counts = (args.train, args.val, args.test)
    if not args.probe_only:
        t0 = time.perf_counter()
        n = generate(args.out, counts, args.size, args.seed, classes, args.difficulty)
        write_readme(args.out, args, classes, counts)
        print(f"wrote {n} images to {args.out} in {time.perf_counter() - t0:.1f} s")
    if args.probe or args.probe_only:
        t0 = time.perf_counter()
        val, test, c, confusion = probe(args.out, classes)
        print(f"Lite0 + logistic regression: val {val:.3f}, test {test:.3f} (C={c}) in {time.perf_counter() - t0:.1f} s")
        width = max(len(c) for c in classes)
        for name, row in zip(classes, confusion):
            print(f"  {name:>{width}} " + " ".join(f"{v:3d}" for v in row))


if __name__ == "__main__":
    main()
