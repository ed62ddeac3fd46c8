"""mnist_cnn: a small, fast CNN for MNIST in JAX and Flax NNX, and the code behind the book."""

import importlib

from .checkpoint import load, pretrained, save
from .config import PRESETS, Config
from .data import MNISTNotFoundError, load_data
from .model import CNN, layer_shapes, param_counts, summary
from .predict import predict, preprocess_image
from .train import History, evaluate, fit

# Teaching modules the chapters use, imported on first access (`mnist_cnn.viz`, ...): they pull
# in matplotlib and scipy, which the command line's start-up time should not pay for.
_SUBMODULES = (
    "checks",
    "explore",
    "export",
    "inspect",
    "interpret",
    "kernels",
    "ops",
    "plots_layers",
    "preprocessing",
    "viz",
)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name == "export_web":
        return importlib.import_module(".export", __name__).export_web
    raise AttributeError(f"module 'mnist_cnn' has no attribute {name!r}")


__all__ = [
    "CNN",
    "PRESETS",
    "Config",
    "History",
    "MNISTNotFoundError",
    "evaluate",
    "export_web",
    "fit",
    "layer_shapes",
    "load",
    "load_data",
    "param_counts",
    "predict",
    "preprocess_image",
    "pretrained",
    "save",
    "summary",
]
__version__ = "0.1.0"
