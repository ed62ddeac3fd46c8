"""A seeded corpus of photo-like "own digits" made from held-out MNIST test digits.

Each digit is enlarged, redrawn with its own pen or a finer or fatter one, and put
off-centre on paper in one of several ways people really hand over a digit: a scan
on white paper, a fine or a fat pen, grey paper under uneven light with camera noise,
ruled paper, a drawing app's transparent PNG, and a phone JPEG whose EXIF tag says it
must be rotated. `measure` compares `predict` on these files with the plain 28x28
accuracy of the same digits.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from mnist_cnn.predict import (
    INK_THRESHOLD,
    centre_by_mass,
    predict,
    preprocess_image,
    scale_to_box,
)

# name -> what a person did to make the file
VARIATIONS = {
    "scan": "black pen on white paper, scanned (PNG)",
    "fine pen": "a fine pen, a quarter of MNIST's usual stroke width (PNG)",
    "fat pen": "a marker, one and a half times MNIST's usual stroke width (PNG)",
    "grey paper": "dark pen on grey paper, uneven light, camera noise (PNG)",
    "ruled paper": "blue ruled lines on lit paper, camera noise (colour PNG)",
    "transparent": "black strokes on a transparent background (RGBA PNG)",
    "rotated JPEG": "a phone photo stored sideways with an EXIF rotation tag (JPEG)",
}
# Canvas of every image (height, width) and the digit's box height range, in pixels.
PAGE = (300, 360)
DIGIT_SIDE = (130, 190)
# EXIF orientation -> the transpose that undoes what exif_transpose will do.
_STORE = {3: "ROTATE_180", 6: "ROTATE_90", 8: "ROTATE_270"}


@dataclass(frozen=True)
class Sample:
    """One corpus file: where it is, which variation made it and the true digit."""

    path: Path
    variation: str
    label: int


def _zhang_suen_tables() -> np.ndarray:
    """(2, 256) bool: may the centre go, in sub-step 0 or 1, given its 8 neighbours?

    A neighbourhood is a byte, bit i set when neighbour P(i + 2) is ink (P2 north, then
    clockwise). Both rules of Zhang-Suen depend only on that byte, so one table lookup
    replaces some forty array operations per sub-step.
    """
    codes = np.arange(256)
    p = [(codes >> i) & 1 == 1 for i in range(8)]  # P2..P9
    count = sum(q.astype(int) for q in p)
    transitions = sum((~p[i] & p[(i + 1) % 8]).astype(int) for i in range(8))
    core = (count >= 2) & (count <= 6) & (transitions == 1)
    p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
    first = ~(p2 & p4 & p6) & ~(p4 & p6 & p8)
    second = ~(p2 & p4 & p8) & ~(p2 & p6 & p8)
    return np.stack([core & first, core & second])


_ZHANG_SUEN = _zhang_suen_tables()


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning: a boolean shape -> its one-pixel-wide centre line."""
    mask = np.asarray(mask, bool)
    line = np.zeros_like(mask)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size:
        # Only the shape's bounding box: `redraw` pads the shape with a wide margin,
        # and every pixel the loop visits costs time in each of its passes.
        box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        line[box] = _thin_box(mask[box])
    return line


def _thin_box(mask: np.ndarray) -> np.ndarray:
    """`thin` on a mask that fills its array; returns a view of a padded copy."""
    m = np.pad(mask, 1)
    centre = m[1:-1, 1:-1]  # a view: a pixel removed here is removed from m
    u = m.view(np.uint8)
    while True:
        changed = False
        for step in (0, 1):
            # Neighbours P2..P9, clockwise from north, as the bits of one byte.
            p = [
                u[:-2, 1:-1],
                u[:-2, 2:],
                u[1:-1, 2:],
                u[2:, 2:],
                u[2:, 1:-1],
                u[2:, :-2],
                u[1:-1, :-2],
                u[:-2, :-2],
            ]
            code = p[0].copy()
            for bit in range(1, 8):
                code |= p[bit] << bit
            remove = centre & _ZHANG_SUEN[step][code]
            if remove.any():
                centre[remove] = False
                changed = True
        if not changed:
            return centre


