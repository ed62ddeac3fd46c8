"""Input-layer preprocessing: statistics from the training set only, PCA vs SVD,
whitening vs identity.
"""

import numpy as np
import pytest

import mnist_cnn
from mnist_cnn.teach import preprocessing as pp

RNG = np.random.default_rng(0)


def correlated(n=3000, side=3):
    """Random (n, side, side) images whose pixels are strongly correlated (full-rank
    covariance).
    """
    mixing = RNG.normal(size=(side * side, side * side))
    return (RNG.normal(size=(n, side * side)) @ mixing + 5.0).reshape(n, side, side)


@pytest.fixture(scope="module")
def mnist_small():
    (x_train, y_train), (x_test, y_test) = mnist_cnn.load_data()
    return x_train[:1000], y_train[:1000], x_test[:500], y_test[:500]


@pytest.fixture(scope="module")
def mnist_14(mnist_small):
    """Every other row and column (14x14 = 196 pixels, empty border included): fast
    linear algebra.
    """
    return mnist_small[0][:, ::2, ::2]


@pytest.fixture(scope="module")
def mnist_pca(mnist_14):
    return pp.PCA().fit(mnist_14)


def test_statistics_come_from_the_training_set_only():
    train, test = correlated(500), correlated(200) + 3.0
    sub = pp.MeanSubtraction().fit(train)
    np.testing.assert_allclose(
        sub.transform(test), test - train.mean(axis=0), rtol=1e-5, atol=1e-5
    )
    before = sub.mean.copy()
    sub.transform(test)
    np.testing.assert_array_equal(sub.mean, before)  # transforming never refits
    assert pp.Normalisation is pp.Standardisation  # the old name still works
    norm = pp.Standardisation().fit(train)
    out = norm.transform(train)
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-4
    np.testing.assert_allclose(
        norm.transform(test), (test - train.mean()) / train.std(), rtol=1e-4
    )
    # The test set's own mean is NOT removed: its transformed mean is the shift we
    # added.
    assert sub.transform(test).mean() == pytest.approx(
        test.mean() - train.mean(), abs=1e-4
    )
    with pytest.raises(ValueError, match="fit"):
        pp.Whitening().transform(test)


def test_mean_image_and_uint8_scaling(mnist_14):
    x = mnist_14
    np.testing.assert_allclose(
        pp.mean_image(x), x.astype(np.float64).mean(axis=0) / 255
    )
    per_pixel = pp.Standardisation(per_pixel=True).fit(x)
    assert np.all(
        np.isfinite(per_pixel.transform(x))
    )  # the empty border does not divide by zero


def test_pca_matches_numpy_svd(mnist_14, mnist_pca):
    x = pp.as_vectors(mnist_14)
    pca = mnist_pca
    singular = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    np.testing.assert_allclose(
        pca.variances[:50], singular[:50] ** 2 / len(x), rtol=1e-6
    )
    np.testing.assert_allclose(pca.explained_variance_ratio.sum(), 1.0)
    assert np.all(np.diff(pca.variances) <= 1e-12)  # sorted, largest first
    np.testing.assert_allclose(
        pca.components @ pca.components.T, np.eye(196), atol=1e-8
    )
    # All components rebuild the images exactly.
    np.testing.assert_allclose(
        pca.reconstruct(pca.transform(mnist_14[:5])), mnist_14[:5] / 255, atol=1e-5
    )
    # Keeping k components loses exactly the variance of the others (mean squared
    # error).
    k = 30
    recon = pca.reconstruct(pca.transform(mnist_14)[:, :k]).reshape(len(x), -1)
    assert np.mean(np.sum((recon - x) ** 2, axis=1)) == pytest.approx(
        pca.variances[k:].sum(), rel=1e-4
    )


@pytest.mark.parametrize("method", ["pca", "zca"])
def test_whitened_training_data_has_identity_covariance(method):
    x = correlated()
    white = pp.Whitening(method, epsilon=1e-9)
    z = white.fit_transform(x)
    np.testing.assert_allclose(pp.covariance(z), np.eye(9), atol=1e-4)
    assert abs(z.mean()) < 1e-4


