"""Any image file, valid or damaged: a clean 28x28 digit or a clean ValueError (issue
17)."""

from __future__ import annotations

import io
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mnist_cnn import preprocess_image

# Modes and the formats Pillow writes them in.
FORMATS = {
    "1": ["PNG", "BMP", "TIFF", "GIF"],
    "L": ["PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP"],
    "LA": ["PNG"],
    "P": ["PNG", "GIF", "BMP", "TIFF"],
    "RGB": ["PNG", "JPEG", "BMP", "TIFF", "WEBP"],
    "RGBA": ["PNG", "TIFF", "WEBP"],
    "CMYK": ["JPEG", "TIFF"],
    "I;16": ["PNG", "TIFF"],
    "F": ["TIFF"],
}
EXIF_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF")


@st.composite
def image_files(draw) -> bytes:
    """A valid image file: random mode, format, size, content, alpha, EXIF
    orientation."""
    mode = draw(st.sampled_from(sorted(FORMATS)))
    fmt = draw(st.sampled_from(FORMATS[mode]))
    h, w = draw(st.integers(1, 90)), draw(st.integers(1, 90))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["noise", "stroke", "flat", "stroke on noise"]))
    grey = np.full((h, w), rng.uniform(0, 1), np.float32)
    if "noise" in kind:
        grey = np.clip(grey + rng.normal(0, rng.uniform(0, 0.3), (h, w)), 0, 1)
    if "stroke" in kind:
        r0, r1 = sorted(rng.integers(0, h + 1, 2))
        c0, c1 = sorted(rng.integers(0, w + 1, 2))
        grey[r0 : r1 + 1, c0 : c1 + 1] = 1 - grey.mean()
    alpha = np.where(rng.uniform(size=(h, w)) < 0.5, 0, 255).astype(np.uint8)
    if draw(st.booleans()):
        alpha = np.round(255 * grey).astype(np.uint8)  # the drawing in the alpha
    g8 = np.round(255 * grey).astype(np.uint8)
    if mode in ("1", "L", "P", "RGB", "CMYK"):
        image = Image.fromarray(g8).convert("RGB").convert(mode)
    elif mode in ("LA", "RGBA"):
        image = Image.fromarray(np.stack([g8, alpha], -1), "LA").convert(mode)
    elif mode == "I;16":
        image = Image.fromarray(np.round(65535 * grey).astype(np.uint16))
    else:
        image = Image.fromarray(grey * draw(st.sampled_from([1.0, 255.0])), "F")
    kwargs = {}
    if mode == "P" and fmt in ("PNG", "GIF") and draw(st.booleans()):
        kwargs["transparency"] = 0
    orientation = draw(st.integers(0, 8))
    if orientation and fmt in EXIF_FORMATS:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    buffer = io.BytesIO()
    if fmt == "GIF" and draw(st.booleans()):
        image.save(buffer, fmt, save_all=True, append_images=[image.copy()], **kwargs)
    else:
        image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@st.composite
def damaged_files(draw) -> bytes:
    """A valid file truncated or overwritten in places, or plain random bytes."""
    how = draw(st.sampled_from(["truncate", "overwrite", "random"]))
    if how == "random":
        return draw(st.binary(min_size=0, max_size=400))
    data = bytearray(draw(image_files()))
    if how == "truncate":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    return bytes(data)


def _check(data: bytes, tmp_path) -> None:
    path = tmp_path / "image"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a multi-frame file warns; that is fine here
        try:
            out = preprocess_image(path)
        except ValueError as err:
            assert str(err).startswith(str(path)), err
            return
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 1


SETTINGS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(data=image_files())
def test_valid_files_give_a_digit_or_a_clear_error(data, tmp_path):
    _check(data, tmp_path)


@SETTINGS
@given(data=damaged_files())
def test_damaged_files_give_a_digit_or_a_clear_error(data, tmp_path):
    _check(data, tmp_path)
