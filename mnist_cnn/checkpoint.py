"""Save and load a trained model: weights and config in one .npz file, no pickle."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from .config import Config
from .files import atomic_write
from .model import CNN, Stats

# What a checkpoint holds: trained weights, batch norm's running averages and the input
# statistics (not RNG state).
_SAVED = (nnx.Param, nnx.BatchStat, Stats)

FORMAT = "mnist_cnn-checkpoint-v1"


def _flat_state(model: CNN) -> dict[str, np.ndarray]:
    state = nnx.state(model, _SAVED)
    flat = {}
    for path, value in nnx.to_flat_state(state):
        flat["/".join(str(p) for p in path)] = np.asarray(
            value.get_value() if isinstance(value, nnx.Variable) else value
        )
    return flat


def save(model: CNN, path: str | os.PathLike) -> Path:
    """Write the model's weights and config to `path` (a .npz file), atomically."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"{path} is a directory; give a file name such as model.npz"
        )
    arrays = {f"state/{k}": v for k, v in _flat_state(model).items()}
    arrays["format"] = np.frombuffer(FORMAT.encode(), np.uint8)
    arrays["config"] = np.frombuffer(model.config.to_json().encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write(path, buffer.getvalue())


def load(path: str | os.PathLike) -> CNN:
    """Rebuild a model saved by `save`; a bad file is a clear ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}; train one with "
            f"`python -m mnist_cnn train --out {path}`"
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not an mnist_cnn checkpoint (not a .npz archive; truncated or "
            "another kind of file?)"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(
            f"{path} is not a readable mnist_cnn checkpoint ({err})"
        ) from None
    if (
        "format" not in arrays
        or arrays["format"].tobytes().decode(errors="replace") != FORMAT
    ):
        raise ValueError(
            f"{path} is not an mnist_cnn checkpoint (expected format {FORMAT})"
        )
    try:
        config = Config.from_json(arrays["config"].tobytes().decode())
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: its stored config cannot be used ({err})") from None
    model = CNN(config, rngs=nnx.Rngs(0))
    expected = _flat_state(model)
    stored = {
        k.removeprefix("state/"): v for k, v in arrays.items() if k.startswith("state/")
    }
    if set(stored) != set(expected):
        raise ValueError(
            f"{path}: its weights do not fit the model its config describes "
            f"(missing {sorted(set(expected) - set(stored))[:3]}, "
            f"unexpected {sorted(set(stored) - set(expected))[:3]})"
        )
    for key, value in expected.items():
        if stored[key].shape != value.shape:
            raise ValueError(
                f"{path}: weight {key} has shape {stored[key].shape}, "
                f"the config needs {value.shape}; the file is incompatible"
            )
    state = nnx.state(model, _SAVED)
    flat = nnx.to_flat_state(state)
    for p, var in flat:
        var.set_value(
            jnp.asarray(
                stored["/".join(str(x) for x in p)], dtype=var.get_value().dtype
            )
        )
    nnx.update(model, nnx.from_flat_state(flat))
    model.eval()
    return model
