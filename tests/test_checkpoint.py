"""Saving and loading: identical predictions after a round trip, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_cnn import Config, load, predict, pretrained, save


def test_round_trip_gives_identical_predictions(tiny_model, mnist, tmp_path):
    _, (x_test, _) = mnist
    path = save(tiny_model, tmp_path / "sub" / "model.npz")
    restored = load(path)
    assert restored.config == tiny_model.config
    np.testing.assert_array_equal(
        predict(restored, x_test[:200]), predict(tiny_model, x_test[:200])
    )
    assert float(restored.mean[...]) == float(tiny_model.mean[...])
    assert [p.name for p in path.parent.iterdir()] == ["model.npz"]  # no temporary left


def test_the_file_holds_no_pickle(tiny_model, tmp_path):
    path = save(tiny_model, tmp_path / "model.npz")
    with np.load(path, allow_pickle=False) as npz:  # would raise on object arrays
        assert "config" in npz.files and all(npz[k].dtype != object for k in npz.files)


def test_truncated_file_is_a_clear_error(tiny_model, tmp_path):
    path = save(tiny_model, tmp_path / "model.npz")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"not an mnist_cnn checkpoint|not a readable"):
        load(path)


def test_other_files_are_a_clear_error(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("hello")
    with pytest.raises(ValueError, match="not an mnist_cnn checkpoint"):
        load(path)
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not an mnist_cnn checkpoint"):
        load(tmp_path / "plain.npz")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load(tmp_path / "missing.npz")


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    np.savez(path, **arrays)


def test_incompatible_config_is_a_clear_error(tiny_model, tmp_path):
    path = save(tiny_model, tmp_path / "model.npz")
    wider = tiny_model.config.replace(conv_channels=(9, 16))
    _rewrite(path, config=np.frombuffer(wider.to_json().encode(), np.uint8))
    with pytest.raises(ValueError, match="incompatible"):
        load(path)
    deeper = tiny_model.config.replace(dense=(32, 32))
    _rewrite(path, config=np.frombuffer(deeper.to_json().encode(), np.uint8))
    with pytest.raises(ValueError, match="do not fit"):
        load(path)
    _rewrite(path, config=np.frombuffer(b'{"epochs": 0}', np.uint8))
    with pytest.raises(ValueError, match="stored config"):
        load(path)


def test_a_failed_save_keeps_the_old_file(tiny_model, tmp_path, monkeypatch):
    path = save(tiny_model, tmp_path / "model.npz")
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save(tiny_model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_saving_onto_a_directory_is_refused(tiny_model, tmp_path):
    with pytest.raises(IsADirectoryError, match="directory"):
        save(tiny_model, tmp_path)


def test_pretrained_trains_once_then_loads(mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    config = Config(conv_channels=(4, 8), dense=(16,), epochs=1, train_size=1000)
    first = pretrained(config, mnist)
    cached = list((tmp_path / "mnist_cnn" / "models").glob("*.npz"))
    assert len(cached) == 1
    second = pretrained(config, mnist)
    _, (x_test, _) = mnist
    np.testing.assert_array_equal(
        predict(first, x_test[:50]), predict(second, x_test[:50])
    )
    cached[0].write_bytes(b"damaged")
    third = pretrained(config, mnist)  # a damaged entry is retrained, deterministically
    np.testing.assert_array_equal(
        predict(first, x_test[:50]), predict(third, x_test[:50])
    )
