"""mnist_cnn: a small, fast CNN for MNIST in JAX and Flax NNX, and the code behind the book."""

from .checkpoint import load, pretrained, save
from .config import PRESETS, Config
from .data import MNISTNotFoundError, load_data
from .model import CNN, layer_shapes, param_counts, summary
from .predict import predict, preprocess_image
from .train import History, evaluate, fit

__all__ = [
    "CNN", "Config", "History", "MNISTNotFoundError", "PRESETS", "evaluate", "fit", "layer_shapes",
    "load", "load_data", "param_counts", "predict", "pretrained", "preprocess_image", "save", "summary",
]
__version__ = "0.1.0"
