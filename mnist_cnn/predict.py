"""Class probabilities for digits: arrays, or image files read and cleaned as MNIST.

Two kinds of picture reach `preprocess_image`:

- a *clean drawing* (a uniform background, as from the book's draw-a-digit canvas or a
  drawing app): it goes straight to MNIST's recipe, exactly as the page's JavaScript
  does;
- anything else, such as a *photo of paper*: the lighting is levelled, the ink is
  separated from the paper with a threshold chosen from the image (Otsu's method), ruled
  lines, page edges and specks are dropped, and only then does MNIST's recipe run.

SciPy and Pillow are imported inside the functions that need them, so `import mnist_cnn`
stays light.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from numpy.typing import ArrayLike

from .model import CNN
from .pixels import LUMA, to_grey, to_unit_float

# Files are reduced to at most this many pixels per side right after decoding: a digit
# needs far fewer, and every later step then costs the same for a phone photo as for a
# scan.
WORK_SIDE = 1024
# The largest image (width x height) decoded in full. JPEGs are decoded at a reduced
# scale (Image.draft), so for them only Pillow's own limit applies
# (Image.MAX_IMAGE_PIXELS, about 89 megapixels); beyond it Pillow suspects a
# decompression bomb and so do we.
MAX_PIXELS = 50_000_000
# A drawing is "clean" when at least this share of its pixels is exactly the background.
_CLEAN_SHARE = 0.5
# MNIST's strokes are about 0.11 of the digit's longer side (median over the test set);
# below THIN_PEN (thinner than 99% of MNIST) a pen is redrawn to MNIST_PEN.
THIN_PEN, MNIST_PEN = 0.05, 0.10
# Pixels brighter than this (ink 1, paper 0) count as the digit when cropping.
INK_THRESHOLD = 0.1
# A straight horizontal or vertical run longer than this share of the image's side is a
# ruled line or a page edge, not part of a digit.
LINE_SHARE = 0.6
# Image files that folders are searched for (the CLI); anything Pillow opens is accepted
# when named directly.
IMAGE_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
)


def load_image(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read an image file as grey float32 (H, W) in [0, 1], ink dark on light.

    Handles EXIF orientation, palette, 16-bit, CMYK and alpha (see `preprocess_image`);
    multi-frame files give their first frame. Returns the image and notes on what was
    done. Raises FileNotFoundError for a missing file and ValueError, naming the file,
    for anything that cannot be read.
    """
    from PIL import Image, ImageOps

    notes: list[str] = []
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such image file")
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder, not an image file")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # Pillow warns between one and two times its pixel limit and refuses beyond:
            # both are an error here (no image that large is a single digit).
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                frames = getattr(im, "n_frames", 1)
                if frames > 1:
                    notes.append(f"first of {frames} frames")
                    im.seek(0)
                w, h = im.size
                if im.format == "JPEG":
                    # Decode at 1/2, 1/4 or 1/8 scale: memory in proportion to the
                    # result.
                    im.draft(im.mode, (WORK_SIDE, WORK_SIDE))
                    if im.size != (w, h):
                        notes.append(f"decoded at 1/{round(w / im.size[0])} scale")
                elif w * h > MAX_PIXELS:
                    raise ValueError(
                        f"is {w}x{h} = {w * h / 1e6:.0f} megapixels, more than the "
                        f"{MAX_PIXELS / 1e6:.0f} megapixels read in full; save it "
                        "smaller or as a JPEG"
                    )
                im.load()
                try:
                    orientation = int(im.getexif().get(0x0112, 1))
                    upright = ImageOps.exif_transpose(im)
                except Exception:  # a damaged EXIF block: the pixels are still fine
                    orientation, upright = 1, im
                    notes.append("EXIF orientation unreadable, ignored")
                if orientation in range(2, 9):
                    notes.append(f"turned upright (EXIF orientation {orientation})")
                grey = _decode_grey(upright, notes)
        for warning in caught:
            notes.append(f"Pillow: {warning.message}")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such image file") from None
    except Image.DecompressionBombError as err:
        raise ValueError(f"{path}: too large to read safely ({err})") from None
    except Image.DecompressionBombWarning as err:
        raise ValueError(f"{path}: too large to read safely ({err})") from None
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    except MemoryError:
        raise ValueError(f"{path}: not enough memory to decode this image") from None
    except Exception as err:  # Pillow's decoders raise many kinds for broken files
        raise ValueError(
            f"{path}: not a readable image (PNG or JPEG expected): "
            f"{type(err).__name__}: {err}"
        ) from None
    return grey, notes


