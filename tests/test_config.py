"""Config: new fields are checked like the others and survive JSON."""

from __future__ import annotations

import pytest

from mnist_cnn import Config


def test_rotate_and_batch_norm_round_trip_through_json():
    config = Config(rotate=15.0, batch_norm=True)
    assert Config.from_json(config.to_json()) == config


@pytest.mark.parametrize("rotate", [-1.0, 45.5, 90])
def test_rotate_outside_0_to_45_degrees_is_rejected(rotate):
    with pytest.raises(ValueError, match="rotate must be between 0 and 45"):
        Config(rotate=rotate)


def test_batch_norm_must_be_a_bool():
    with pytest.raises(ValueError, match="batch_norm must be True or False"):
        Config(batch_norm="yes")


def test_an_old_config_without_the_new_fields_still_loads():
    old = (
        Config()
        .to_json()
        .replace(', "rotate": 0.0', "")
        .replace('"batch_norm": false, ', "")
    )
    assert "rotate" not in old and "batch_norm" not in old
    assert Config.from_json(old) == Config()
