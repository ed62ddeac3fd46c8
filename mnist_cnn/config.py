"""One dataclass with every training knob; nothing in the package reads globals."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from .data import DATASETS
from .model import feature_side

ACTIVATIONS = ("relu", "sigmoid", "tanh", "gelu", "leaky_relu")
POOLS = ("max", "avg")
SCHEDULES = ("onecycle", "constant", "cosine")


@dataclass(frozen=True)
class Config:
    """Every knob of the model and of training, passed explicitly (tests shrink it)."""

    # Which images: "mnist" (handwritten digits) or "fashion" (Zalando's Fashion-MNIST).
    dataset: str = "mnist"
    # Architecture: one conv -> activation -> pool block per entry of `conv_channels`.
    conv_channels: tuple[int, ...] = (16, 32)
    kernel_size: int = 3
    activation: str = "relu"
    pool: str = "avg"
    dense: tuple[int, ...] = (128,)
    dropout: float = 0.0
    # Batch normalisation after each conv, before the activation.
    batch_norm: bool = False
    # Training.
    # Passes over the training images; a fraction trains part of a last pass.
    # One epoch at learning rate 1e-2 with label smoothing 0.1 (below) scores as well as
    # the earlier default, two epochs at 5e-3 without smoothing, in half the time: on
    # 5,000 held-out training images, 99.14-99.24% (mean 99.19%) over seeds 0-4 against
    # 99.12-99.20% (seeds 0-2); 0.8 epochs fell to 98.98% for one seed. Chosen on that
    # validation split, never on the test set (benchmarks/README.md).
    epochs: float = 1
    batch_size: int = 64
    learning_rate: float = 1e-2
    schedule: str = "onecycle"
    weight_decay: float = 0.0
    # Train towards 0.91 for the true class and 0.01 for each other class, not 1 and 0
    # (optax.smooth_labels: 1 - a + a/10 and a/10): the logits stay moderate, which lets
    # one epoch at a high learning rate settle.
    label_smoothing: float = 0.1
    # Data augmentation: move each training image by up to this many pixels (0: none).
    shift: int = 0
    # Data augmentation: rotate each training image by a random angle of up to this many
    # degrees either way (0: none).
    rotate: float = 0.0
    # Data augmentation: mirror each training image left to right with probability 1/2.
    # For Fashion-MNIST (a mirrored shirt is still a shirt); never for digits, where a
    # mirrored 2, 3, 4, 5, 7 or 9 is no longer that digit (or any digit).
    flip: bool = False
    seed: int = 0
    # Hold out the last `validation_size` training images for validation (0: report the
    # test set).
    validation_size: int = 0
    # Train on only the first `train_size` of the remaining training images (None: all).
    train_size: int | None = None
    # Data parallelism over every local device (jax.sharding): each batch is split
    # across the devices, the model and optimizer state are replicated, and XLA sums
    # the gradients. The same program on one device; batch_size must divide by the
    # device count. The numbers match a single-device run up to float rounding.
    data_parallel: bool = False

    def __post_init__(self) -> None:
        # Lists from JSON or the CLI become tuples, so configs stay hashable and
        # comparable.
        object.__setattr__(
            self, "conv_channels", tuple(int(c) for c in self.conv_channels)
        )
        object.__setattr__(self, "dense", tuple(int(d) for d in self.dense))
        problems = []
        if not self.conv_channels or min(self.conv_channels) < 1:
            problems.append(
                f"conv_channels must be positive integers, got {self.conv_channels}"
            )
        if self.dense and min(self.dense) < 1:
            problems.append(f"dense widths must be positive integers, got {self.dense}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            problems.append(
                f"kernel_size must be a positive odd integer, got {self.kernel_size}"
            )
        if feature_side(self) < 1:
            problems.append(
                f"{len(self.conv_channels)} pooling stages shrink 28x28 to nothing"
            )
        if self.dataset not in DATASETS:
            problems.append(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.activation not in ACTIVATIONS:
            problems.append(
                f"activation must be one of {ACTIVATIONS}, got {self.activation!r}"
            )
        if self.pool not in POOLS:
            problems.append(f"pool must be one of {POOLS}, got {self.pool!r}")
        if self.schedule not in SCHEDULES:
            problems.append(
                f"schedule must be one of {SCHEDULES}, got {self.schedule!r}"
            )
        if not self.epochs > 0:
            problems.append(f"epochs must be positive, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be at least 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.label_smoothing < 1:
            problems.append(
                f"label_smoothing must be in [0, 1), got {self.label_smoothing}"
            )
        if not 0 <= self.shift <= 8:
            problems.append(f"shift must be between 0 and 8 pixels, got {self.shift}")
        if not 0 <= self.rotate <= 45:
            problems.append(
                f"rotate must be between 0 and 45 degrees, got {self.rotate}"
            )
        for name in ("batch_norm", "flip", "data_parallel"):
            if not isinstance(getattr(self, name), bool):
                problems.append(
                    f"{name} must be True or False, got {getattr(self, name)!r}"
                )
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.validation_size < 0:
            problems.append(f"validation_size must be >= 0, got {self.validation_size}")
        if self.train_size is not None and self.train_size < 1:
            problems.append(
                f"train_size must be positive or None, got {self.train_size}"
            )
        if problems:
            raise ValueError("invalid Config: " + "; ".join(problems))

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed (the dataclass is frozen)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        """The config as a JSON string (stored in checkpoints)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Config:
        """Rebuild a config from `to_json`; unknown keys are a clear error."""
        values = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown Config fields {unknown}; "
                "this file was written by another version"
            )
        return cls(**values)


PRESETS: dict[str, Config] = {
    "default": Config(),
    # The best-accuracy preset never looks at the test set: it keeps 5,000 training
    # images back and was chosen on them (24/48 channels beat 32/64 there, at about half
    # the cost per image). Random shifts of up to 2 pixels and label smoothing take it
    # past 99.5% in about 2.5 minutes.
    "best": Config(
        conv_channels=(24, 48),
        dense=(128,),
        epochs=12,
        batch_size=128,
        learning_rate=5e-3,
        label_smoothing=0.1,
        shift=2,
        validation_size=5000,
    ),
    # A few seconds of training for tests and quick looks.
    "tiny": Config(conv_channels=(8, 16), dense=(32,), epochs=1, train_size=4000),
}
