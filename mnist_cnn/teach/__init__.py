"""The teaching code behind the book's chapters: from-scratch layers, figures,
measurements.

Nothing here is needed to train or use the model (that is the core, one level up); these
modules may use matplotlib and scipy. Each submodule is imported on first access, so
`from mnist_cnn.teach import ops, figures` only loads what a chapter uses.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_SUBMODULES = (
    "activations",
    "animate",
    "backprop",
    "checks",
    "dataset",
    "evaluation",
    "fashion",
    "figures",
    "generalisation",
    "internals",
    "kernels",
    "ops",
    "own_digits",
    "preprocessing",
    "receptive_field",
    "robustness",
    "saliency",
    "softmax",
)


def __getattr__(name: str) -> ModuleType:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy submodules, so tab completion in Jupyter offers them.
    return sorted({*(n for n in globals() if n.startswith("__")), *_SUBMODULES})
