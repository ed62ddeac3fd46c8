"""`pretrained()`: the model `fit(config, data)` trains, trained once and cached.

The cache key covers everything that determines the weights: the config, the versions of
the numerical libraries, the source of the package modules that shape training, and the
bytes of the data. An edit to the training code or other data therefore trains again
instead of serving a stale model.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

import numpy as np

from . import checkpoint, config, model, pixels, train
from .checkpoint import load, save
from .config import Config
from .data import Split, load_data
from .files import cache_root
from .model import CNN
from .train import fit

# Modules whose code decides what `fit` computes (data only through its arrays' bytes,
# which are hashed separately; checkpoint decides what a cached file restores).
TRAINING_MODULES = (config, model, pixels, train, checkpoint)
LIBRARIES = ("jax", "jaxlib", "flax", "optax", "numpy")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def data_fingerprint(data: tuple[Split, Split]) -> str:
    """SHA-256 of each array of ((x_train, y_train), (x_test, y_test))."""
    digest = hashlib.sha256()
    for split in data:
        for array in split:
            array = np.ascontiguousarray(array)
            digest.update(f"{array.shape} {array.dtype.str};".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def cache_key(config: Config, data: tuple[Split, Split]) -> str:
    """A hash of everything that determines the weights `fit(config, data)` returns."""
    digest = hashlib.sha256(config.to_json().encode())
    for name in LIBRARIES:
        digest.update(f"{name}={_version(name)};".encode())
    for module in TRAINING_MODULES:
        digest.update(Path(module.__file__).read_bytes())
    digest.update(data_fingerprint(data).encode())
    return digest.hexdigest()[:24]


def models_dir() -> Path:
    """Where `pretrained` keeps its models."""
    return cache_root() / "models"


def pretrained(
    config: Config | None = None,
    data: tuple[Split, Split] | None = None,
    progress: bool = False,
) -> CNN:
    """The model `fit(config, data)` trains, loaded from the cache if trained before.

    Training is deterministic for a given seed, so a cached model equals a freshly
    trained one with the same code, libraries and data, all of which are part of the
    cache key. `data` defaults to `load_data(dataset=config.dataset)`.
    """
    config = config or Config()
    data = data if data is not None else load_data(dataset=config.dataset)
    path = models_dir() / f"{cache_key(config, data)}.npz"
    if path.is_file():
        try:
            return load(path)
        except ValueError:
            path.unlink(missing_ok=True)  # a damaged entry is retrained, not trusted
    model, _ = fit(config, data, progress=progress)
    save(model, path)
    return model