def _decode_grey(im: Any, notes: list[str]) -> np.ndarray:
    """A decoded PIL image -> grey float32 in [0, 1], reduced to at most WORK_SIDE."""
    mode = im.mode
    alpha_modes = ("RGBA", "RGBa", "LA", "La", "PA")
    if mode in alpha_modes or (mode in ("P", "L", "RGB") and "transparency" in im.info):
        arr = np.asarray(im.convert("RGBA"))
        scale = 255.0
    elif mode.startswith("I;16"):
        arr, scale = np.asarray(im).astype(np.uint16), 65535.0
    elif mode in ("I", "F"):
        arr = np.asarray(im)
        # 16-bit PNGs open as "I"; a float TIFF may hold [0, 1] or [0, 255].
        top = float(arr.max(initial=0))
        scale = (
            1.0 if (mode == "F" and top <= 1.0) else (65535.0 if top > 255 else 255.0)
        )
    elif mode == "L":
        arr, scale = np.asarray(im), 255.0
    else:  # P, 1, CMYK, YCbCr, LAB, HSV, RGBX, RGB: Pillow converts them to RGB
        arr, scale = np.asarray(im.convert("RGB")), 255.0
    if arr.ndim not in (2, 3) or min(arr.shape[:2]) == 0:
        raise ValueError(f"decodes to an empty or odd array of shape {arr.shape}")
    k = int(np.ceil(max(arr.shape[:2]) / WORK_SIDE))
    if k > 1:
        notes.append(f"reduced {k}x (from {arr.shape[1]}x{arr.shape[0]})")
    arr = _block_mean(arr, k) / np.float32(scale)
    if not np.all(np.isfinite(arr)):
        raise ValueError("contains NaN or infinite values")
    arr = np.clip(arr, 0.0, 1.0)
    if arr.ndim == 3 and arr.shape[-1] == 4:
        return _flatten_alpha(to_grey(arr), arr[..., 3], notes)
    return to_grey(arr) if arr.ndim == 3 else arr


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Average k x k blocks (edge blocks padded) -> float32; k = 1 copies."""
    if k == 1:
        return a.astype(np.float32)
    h, w = a.shape[:2]
    ph, pw = -h % k, -w % k
    if ph or pw:
        a = np.pad(a, [(0, ph), (0, pw)] + [(0, 0)] * (a.ndim - 2), mode="edge")
    shape = (a.shape[0] // k, k, a.shape[1] // k, k, *a.shape[2:])
    return a.reshape(shape).mean(axis=(1, 3), dtype=np.float32)


def _flatten_alpha(grey: np.ndarray, alpha: np.ndarray, notes: list[str]) -> np.ndarray:
    """Grey + alpha -> one opaque grey image, as the picture means it.

    If the opaque pixels all have one colour (black strokes on a transparent background,
    what drawing apps export), the alpha channel *is* the drawing: ink = alpha.
    Otherwise the colours carry the picture and are composited onto its own background
    colour.
    """
    if alpha.min(initial=1.0) >= 1.0:
        return grey
    opaque = grey[alpha > 0.5]
    if opaque.size and np.ptp(np.percentile(opaque, [1, 99])) > 0.25:
        paper = np.float32(np.median(opaque))
        notes.append("transparent parts composited onto the background colour")
        return (alpha * grey + (1 - alpha) * paper).astype(np.float32)
    notes.append("transparency read as ink")
    return (1.0 - alpha).astype(np.float32)


def _array_to_grey(image: ArrayLike) -> np.ndarray:
    """An array (H, W) or (H, W, 3|4), uint8/uint16/bool/float -> grey float32."""
    arr = np.asarray(image)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
    ):
        raise ValueError(f"an image must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        pass
    elif arr.ndim != 2:
        raise ValueError(
            f"an image must be 2-D (H, W) or (H, W, 3|4), got shape {arr.shape}"
        )
    if min(arr.shape[:2]) == 0:
        raise ValueError(f"the image is empty, shape {arr.shape}")
    if arr.dtype == np.uint16:
        x = arr.astype(np.float32) / np.float32(65535.0)
    else:
        x = to_unit_float(arr)
        # Integer or float pixels above 1 are taken to be on the 0-255 scale.
        if arr.dtype != np.uint8 and np.nanmax(x) > 1.0:
            x = x / np.float32(255.0)
    if not np.all(np.isfinite(x)):
        raise ValueError("the image contains NaN or infinite values")
    if x.ndim == 3:
        grey = x[..., :3] @ np.asarray(LUMA, np.float32)
        if x.shape[-1] == 4:
            grey = _flatten_alpha(grey, np.clip(x[..., 3], 0, 1), [])
        return grey.astype(np.float32)
    return x


def preprocess_image(
    image: np.ndarray | str | os.PathLike, steps: bool = False
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    """Any image, array or file -> a 28x28 float32 digit in [0, 1], made as MNIST's.

    A clean drawing is inverted to light-on-dark if its border is light. A photo has its
    lighting levelled, the ink thresholded (Otsu), and ruled lines, page edges and
    specks removed. Then MNIST's recipe: crop, pen widened if much thinner than MNIST's,
    longer side scaled to 20 px, centre of mass at the centre of 28x28. With `steps`,
    also return a dict of every intermediate image and "notes" (a list of what was done
    to the file).
    """
    notes: list[str] = []
    name = None
    if isinstance(image, (str, os.PathLike)):
        name = os.fspath(image)
        grey, notes = load_image(image)
    else:
        grey = _array_to_grey(image)
    try:
        canvas, out = _preprocess(grey)
    except ValueError as err:
        raise ValueError(f"{name}: {err}" if name else str(err)) from None
    out["notes"] = notes
    if not steps and name and any(n.startswith("first of") for n in notes):
        warnings.warn(f"{name}: {'; '.join(notes)}", UserWarning, stacklevel=2)
    return (canvas, out) if steps else canvas


def _preprocess(grey: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """grey (H, W) float32 -> (28x28 digit, intermediate images)."""

    out: dict[str, Any] = {"grey": grey}
    # MNIST digits are light on dark: invert images whose border is mostly light.
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    inverted = 1.0 - grey if np.median(border) > 0.5 else grey
    # A clean drawing: most pixels are exactly the background (0 after inversion). It
    # takes the draw-a-digit page's path unchanged (chapters/_static/draw_digit.js).
    clean = np.mean(np.abs(inverted) <= 0.5 / 255) >= _CLEAN_SHARE
    out["clean"] = np.bool_(clean)
    if clean:
        out["inverted"] = digit = inverted
    else:
        digit = _extract_digit(grey, out)
    rows, cols = np.nonzero(digit > INK_THRESHOLD)
    if len(rows) == 0:
        raise ValueError("the image is blank: no digit found")
    crop = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    out["cropped"] = crop
    crop = _widen_thin_pen(crop)
    out["widened"] = crop
    small = scale_to_box(crop)
    canvas = centre_by_mass(small)
    out["scaled"] = small
    out["centred"] = canvas
    return canvas, out


def scale_to_box(crop: np.ndarray) -> np.ndarray:
    """A cropped digit (h, w) resized (Lanczos) so its longer side is 20 pixels."""
    from PIL import Image

    h, w = crop.shape
    scale = 20.0 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(
        Image.fromarray(crop).resize(size, Image.LANCZOS), dtype=np.float32
    )
    return np.clip(small, 0.0, 1.0)


def centre_by_mass(small: np.ndarray) -> np.ndarray:
    """A digit (at most 28x28) pasted into 28x28 with its centre of mass at (14, 14)."""
    canvas = np.zeros((28, 28), np.float32)
    total = small.sum()
    if total <= 0:
        raise ValueError("the image is blank: no digit found")
    ys, xs = np.indices(small.shape)
    cy, cx = (ys * small).sum() / total, (xs * small).sum() / total
    top = int(np.clip(round(14 - cy), 0, 28 - small.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - small.shape[1]))
    canvas[top : top + small.shape[0], left : left + small.shape[1]] = small
    return canvas


def otsu_threshold(values: ArrayLike, bins: int = 256) -> float:
    """Otsu's threshold for values in [0, 1]: maximises the between-class variance."""
    hist, edges = np.histogram(np.ravel(values), bins=bins, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(hist.sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)  # weight of the class at or below each bin
    m0 = np.cumsum(p * centres)
    total = m0[-1]
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total * w0 - m0) ** 2 / (w0 * w1)
    between = np.nan_to_num(between[:-1], nan=-1.0, posinf=-1.0)
    return float(edges[1:][int(np.argmax(between))])


