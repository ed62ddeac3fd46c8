"""The "own digits" corpus: predict on photo-like files is as accurate as on MNIST
itself."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mnist_cnn.teach import own_digits

# Held-out MNIST test digits per variation: 2 points of accuracy are 4 digits.
N_DIGITS = 200


@pytest.fixture(scope="module")
def held_out(mnist):
    _, (x_test, y_test) = mnist
    rng = np.random.default_rng(17)
    idx = np.sort(rng.choice(len(x_test), N_DIGITS, replace=False))
    return x_test[idx], y_test[idx]


def test_corpus_is_seeded_and_made_as_described(held_out, tmp_path):
    x, y = held_out
    a = own_digits.make_corpus(x[:3], y[:3], tmp_path / "a", seed=5)
    b = own_digits.make_corpus(x[:3], y[:3], tmp_path / "b", seed=5)
    assert len(a) == 3 * len(own_digits.VARIATIONS)
    for sa, sb in zip(a, b):
        assert sa.path.read_bytes() == sb.path.read_bytes()
        assert sa.variation == sb.variation and sa.label == sb.label
    kinds = {s.variation: Image.open(s.path) for s in a}
    assert kinds["transparent"].mode == "RGBA"
    assert kinds["ruled paper"].mode == "RGB"
    assert kinds["rotated JPEG"].format == "JPEG"
    assert kinds["rotated JPEG"].getexif()[0x0112] in (3, 6, 8)
    scan = np.asarray(kinds["scan"], np.float32) / 255
    grey = np.asarray(kinds["grey paper"], np.float32) / 255
    assert np.median(scan) > 0.9 and np.median(grey) < 0.8


def test_redraw_changes_the_pen_not_the_digit(held_out):
    x, _ = held_out
    from scipy import ndimage as ndi

    def width(ink):
        stroke = ink > 0.5
        edt = ndi.distance_transform_edt(stroke)
        ridge = stroke & (edt >= ndi.maximum_filter(edt, 3))
        return 2 * np.median(edt[ridge]) - 1

    fine = own_digits.redraw(x[0], 160, pen=4)
    fat = own_digits.redraw(x[0], 160, pen=26)
    assert abs(width(fine) - 4) <= 1.5 and abs(width(fat) - 26) <= 3
    # Same centre line: the fine drawing lies inside the fat one (each has a margin of
    # its pen's width around the same enlarged digit).
    extra = (fat.shape[0] - fine.shape[0]) // 2
    fine = np.pad(fine, extra)
    assert fine.shape == fat.shape and (fat[fine > 0.5] > 0.5).all()


def test_predict_on_own_digits_is_within_two_points_of_mnist(held_out, tmp_path):
    """Issue 17's bar, on every variation, with the book's default model."""
    import mnist_cnn

    x, y = held_out
    model = mnist_cnn.pretrained()
    samples = own_digits.make_corpus(x, y, tmp_path, seed=0)
    accuracy = own_digits.measure(model, x, y, samples)
    plain = accuracy.pop("plain 28x28")
    assert set(accuracy) == set(own_digits.VARIATIONS)
    assert plain > 0.98
    table = ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items())
    for variation, acc in accuracy.items():
        assert acc >= plain - 0.02, (
            f"{variation}: {acc:.3f} vs plain {plain:.3f}; {table}"
        )


def zhang_suen_by_the_book(mask: np.ndarray) -> np.ndarray:
    """Zhang and Suen's thinning pixel by pixel, as their paper states it (slow)."""
    m = np.pad(mask.astype(bool), 1)
    while True:
        changed = False
        for step in (0, 1):
            gone = []
            for r, c in zip(*np.nonzero(m)):
                # P2..P9: north, then clockwise.
                p = [
                    m[r - 1, c], m[r - 1, c + 1], m[r, c + 1], m[r + 1, c + 1],
                    m[r + 1, c], m[r + 1, c - 1], m[r, c - 1], m[r - 1, c - 1],
                ]  # fmt: skip
                b = sum(p)
                a = sum(not p[i] and p[(i + 1) % 8] for i in range(8))
                p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
                if step == 0:
                    ok = not (p2 and p4 and p6) and not (p4 and p6 and p8)
                else:
                    ok = not (p2 and p4 and p8) and not (p2 and p6 and p8)
                if 2 <= b <= 6 and a == 1 and ok:
                    gone.append((r, c))
            for r, c in gone:  # a sub-step decides on the image as it was
                m[r, c] = False
            changed |= bool(gone)
        if not changed:
            return m[1:-1, 1:-1]


@pytest.mark.parametrize("seed", range(6))
def test_thin_matches_the_pixel_by_pixel_algorithm(seed):
    rng = np.random.default_rng(seed)
    blobs = rng.random((24, 30)) < 0.25 + 0.08 * seed
    bar = np.zeros((12, 30), bool)
    bar[3:9, 2:28] = True  # a thick bar thins to a line along its middle
    for mask in (blobs, bar):
        ours = own_digits.thin(mask)
        np.testing.assert_array_equal(ours, zhang_suen_by_the_book(mask))
        assert not (ours & ~mask).any()  # thinning only removes
    line = own_digits.thin(bar)
    assert line.sum() >= 20 and line[:, 10:20].sum(axis=0).max() == 1
    # Off-centre in a wide margin, as `redraw` hands it over: the same line, in place.
    page = np.zeros((50, 70), bool)
    page[9:21, 31:61] = bar
    np.testing.assert_array_equal(own_digits.thin(page)[9:21, 31:61], line)
    assert own_digits.thin(page).sum() == line.sum()
    assert not own_digits.thin(np.zeros((5, 5), bool)).any()
