"""Score training recipes on a validation split (never the test set), seed by seed.

How the default recipe was chosen (issue 16). Each argument is a JSON object of Config
fields to change from the default; "seeds" (default [0, 1, 2]) lists the seeds to run:

    MNIST_CNN_DATA=/path/to/mnist python benchmarks/validation_sweep.py \
        '{"epochs": 1, "seeds": [0, 1, 2, 3, 4]}' \
        '{"epochs": 0.8, "seeds": [0, 1, 2, 3, 4]}' \
        '{"epochs": 2, "learning_rate": 5e-3, "label_smoothing": 0.0}'

Every run holds out the last 5,000 training images (`validation_size=5000`), trains on
the other 55,000 and prints the accuracy on the held-out ones and the training time.
"""

from __future__ import annotations

import json
import sys

from mnist_cnn import Config, fit, load_data


def main(argv: list[str]) -> int:
    """Train each recipe of `argv` for its seeds; print the validation accuracies."""
    if not argv:
        print(__doc__)
        return 2
    data = load_data()
    for spec in argv:
        changes = json.loads(spec)
        seeds = changes.pop("seeds", [0, 1, 2])
        accuracies, seconds = [], []
        for seed in seeds:
            config = Config(validation_size=5000).replace(seed=seed, **changes)
            _, history = fit(config, data, progress=False)
            accuracies.append(history.eval_accuracy[-1])
            seconds.append(history.seconds[-1])
        print(
            f"{json.dumps(changes)} seeds {seeds}: validation "
            + ", ".join(f"{a:.2%}" for a in accuracies)
            + f"; lowest {min(accuracies):.2%}, mean "
            f"{sum(accuracies) / len(accuracies):.2%}; training "
            + ", ".join(f"{s:.1f}" for s in seconds)
            + " s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