def redraw(digit: np.ndarray, side: int, pen: float | None = None) -> np.ndarray:
    """A 28x28 uint8 MNIST digit -> redrawn `side` px high with strokes `pen` px wide
    (None: the digit's own pen, enlarged).

    The enlarged digit's strokes are thinned (eroded) or thickened (dilated) to the
    pen's width; its centre line is always kept, so thin strokes never break, and blobs
    such as a filled loop stay blobs. Returns float32 ink in [0, 1] (1 = full ink),
    anti-aliased, the digit's box plus a margin.
    """
    rows, cols = np.nonzero(digit > 0)
    box = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = side / box.shape[0]
    margin = int(np.ceil(pen or 0.2 * side)) + 4
    size = (round((box.shape[1] + 4) * scale), round((box.shape[0] + 4) * scale))
    big = np.asarray(
        Image.fromarray(np.pad(box, 2)).resize(size, Image.BICUBIC), np.float32
    )
    shape = np.pad(big > 100, margin)
    inside = ndi.distance_transform_edt(shape)
    outside = ndi.distance_transform_edt(~shape)
    # Signed distance to the stroke's edge: positive inside.
    signed = np.where(shape, inside - 0.5, 0.5 - outside)
    ridge = shape & (inside >= ndi.maximum_filter(inside, 3))
    width = 2 * float(np.median(inside[ridge])) - 1  # the digit's own pen, in px
    pen = width if pen is None else pen
    grow = (pen - width) / 2
    ink = np.clip(signed + grow + 0.5, 0.0, 1.0)
    centre_line = ndi.distance_transform_edt(~thin(shape))
    ink = np.maximum(ink, np.clip(pen / 2 + 0.5 - centre_line, 0.0, 1.0))
    return ink.astype(np.float32)


def _paper(rng: np.random.Generator, level: float, gradient: float) -> np.ndarray:
    """Paper brightness (H, W): `level` lit by a linear gradient in a random
    direction."""
    h, w = PAGE
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    return (level * (1.0 - gradient * ramp)).astype(np.float32)


def _place(rng: np.random.Generator, ink: np.ndarray) -> np.ndarray:
    """Put an ink patch off-centre on an empty page (H, W)."""
    h, w = PAGE
    page = np.zeros(PAGE, np.float32)
    ih, iw = min(ink.shape[0], h), min(ink.shape[1], w)
    top = int(rng.integers(0, h - ih + 1))
    left = int(rng.integers(0, w - iw + 1))
    page[top : top + ih, left : left + iw] = ink[:ih, :iw]
    return page


def render(
    digit: np.ndarray, variation: str, rng: np.random.Generator
) -> tuple[np.ndarray, str, int]:
    """One digit as `variation` makes it -> (pixels, file format, EXIF orientation or
    0).

    Pixels are uint8: (H, W) grey, (H, W, 3) colour or (H, W, 4) with alpha.
    """
    if variation not in VARIATIONS:
        raise ValueError(f"unknown variation {variation!r}; one of {list(VARIATIONS)}")
    side = int(rng.integers(*DIGIT_SIDE))
    # MNIST's strokes are about 0.11 of the digit's height; other variations keep the
    # digit's own pen.
    relative = {"fine pen": 0.028, "fat pen": 0.16}.get(variation)
    pen = side * relative * rng.uniform(0.85, 1.15) if relative else None
    ink = _place(rng, redraw(digit, side, pen))
    if variation == "transparent":
        rgba = np.zeros((*PAGE, 4), np.uint8)  # transparent black, as drawing apps save
        rgba[..., 3] = np.round(255 * ink)
        return rgba, "PNG", 0
    if variation in ("scan", "fine pen", "fat pen"):
        paper = np.full(PAGE, rng.uniform(0.93, 1.0), np.float32)
        noise, pen_colour = 0.01, rng.uniform(0.0, 0.15)
    else:
        level = rng.uniform(0.55, 0.8) if variation == "grey paper" else 0.9
        paper = _paper(rng, level, rng.uniform(0.2, 0.45))
        noise, pen_colour = rng.uniform(0.02, 0.05), rng.uniform(0.05, 0.2)
    if variation == "ruled paper":
        # Light blue lines every 40-60 px, 2 px thick, a hair off horizontal.
        colour = np.array([0.55, 0.7, 0.95], np.float32)
        reflect = np.ones((*PAGE, 3), np.float32)
        spacing, tilt = rng.uniform(40, 60), rng.uniform(-0.004, 0.004)
        yy, xx = np.mgrid[0 : PAGE[0], 0 : PAGE[1]]
        phase = (yy + tilt * xx - rng.uniform(0, spacing)) % spacing
        reflect[phase < 2] = colour
        reflect = reflect * (1 - ink[..., None]) + pen_colour * ink[..., None]
        img = reflect * paper[..., None]
        img = ndi.gaussian_filter(img, (0.7, 0.7, 0))
        img = img + rng.normal(0, noise, img.shape)
    else:
        img = paper * (1 - ink) + pen_colour * paper * ink
        img = ndi.gaussian_filter(img, 0.7) + rng.normal(0, noise, img.shape)
    pixels = np.clip(np.round(255 * img), 0, 255).astype(np.uint8)
    if variation == "rotated JPEG":
        return pixels, "JPEG", int(rng.choice(list(_STORE)))
    return pixels, "PNG", 0