def test_zca_is_symmetric_and_stays_close_to_the_image():
    x = correlated()
    zca, pca = pp.Whitening("zca", 1e-9).fit(x), pp.Whitening("pca", 1e-9).fit(x)
    np.testing.assert_allclose(zca.W, zca.W.T, atol=1e-10)
    assert not np.allclose(pca.W, pca.W.T)
    # Among all whitening matrices, ZCA changes the (centred) data the least (Kessy et
    # al. 2018).
    centred = pp.as_vectors(x) - pp.as_vectors(x).mean(axis=0)
    dist = {
        name: np.mean((w.transform(x).reshape(len(x), -1) - centred) ** 2)
        for name, w in (("zca", zca), ("pca", pca))
    }
    assert dist["zca"] < dist["pca"]


def test_epsilon_shrinks_small_directions_on_mnist(mnist_14, mnist_pca):
    x = mnist_14
    eps = 0.1
    white = pp.Whitening("pca", eps).fit(x)
    pca = mnist_pca
    np.testing.assert_allclose(
        pp.Whitening.from_pca(pca, "pca", eps).transform(x[:50]),
        white.transform(x[:50]),
        atol=1e-5,
    )
    expected = pca.variances / (pca.variances + eps)
    np.testing.assert_allclose(
        np.diag(pp.covariance(white.transform(x))), expected, atol=1e-4
    )
    with pytest.raises(ValueError, match="epsilon"):
        pp.Whitening("zca", 0.0).fit(x)


def test_training_without_model_scaling_matches_fit(mnist_small):
    x_train, y_train, x_test, y_test = mnist_small
    config = mnist_cnn.Config(conv_channels=(4,), dense=(), epochs=1, batch_size=50)
    _, history = mnist_cnn.fit(
        config, data=((x_train, y_train), (x_test, y_test)), progress=False
    )
    # Standardise by hand exactly as `fit` does inside the model: the runs must then
    # agree.
    norm = pp.Standardisation().fit(x_train)
    result = pp.train_on_preprocessed(
        norm.transform(x_train),
        y_train,
        norm.transform(x_test),
        y_test,
        config,
        log_every=5,
    )
    assert result["loss"].mean() == pytest.approx(history.loss[0], abs=2e-3)
    assert result["accuracy"] == pytest.approx(history.eval_accuracy[0], abs=0.01)
    assert len(result["steps"]) == 1000 // 50 // 5


def test_pca_function_against_svd():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (80, 6, 6), dtype=np.uint8)
    coords, directions, ratio = pp.pca(x, 3)
    flat = x.reshape(len(x), -1) / 255.0
    centred = flat - flat.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    # Directions are defined up to sign; the function fixes it, so compare with signs
    # aligned. Pixels become float32 in [0, 1] first, hence the tolerance.
    signs = np.sign(np.sum(directions * vt[:3], axis=1))
    np.testing.assert_allclose(directions, vt[:3] * signs[:, None], atol=1e-6)
    np.testing.assert_allclose(coords, (centred @ vt[:3].T) * signs, atol=1e-6)
    np.testing.assert_allclose(ratio, s[:3] ** 2 / np.sum(s**2), atol=1e-9)
    assert np.all(directions[np.arange(3), np.abs(directions).argmax(axis=1)] > 0)
    with pytest.raises(ValueError, match="components"):
        pp.pca(x, 0)


def test_pca_of_feature_vectors_has_the_same_sign_convention_as_the_class():
    f = RNG.normal(size=(50, 4)) @ RNG.normal(size=(4, 4))
    coords, directions, ratio = pp.pca(f, 2)
    centred = f - f.mean(axis=0)
    evals, evecs = np.linalg.eigh(np.cov(centred.T))
    top = evecs[:, ::-1][:, :2]
    np.testing.assert_allclose(np.abs(coords), np.abs(centred @ top), atol=1e-4)
    np.testing.assert_allclose(ratio, evals[::-1][:2] / evals.sum(), rtol=1e-4)
    fitted = pp.PCA().fit(f.reshape(50, 2, 2))
    np.testing.assert_allclose(fitted.components[:2], directions, atol=1e-5)
    with pytest.raises(ValueError):
        pp.pca(np.ones(5))