def _coarse(image: np.ndarray, q: float, close: bool, cells: int = 64) -> np.ndarray:
    """Percentile `q` of each cell of a coarse grid, back at full size (bilinear).

    At most `cells` cells a side; with `close`, dark features wider than a cell are
    filled and the grid smoothed first. Values sit at the cells' centres.
    """
    from PIL import Image
    from scipy import ndimage as ndi

    h, w = image.shape
    k = max(1, int(np.ceil(max(h, w) / cells)))  # cells of k x k pixels
    ph, pw = -h % k, -w % k
    a = np.pad(image, [(0, ph), (0, pw)], mode="edge")
    blocks = a.reshape(a.shape[0] // k, k, a.shape[1] // k, k).transpose(0, 2, 1, 3)
    grid = np.percentile(blocks.reshape(*blocks.shape[:2], -1), q, axis=-1)
    if close:
        # A closing fills what is left of dark strokes wider than a cell (a fat
        # marker, a big digit); the blur smooths the cells' steps.
        size = max(3, max(grid.shape) // 5)
        grid = ndi.grey_closing(grid, size=(size, size), mode="nearest")
        grid = ndi.gaussian_filter(grid, 1.0, mode="nearest")
    full = Image.fromarray(grid.astype(np.float32)).resize(
        (a.shape[1], a.shape[0]), Image.BILINEAR
    )
    return np.asarray(full, np.float32)[:h, :w]


def _background(paper: np.ndarray) -> np.ndarray:
    """Large-scale paper brightness of a light-paper image: ink and lines removed."""
    # The brighter part (90th percentile) of each cell is paper: thin strokes and noise
    # drop out.
    return _coarse(paper, 90, close=True)


def _extract_digit(grey: np.ndarray, out: dict[str, Any]) -> np.ndarray:
    """A photo (H, W) in [0, 1] -> the digit's ink, light on dark, zero elsewhere."""
    from scipy import ndimage as ndi

    grey = np.clip(grey, 0.0, 1.0)
    # Ink is the minority, so it makes the longer tail of the histogram: dark ink a dark
    # tail, light ink a light one. Two votes: around the median of the whole image, and
    # around each place's own paper level (the median of a cell an eighth of the image
    # wide), which a shadow across the page cannot fool; a fat digit that fills whole
    # cells can fool the second, not the first. (Every other pixel: the same
    # percentiles at a quarter of the cost.)
    lo, mid, hi = np.percentile(grey[::2, ::2], [0.5, 50, 99.5])
    residual = (grey - _coarse(grey, 50, close=False, cells=8))[::2, ::2]
    local_lo, local_hi = np.percentile(residual, [0.5, 99.5])
    dark_ink = (mid - lo) - (hi - mid) + (-local_lo - local_hi) >= 0
    paper = grey if dark_ink else 1.0 - grey
    background = _background(paper)
    out["background"] = background
    # Dividing by the paper's brightness levels a lighting gradient or a shadow.
    levelled = np.clip(paper / np.maximum(background, 1e-3), 0.0, 1.0)
    out["levelled"] = levelled
    ink = 1.0 - levelled
    # Otsu's threshold, but never inside the paper's noise: 6 robust sigmas above it.
    sample = ink[::2, ::2]
    centre = np.median(sample)
    sigma = 1.4826 * np.median(np.abs(sample - centre))
    threshold = max(otsu_threshold(ink), centre + 6 * sigma, 0.05)
    mask = ink > threshold
    out["threshold"] = mask
    if not mask.any():
        raise ValueError("the image is blank: no ink stands out from the paper")
    # Contrast: the typical stroke becomes full white, as MNIST's are.
    level = np.percentile(ink[mask], 75)
    ink = np.clip(ink / max(level, 1e-3), 0.0, 1.0).astype(np.float32)
    out["inverted"] = ink
    mask, lines = remove_lines(mask)
    out["lines"] = lines
    keep = _digit_components(mask)
    if not keep.any():
        raise ValueError("no digit found: only page edges, lines or specks")
    out["components"] = keep
    # The threshold cuts off a stroke's soft edge: take back a pixel around the strokes.
    soft = ndi.binary_dilation(keep, np.ones((3, 3), bool)) & ~(lines & ~keep)
    digit = np.where(soft, ink, 0.0).astype(np.float32)
    out["digit"] = digit
    return digit


def remove_lines(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop straight runs longer than LINE_SHARE of the side: (mask, removed lines).

    Ruled lines and page edges go; the pixels where a stroke crosses them stay.
    """
    from scipy import ndimage as ndi

    lines = np.zeros_like(mask)
    for axis in (1, 0):
        length = int(LINE_SHARE * mask.shape[axis])
        if length < 8:
            continue
        # Opening with a 1 x length bar in O(pixels): erosion, then dilation, by counts.
        run = ndi.uniform_filter1d(mask.astype(np.float32), length, axis=axis)
        eroded = run > 1 - 0.5 / length
        lines |= ndi.uniform_filter1d(eroded.astype(np.float32), length, axis=axis) > (
            0.5 / length
        )
    rest = mask & ~lines
    if not lines.any():
        return rest, lines
    # Where a digit's stroke crosses a line, ink lies on both sides of it: bridge that.
    across = np.ones((9, 1), bool)  # lines up to 7 px thick
    bridged = np.zeros_like(mask)
    for structure in (across, across.T):
        bridged |= ndi.binary_closing(rest, structure) & lines
    return rest | bridged, lines


def _digit_components(mask: np.ndarray) -> np.ndarray:
    """Keep the digit's connected components: the largest and sizeable ones near it;
    drop specks and anything lying along the image border (page edges, shadows)."""
    from scipy import ndimage as ndi

    labels, n = ndi.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return mask
    h, w = mask.shape
    areas = ndi.sum_labels(mask, labels, index=np.arange(1, n + 1))
    boxes = ndi.find_objects(labels)
    edge = np.zeros(n + 1)
    for side, length in (
        (labels[0], w),
        (labels[-1], w),
        (labels[:, 0], h),
        (labels[:, -1], h),
    ):
        counts = np.bincount(side, minlength=n + 1) / length
        edge = np.maximum(edge, counts)
    candidates = [i for i in range(n) if edge[i + 1] <= 0.25]
    if not candidates:
        return np.zeros_like(mask)
    main = max(candidates, key=lambda i: areas[i])
    box = boxes[main]
    bh, bw = box[0].stop - box[0].start, box[1].stop - box[1].start
    reach = 0.5 * max(bh, bw)
    keep = [main]
    for i in candidates:
        if i == main or areas[i] < max(0.04 * areas[main], 4):
            continue
        b = boxes[i]
        near = (
            b[0].stop > box[0].start - reach
            and b[0].start < box[0].stop + reach
            and b[1].stop > box[1].start - reach
            and b[1].start < box[1].stop + reach
        )
        if near:
            keep.append(i)
    return np.isin(labels, np.asarray(keep) + 1)


def _widen_thin_pen(crop: np.ndarray) -> np.ndarray:
    """Redraw strokes much thinner than MNIST's (a fine pen on a big digit) at MNIST's
    typical width; anything within MNIST's range (every canvas drawing) is unchanged."""
    from PIL import Image
    from scipy import ndimage as ndi

    if max(crop.shape) < 40:
        return crop
    stroke = crop > 0.5
    if not stroke.any():
        return crop
    edt = ndi.distance_transform_edt(stroke)
    ridge = stroke & (edt >= ndi.maximum_filter(edt, 3))
    width = 2 * float(np.median(edt[ridge])) - 1
    if width / max(crop.shape) >= THIN_PEN:
        return crop
    # Work at 200 px on the longer side: the pen's footprint stays small.
    side = 200
    f = side / max(crop.shape)
    if f < 1:
        size = (max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f)))
        crop = np.asarray(Image.fromarray(crop).resize(size, Image.BOX), np.float32)
        width *= f
        crop = np.clip(
            crop / max(np.percentile(crop[crop > INK_THRESHOLD], 75), 1e-3), 0, 1
        )
    radius = max(1, round((MNIST_PEN * max(crop.shape) - width) / 2))
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    pen = yy**2 + xx**2 <= radius**2
    padded = np.pad(crop, radius)
    return ndi.grey_dilation(padded, footprint=pen).astype(np.float32)


@nnx.jit
def _probabilities(model: CNN, x: jax.Array) -> jax.Array:
    return jax.nn.softmax(model(x), axis=-1)


def predict(model: CNN, images: ArrayLike) -> np.ndarray:
    """Class probabilities: (10,) for one image, (N, 10) for a batch or a list of files.

    `images`: an array (28, 28) or (N, 28, 28), uint8 or float in [0, 1]; or an image
    file path; or a list of paths. Files are preprocessed with `preprocess_image`.
    """
    single = isinstance(images, (str, os.PathLike))
    if single or (
        isinstance(images, (list, tuple))
        and images
        and all(isinstance(i, (str, os.PathLike)) for i in images)
    ):
        paths = [images] if single else list(images)
        x = np.stack([preprocess_image(p) for p in paths])
    else:
        arr = np.asarray(images)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
        ):
            raise ValueError(
                "images must be numeric arrays or image file paths, "
                f"got dtype {arr.dtype}"
            )
        single = arr.ndim == 2
        if arr.shape[-2:] != (28, 28) or arr.ndim not in (2, 3):
            raise ValueError(
                f"images must have shape (28, 28) or (N, 28, 28), got {arr.shape}; "
                "use preprocess_image() for other sizes"
            )
        x = to_unit_float(arr)
        if arr.dtype != np.uint8:
            if not np.all(np.isfinite(x)):
                raise ValueError("images contain NaN or infinite values")
            if x.min(initial=0) < 0 or x.max(initial=0) > 1:
                raise ValueError(
                    f"float images must be in [0, 1], got values in "
                    f"[{x.min():.3g}, {x.max():.3g}]; pass uint8 for 0-255 pixels"
                )
        x = x.reshape(-1, 28, 28)
    model.eval()
    probs = np.asarray(_probabilities(model, jnp.asarray(x)[..., None]))
    return probs[0] if single else probs
