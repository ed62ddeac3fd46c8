"""Hand-made kernels: values, responses on tiny hand-made images, and apply_kernel
against scipy.
"""

import numpy as np
import pytest
import scipy.signal

from mnist_cnn.teach import kernels

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("name", sorted(kernels.KERNELS))
def test_apply_kernel_matches_scipy_same_correlation(name):
    image = RNG.random((9, 12)).astype(np.float32)
    k = kernels.get_kernel(name)
    expected = scipy.signal.correlate2d(
        image, k, mode="same", boundary="fill", fillvalue=0
    )
    got = kernels.apply_kernel(image, k)
    assert got.shape == image.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_identity_returns_the_image_and_blurs_keep_a_flat_interior():
    image = RNG.random((7, 7)).astype(np.float32)
    np.testing.assert_allclose(
        kernels.apply_kernel(image, kernels.get_kernel("identity")), image, atol=1e-6
    )
    flat = np.full((9, 9), 0.5, np.float32)
    for name in ("box blur", "Gaussian blur"):
        out = kernels.apply_kernel(flat, kernels.get_kernel(name))
        np.testing.assert_allclose(
            out[2:-2, 2:-2], 0.5, atol=1e-6
        )  # blurs average: weights sum to 1
        assert out[0, 0] < 0.5  # the zero padding darkens the corners
    for name in ("sharpen", "Sobel x", "Sobel y", "Laplacian"):
        out = kernels.apply_kernel(flat, kernels.get_kernel(name))
        expected = (
            0.5 * kernels.get_kernel(name).sum()
        )  # constant in, sum of weights times it out
        np.testing.assert_allclose(out[1:-1, 1:-1], expected, atol=1e-6)


def test_sobel_responds_to_edges_of_the_right_orientation():
    step = np.zeros((6, 6), np.float32)
    step[:, 3:] = 1.0  # dark left half, bright right half: a vertical edge
    gx = kernels.apply_kernel(step, kernels.get_kernel("Sobel x"))[1:-1, 1:-1]
    gy = kernels.apply_kernel(step, kernels.get_kernel("Sobel y"))[1:-1, 1:-1]
    np.testing.assert_allclose(
        gx[:, 1:3], 4.0
    )  # the two columns either side of the edge: 1+2+1
    np.testing.assert_allclose(gx[:, [0, 3]], 0.0)  # flat regions give nothing
    np.testing.assert_allclose(gy, 0.0)  # no brightness change downwards
    gy_t = kernels.apply_kernel(step.T, kernels.get_kernel("Sobel y"))[1:-1, 1:-1]
    np.testing.assert_allclose(gy_t, gx.T)  # Sobel y is Sobel x turned a quarter


def test_laplacian_of_a_single_dot():
    dot = np.zeros((5, 5), np.float32)
    dot[2, 2] = 1.0
    out = kernels.apply_kernel(dot, kernels.get_kernel("Laplacian"))
    np.testing.assert_allclose(
        out[1:4, 1:4], kernels.get_kernel("Laplacian")[::-1, ::-1]
    )
    assert kernels.get_kernel("Gaussian blur").sum() == pytest.approx(1.0)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="grey image"):
        kernels.apply_kernel(np.zeros((4, 4, 3)), kernels.get_kernel("identity"))
    with pytest.raises(ValueError, match="odd side"):
        kernels.apply_kernel(np.zeros((4, 4)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        kernels.apply_kernel(np.full((4, 4), np.nan), kernels.get_kernel("identity"))
    with pytest.raises(ValueError, match="unknown kernel"):
        kernels.get_kernel("blurr")


def test_sample_photo_is_a_grey_photograph():
    photo = kernels.sample_photo(64)
    assert photo.shape[1] == 64 and photo.ndim == 2
    assert (
        0.0 <= photo.min() < 0.2 and 0.8 < photo.max() <= 1.0
    )  # a real photograph's range


def test_kernel_similarity_finds_planted_filters():
    learned = np.stack(
        [
            -2.5 * kernels.get_kernel("Sobel x"),
            0.3 * kernels.get_kernel("box blur"),
            -kernels.get_kernel("Gaussian blur 3x3"),
            RNG.normal(size=(3, 3)),
        ],
        axis=-1,
    )[:, :, None, :]  # HWIO, 4 filters
    sim, names = kernels.kernel_similarity(learned)
    assert sim.shape == (4, len(names)) and "Gaussian blur" not in names  # 5x5 out
    # Scale and sign do not matter, and the blurs are found: nothing zeroes them.
    for row, name in enumerate(["Sobel x", "box blur", "Gaussian blur 3x3"]):
        assert names[int(np.argmax(sim[row]))] == name
        assert sim[row].max() == pytest.approx(1.0)
    assert np.all(sim <= 1.0 + 1e-9)
    # The reference: |cos| of the flattened weights, computed directly.
    a = learned[:, :, 0, 3].ravel()
    b = kernels.get_kernel("Laplacian").ravel()
    expected = abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))
    assert sim[3, names.index("Laplacian")] == pytest.approx(expected)


def test_kernel_similarity_with_the_mean_removed_is_blind_to_the_box_blur():
    learned = np.stack(
        [kernels.get_kernel("Laplacian") + 3.0, kernels.get_kernel("box blur")], -1
    )
    sim, names = kernels.kernel_similarity(learned, remove_mean=True)
    assert names[int(np.argmax(sim[0]))] == "Laplacian"
    assert sim[0].max() == pytest.approx(1.0)  # the offset is ignored
    assert np.all(sim[:, names.index("box blur")] == 0.0)  # constant -> zero vector
    sim, _ = kernels.kernel_similarity(learned)
    assert sim[1, names.index("box blur")] == pytest.approx(1.0)


def test_comparison_bank_holds_every_3x3_kernel_and_a_3x3_gaussian():
    bank = kernels.comparison_bank()
    assert set(bank) == {n for n, k in kernels.KERNELS.items() if k.shape == (3, 3)} | {
        "Gaussian blur 3x3"
    }
    assert bank["Gaussian blur 3x3"].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(
        bank["Gaussian blur 3x3"],
        np.outer([1, 2, 1], [1, 2, 1]) / 16,
    )
    assert set(kernels.comparison_bank(5)) == {"Gaussian blur"}
    with pytest.raises(ValueError, match="shape"):
        kernels.kernel_similarity(np.zeros((3, 3)))