def encode(pixels: np.ndarray, fmt: str, orientation: int = 0) -> bytes:
    """uint8 pixels -> file bytes; with an EXIF `orientation`, the pixels are stored
    turned so that a viewer that obeys the tag shows them upright."""
    image = Image.fromarray(pixels)
    kwargs = {}
    if orientation:
        image = image.transpose(getattr(Image.Transpose, _STORE[orientation]))
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, "JPEG", quality=85, **kwargs)
    else:
        # Noise compresses badly; the fastest level keeps writing the corpus quick.
        image.save(buffer, fmt, compress_level=1, **kwargs)
    return buffer.getvalue()


def make_corpus(
    images: np.ndarray,
    labels: np.ndarray,
    folder: str | Path,
    variations: tuple[str, ...] | None = None,
    seed: int = 0,
) -> list[Sample]:
    """Write every digit (N, 28, 28) uint8 in every variation to `folder`; seeded."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    variations = tuple(variations or VARIATIONS)
    samples = []
    for v, variation in enumerate(variations):
        rng = np.random.default_rng([seed, v])
        stem = variation.replace(" ", "_")
        for i, (digit, label) in enumerate(zip(images, labels)):
            pixels, fmt, orientation = render(digit, variation, rng)
            suffix = ".jpg" if fmt == "JPEG" else ".png"
            path = folder / f"{stem}_{i:04d}{suffix}"
            path.write_bytes(encode(pixels, fmt, orientation))
            samples.append(Sample(path, variation, int(label)))
    return samples


def measure(
    model, images: np.ndarray, labels: np.ndarray, samples: list[Sample]
) -> dict[str, float]:
    """Accuracy of `predict` per variation, and "plain 28x28" for the digits
    themselves."""
    accuracy = {
        "plain 28x28": float(np.mean(predict(model, images).argmax(1) == labels))
    }
    by_variation: dict[str, list[Sample]] = {}
    for sample in samples:
        by_variation.setdefault(sample.variation, []).append(sample)
    for variation, group in by_variation.items():
        x = np.stack([preprocess_image(s.path) for s in group])
        y = np.array([s.label for s in group])
        accuracy[variation] = float(np.mean(predict(model, x).argmax(1) == y))
    return accuracy


def naive_preprocess(path: str | Path) -> np.ndarray:
    """How `preprocess_image` read a file before it learned to read photos.

    Pillow's grey conversion (alpha and EXIF ignored), inversion when the border is
    light, a fixed threshold of 0.1, then MNIST's recipe. Raises whatever Pillow raises.
    """
    with Image.open(path) as im:
        grey = np.asarray(im.convert("L"), np.float32) / 255
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    inverted = 1.0 - grey if np.median(border) > 0.5 else grey
    rows, cols = np.nonzero(inverted > INK_THRESHOLD)
    if len(rows) == 0:
        raise ValueError("the image is blank: no digit found")
    crop = inverted[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return centre_by_mass(scale_to_box(crop))


def bomb_png(path: str | Path, side: int = 20_000) -> Path:
    """A small PNG that declares side x side grey pixels, all zero: 400 megapixels for
    the default side, in a few hundred kilobytes."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    row = b"\0" * (side + 1)  # filter byte + pixels
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path = Path(path)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", data)
        + chunk(b"IEND", b"")
    )
    return path


def issue_cases(digit: np.ndarray, folder: str | Path) -> dict[str, Path]:
    """Issue 17's four failures made from one 28x28 digit: file name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(17)
    ink = _place(rng, redraw(digit, 170))
    white = np.round(255 * (1 - ink)).astype(np.uint8)
    rgba = np.zeros((*PAGE, 4), np.uint8)
    rgba[..., 3] = np.round(255 * ink)
    paths = {
        "transparent": folder / "transparent.png",
        "EXIF-rotated": folder / "rotated.jpg",
        "grey noisy paper": folder / "grey_paper.png",
        "400 megapixels": folder / "huge.png",
    }
    Image.fromarray(rgba).save(paths["transparent"])
    paths["EXIF-rotated"].write_bytes(encode(white, "JPEG", 6))
    paper = _paper(rng, 0.7, 0.35)
    photo = paper * (1 - ink) + 0.15 * paper * ink + rng.normal(0, 0.04, PAGE)
    grey = np.clip(np.round(255 * photo), 0, 255).astype(np.uint8)
    Image.fromarray(grey).save(paths["grey noisy paper"])
    bomb_png(paths["400 megapixels"])
    return paths
