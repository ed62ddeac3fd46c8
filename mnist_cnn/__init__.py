"""mnist_cnn: a small, fast CNN for MNIST in JAX and Flax NNX, and the book's code.

Importing the package has no side effects: it changes no JAX setting, creates no folder
and does not import matplotlib, scipy or PIL. The teaching code lives in
`mnist_cnn.teach`.
"""

import importlib

from .checkpoint import load, save
from .config import PRESETS, Config
from .data import DatasetNotFoundError, MNISTNotFoundError, class_names, load_data
from .jit_cache import enable_compilation_cache
from .model import CNN, layer_shapes, param_counts, summary
from .predict import predict, preprocess_image
from .pretrained import pretrained
from .train import History, TrainingDivergedError, evaluate, fit

# Loaded on first access: `teach` pulls in matplotlib and scipy, which the command
# line's start-up time should not pay for. `ops` and `checks` are the short names the
# chapters' exercises use for `teach.ops` and `teach.checks`.
_LAZY_MODULES = {
    "teach": ".teach",
    "ops": ".teach.ops",
    "checks": ".teach.checks",
    "export": ".export",
}


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name], __name__)
    if name == "export_web":
        return importlib.import_module(".export", __name__).export_web
    raise AttributeError(f"module 'mnist_cnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    # Tab completion in Jupyter lists the lazy names too.
    return sorted({*globals(), *_LAZY_MODULES, "export_web"})


__all__ = [
    "CNN",
    "PRESETS",
    "Config",
    "DatasetNotFoundError",
    "History",
    "MNISTNotFoundError",
    "TrainingDivergedError",
    "class_names",
    "enable_compilation_cache",
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
