"""Side-by-side MNIST benchmark: our default and best presets against two peers.

The peers: Keras `mnist_convnet` and PyTorch `examples/mnist`.

Run from the repository root with a Python that has the package and the peers installed:

    python3 -m venv /work/venv-bench /work/venv-bench/bin/pip install -r
    requirements.txt -r benchmarks/requirements-peers.txt /work/venv-bench/bin/pip
    install --no-deps -e . MNIST_CNN_DATA=/path/to/mnist /work/venv-bench/bin/python
    benchmarks/run.py            # full MNIST_CNN_DATA=/path/to/mnist
    /work/venv-bench/bin/python benchmarks/run.py --quick    # smoke

Every trial runs in a fresh subprocess, so interpreter start, imports, data loading and
compilation count towards "time to X" exactly as a user waits for them. Recipes are
interleaved (the order rotates every repeat) so that a change in machine load hits all
of them alike. See benchmarks/README.md for the meaning of every column.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPES = ("ours-default", "ours-best", "keras", "pytorch")
# `python -m mnist_cnn train` itself, timed from process start to exit: with the
# persistent compilation cache off (cold: a new reader's first run) or warmed by one
# untimed run (warm); "previous-" runs the same command in an earlier checkout
# (--previous DIR), interleaved with today's.
CLI_RECIPES = ("cli-cold", "cli-warm", "previous-cli-cold", "previous-cli-warm")
THRESHOLDS = (0.98, 0.99, 0.995)
# Fashion-MNIST is harder: upstream's CNN baselines score about 91-93%.
FASHION_THRESHOLDS = (0.88, 0.90, 0.92)
HERE = Path(__file__).resolve().parent


# --- trials (children) ----------------------------------------------------------------


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _trial_ours(preset: str, seed: int, epochs: float, dataset: str) -> dict:
    """Our `fit` on a preset; per-epoch test accuracy when it uses the test set."""
    from mnist_cnn import PRESETS, enable_compilation_cache, evaluate, fit, load_data

    # As `python -m mnist_cnn train` does: the persistent compilation cache, opt-in
    # since importing the package stopped turning it on (MNIST_CNN_JAX_CACHE=0 still
    # disables it).
    enable_compilation_cache()
    data = load_data(dataset=dataset)
    config = PRESETS[preset].replace(seed=seed, dataset=dataset)
    if epochs:
        config = config.replace(epochs=min(epochs, config.epochs))
    called = time.time()
    model, history = fit(config, data, progress=False)
    done = time.time()
    test_accuracy = evaluate(model, *data[1])
    train_images = (
        (len(data[0][0]) - config.validation_size)
        // config.batch_size
        * config.batch_size
    )
    loop = [b - a for a, b in zip([0.0, *history.seconds], history.seconds)]
    epochs_out = []
    for i, epoch in enumerate(history.epoch):
        # A preset with a validation split never looks at the test set during training,
        # so its test accuracy exists only for the final model.
        on_test = history.evaluated_on == "test"
        epochs_out.append(
            {
                "epoch": epoch,
                "t": called + history.wall_seconds[i],
                "test_accuracy": history.eval_accuracy[i] if on_test else None,
                "loop_seconds": loop[i],
                "images": train_images,
            }
        )
    return {
        "epochs": epochs_out,
        "final_accuracy": test_accuracy,
        "final_t": done,
        "config": json.loads(config.to_json()),
    }


def _trial_keras(seed: int, epochs: int, train_size: int | None, dataset: str) -> dict:
    """The Keras `mnist_convnet` example, unchanged but for data source and epochs."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras
    import numpy as np
    from keras import layers

    from mnist_cnn import load_data

    (x_train, y_train), (x_test, y_test) = load_data(dataset=dataset)
    if train_size:
        x_train, y_train = x_train[:train_size], y_train[:train_size]
    x_train = np.expand_dims(x_train.astype("float32") / 255, -1)
    x_test = np.expand_dims(x_test.astype("float32") / 255, -1)
    y_train = keras.utils.to_categorical(y_train, 10)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"]
    )

    class Clock(keras.callbacks.Callback):
        """Training-loop time of an epoch: first batch start to last batch end."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start = self.end = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.end = time.perf_counter()

    clock = Clock()
    total = 15 if not epochs else min(int(epochs), 15)
    out = []
    for epoch in range(total):
        # One fit call per epoch so the test set can be scored after each (the example
        # scores it once at the end); the optimizer state carries over between calls.
        model.fit(
            x_train,
            y_train,
            batch_size=128,
            epochs=epoch + 1,
            initial_epoch=epoch,
            validation_split=0.1,
            verbose=0,
            callbacks=[clock],
        )
        predictions = model.predict(x_test, batch_size=1000, verbose=0)
        accuracy = float(np.mean(predictions.argmax(-1) == y_test))
        out.append(
            {
                "epoch": epoch + 1,
                "t": time.time(),
                "test_accuracy": accuracy,
                "loop_seconds": clock.end - clock.start,
                "images": len(x_train) - int(len(x_train) * 0.1),
            }
        )
    return {
        "epochs": out,
        "final_accuracy": out[-1]["test_accuracy"],
        "final_t": time.time(),
        "config": {"epochs": total, "of": 15},
    }


def _trial_pytorch(
    seed: int, epochs: int, train_size: int | None, dataset: str
) -> dict:
    """PyTorch `examples/mnist` (main.py) on the CPU, unchanged but data and epochs."""
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.optim as optim
    from torch.optim.lr_scheduler import StepLR
    from torch.utils.data import DataLoader, TensorDataset

    from mnist_cnn import load_data

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.dropout1 = nn.Dropout(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.relu(self.conv2(x))
            x = F.max_pool2d(x, 2)
            x = self.dropout1(x)
            x = torch.flatten(x, 1)
            x = F.relu(self.fc1(x))
            x = self.dropout2(x)
            return F.log_softmax(self.fc2(x), dim=1)

    torch.manual_seed(seed)
    (x_train, y_train), (x_test, y_test) = load_data(dataset=dataset)
    if train_size:
        x_train, y_train = x_train[:train_size], y_train[:train_size]

    def tensors(x, y):
        # transforms.ToTensor() then Normalize((0.1307,), (0.3081,)), done once for all
        # images.
        x = (
            torch.from_numpy(x.astype(np.float32) / 255).unsqueeze(1) - 0.1307
        ) / 0.3081
        return TensorDataset(x, torch.from_numpy(y.astype(np.int64)))

    # The example shuffles only when an accelerator is used; on the CPU its loader keeps
    # file order.
    train_loader = DataLoader(tensors(x_train, y_train), batch_size=64)
    test_loader = DataLoader(tensors(x_test, y_test), batch_size=1000)
    model = Net()
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    total = 14 if not epochs else min(int(epochs), 14)
    out = []
    for epoch in range(1, total + 1):
        model.train()
        start = time.perf_counter()
        for data, target in train_loader:
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()
        loop = time.perf_counter() - start
        model.eval()
        correct = 0
        with torch.no_grad():
            for data, target in test_loader:
                correct += int((model(data).argmax(1) == target).sum())
        scheduler.step()
        out.append(
            {
                "epoch": epoch,
                "t": time.time(),
                "test_accuracy": correct / len(x_test),
                "loop_seconds": loop,
                "images": len(x_train),
            }
        )
    return {
        "epochs": out,
        "final_accuracy": out[-1]["test_accuracy"],
        "final_t": time.time(),
        "config": {"epochs": total, "of": 14, "torch_threads": torch.get_num_threads()},
    }


def _throughput_ours(steps: int) -> dict:
    """Images per second of fit's training loop (default model, batch 64), warm."""
    import jax.numpy as jnp

    from mnist_cnn import PRESETS, load_data
    from mnist_cnn.model import init_model
    from mnist_cnn.pixels import as_batch
    from mnist_cnn.train import training_steps

    config = PRESETS["default"]
    (x_train, y_train), _ = load_data()
    x_dev, y_dev = as_batch(x_train), jnp.asarray(y_train, jnp.int32)
    model = init_model(config, x_dev)
    warm_up = 20
    for n, (_, _, loss, _) in enumerate(training_steps(model, config, x_dev, y_dev)):
        if n == warm_up - 1:
            loss.block_until_ready()
            start = time.perf_counter()
        elif n == warm_up + steps - 1:
            loss.block_until_ready()
            break
    return {
        "images_per_second": steps * config.batch_size / (time.perf_counter() - start)
    }


def _throughput_torch(steps: int) -> dict:
    """The same model (but its initialisation), batch and optimizer in PyTorch."""
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from mnist_cnn import PRESETS, load_data

    config = PRESETS["default"]
    (c1, c2), (d1,), k = config.conv_channels, config.dense, config.kernel_size
    model = nn.Sequential(
        nn.Conv2d(1, c1, k, padding=k // 2),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(c1, c2, k, padding=k // 2),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(7 * 7 * c2, d1),
        nn.ReLU(),
        nn.Linear(d1, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    (x_train, y_train), _ = load_data()
    x = (
        torch.from_numpy(x_train.astype(np.float32) / 255).unsqueeze(1) - 0.1307
    ) / 0.3081
    y = torch.from_numpy(y_train.astype(np.int64))
    batches = torch.from_numpy(
        np.random.default_rng(0).integers(0, len(x), (steps + 20, config.batch_size))
    )
    model.train()

    def one(i):
        idx = batches[i]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()

    for i in range(20):
        one(i)
    start = time.perf_counter()
    for i in range(20, steps + 20):
        one(i)
    return {
        "images_per_second": steps * config.batch_size / (time.perf_counter() - start),
        "torch_threads": torch.get_num_threads(),
    }


def _child(args) -> None:
    if args.trial in ("ours-default", "ours-best"):
        result = _trial_ours(
            args.trial.removeprefix("ours-"), args.seed, args.epochs, args.dataset
        )
    elif args.trial == "keras":
        result = _trial_keras(args.seed, args.epochs, args.train_size, args.dataset)
    elif args.trial == "pytorch":
        result = _trial_pytorch(args.seed, args.epochs, args.train_size, args.dataset)
    elif args.trial == "throughput-ours":
        result = _throughput_ours(args.steps)
    elif args.trial == "throughput-torch":
        result = _throughput_torch(args.steps)
    else:
        raise ValueError(f"unknown trial {args.trial!r}")
    result["peak_rss_mb"] = _peak_rss_mb()
    Path(args.result).write_text(json.dumps(result))


# --- driver (parent) ------------------------------------------------------------------


def _spawn(trial: str, result_dir: Path, *options: str) -> dict | None:
    """Run one trial in a fresh interpreter; time counts from just before it starts."""
    out = result_dir / f"{trial}-{time.monotonic_ns()}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--trial",
        trial,
        "--result",
        str(out),
        *options,
    ]
    env = dict(os.environ, KERAS_BACKEND="jax")
    start = time.time()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    end = time.time()
    if proc.returncode != 0 or not out.exists():
        print(
            f"  {trial} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}",
            file=sys.stderr,
        )
        return None
    result = json.loads(out.read_text())
    result["start"], result["wall"] = start, end - start
    return result


def _spawn_cli(
    recipe: str, seed: int, cache_home: Path, previous: Path | None, dataset: str
) -> dict | None:
    """`python -m mnist_cnn train --quiet` in a fresh process: accuracy, wall, RSS.

    The wall time runs from just before the interpreter starts to its exit; the peak
    resident memory is the child's own (from wait4).
    """
    root = previous if recipe.startswith("previous-") else HERE.parent
    command = [sys.executable, "-m", "mnist_cnn", "train", "--quiet"]
    command += ["--seed", str(seed)]
    if dataset != "mnist":
        command += ["--dataset", dataset]
    env = dict(os.environ, PYTHONPATH=str(root), XDG_CACHE_HOME=str(cache_home))
    if recipe.endswith("-cold"):
        env["MNIST_CNN_JAX_CACHE"] = "0"
    else:
        env.pop("MNIST_CNN_JAX_CACHE", None)
    start = time.time()
    proc = subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    end = time.time()
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or "test accuracy:" not in out:
        print(
            f"  {recipe} failed (exit {proc.returncode}):\n{err[-2000:]}",
            file=sys.stderr,
        )
        return None
    accuracy = float(out.split("test accuracy:")[1].split()[0])
    rss = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return {"seed": seed, "accuracy": accuracy, "wall": end - start, "peak_rss_mb": rss}


def _cli_table(cli_runs: dict[str, list[dict]], thresholds: tuple) -> list[str]:
    """Markdown rows: per-seed accuracy, median/min, median wall, peak RSS."""
    lines = [
        "",
        "`python -m mnist_cnn train --quiet --seed S`, timed from process start to "
        "exit "
        "(interpreter start, imports, data loading and checking, compilation, training "
        "and the final evaluation):",
        "",
        "| command | seeds | test accuracy per seed | median / min | "
        f"runs ≥ {thresholds[1]:.0%} | wall per run (s) | median wall (s) | "
        "peak RSS (MB) |",
        "|---|---|---|---:|---:|---|---:|---:|",
    ]
    for recipe, runs in cli_runs.items():
        if not runs:
            continue
        accs = [r["accuracy"] for r in runs]
        lines.append(
            f"| {recipe} | {', '.join(str(r['seed']) for r in runs)} | "
            + ", ".join(f"{a:.2%}" for a in accs)
            + f" | {_median(accs):.2%} / {min(accs):.2%} | "
            f"{sum(a >= thresholds[1] for a in accs)}/{len(accs)} | "
            + ", ".join(f"{r['wall']:.1f}" for r in runs)
            + f" | {_median([r['wall'] for r in runs]):.1f} | "
            f"{max(r['peak_rss_mb'] for r in runs):.0f} |"
        )
    return lines


def _available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


def _summarise(name: str, runs: list[dict], thresholds: tuple = THRESHOLDS) -> dict:
    """Medians over repeats of every column for one recipe."""
    row = {"recipe": name, "runs": len(runs)}
    for threshold in thresholds:
        times = []
        for run in runs:
            epochs = run["epochs"]
            if epochs and epochs[0]["test_accuracy"] is None:
                # Validation-split preset: only the final model is scored on the test
                # set.
                hit = run["final_t"] if run["final_accuracy"] >= threshold else None
            else:
                hit = next(
                    (e["t"] for e in epochs if e["test_accuracy"] >= threshold), None
                )
            if hit is not None:
                times.append(hit - run["start"])
        row[threshold] = (_median(times), len(times))
    row["final"] = _median([r["final_accuracy"] for r in runs])
    row["final_min"] = min(r["final_accuracy"] for r in runs)
    # Steady-state throughput: epochs after the first, whose time includes compilation.
    rates = [
        e["images"] / e["loop_seconds"]
        for r in runs
        for e in (r["epochs"][1:] or r["epochs"])
    ]
    row["images_per_second"] = _median(rates)
    row["epochs"] = len(runs[0]["epochs"])
    row["rss"] = _median([r["peak_rss_mb"] for r in runs])
    row["wall"] = _median([r["wall"] for r in runs])
    return row


def _machine() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in f
                    if line.startswith("model name")
                ),
                cpu,
            )
    except OSError:
        pass
    cores = (
        len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count()
    )
    versions = [f"Python {platform.python_version()}"]
    os.environ.setdefault(
        "KERAS_BACKEND", "jax"
    )  # Keras 3 would otherwise import TensorFlow
    for module in ("jax", "flax", "optax", "torch", "keras"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            versions.append(f"{module} not installed")
    return [
        f"- CPU: {cpu}, {cores} cores usable ({os.cpu_count()} logical)",
        f"- {platform.system()} {platform.release()}; " + ", ".join(versions),
    ]


def _table(
    rows: list[dict],
    throughput: dict,
    args,
    load: tuple,
    started: str,
    cli_runs: dict[str, list[dict]],
    thresholds: tuple = THRESHOLDS,
) -> str:
    lines = [
        f"# {'Fashion-MNIST' if args.dataset == 'fashion' else 'MNIST'} benchmark "
        f"({started})",
        "",
        *_machine(),
        f"- load average (1 min) at start {load[0]:.2f}, at end {load[1]:.2f} "
        "(timings are only comparable on an otherwise idle machine)",
        f"- {args.repeats} repeat(s), recipes interleaved; medians over repeats"
        + (
            "; --quick smoke run (epochs capped, peers on a subset)"
            if args.quick
            else ""
        ),
        "",
    ]
    if rows:
        lines += [
            "| recipe | epochs | "
            + " | ".join(f"time to {t:.1%} (s)".replace(".0%", "%") for t in thresholds)
            + " | final test acc (median / min) | train img/s | peak RSS (MB) "
            "| process wall (s) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
    for row in rows:
        cells = []
        for threshold in thresholds:
            median, hits = row[threshold]
            note = "" if hits == row["runs"] else f" ({hits}/{row['runs']} runs)"
            cells.append("not reached" if median is None else f"{median:.1f}{note}")
        lines.append(
            f"| {row['recipe']} | {row['epochs']} | "
            + " | ".join(cells)
            + f" | {row['final'] * 100:.2f}% / {row['final_min'] * 100:.2f}% | "
            f"{_fmt(row['images_per_second'], ',.0f')} | {_fmt(row['rss'], '.0f')} | "
            f"{_fmt(row['wall'])} |"
        )
    if any(cli_runs.values()):
        lines += _cli_table(cli_runs, thresholds)
    if throughput:
        lines += [
            "",
            f"Same architecture (our default: conv {PRESET_DESC}), batch 64, Adam, "
            f"{args.steps} steps after 20 warm-up steps, data already in memory:",
            "",
            "| training step | img/s (median) | runs |",
            "|---|---:|---:|",
        ]
        for name, values in throughput.items():
            lines.append(
                f"| {name} | {_fmt(_median(values), ',.0f')} | {len(values)} |"
            )
    return "\n".join(lines) + "\n"


PRESET_DESC = "16/32 3x3, avg pool, dense 128"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments; run one trial (child) or the whole interleaved benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 repeat, peers and best preset capped at 1 epoch, "
        "peers on 12,000 images",
    )
    p.add_argument(
        "--repeats", type=int, default=3, help="runs of each recipe (default 3)"
    )
    p.add_argument(
        "--recipes",
        default=",".join(RECIPES),
        help="comma-separated recipes: " + ", ".join(RECIPES + CLI_RECIPES),
    )
    p.add_argument(
        "--previous",
        metavar="DIR",
        help="a checkout of an earlier version (git worktree add DIR COMMIT) for the "
        "previous-cli-* recipes",
    )
    p.add_argument(
        "--dataset",
        choices=("mnist", "fashion"),
        default="mnist",
        help="the data set every recipe trains on (default: %(default)s)",
    )
    p.add_argument(
        "--peer-epochs",
        type=int,
        default=3,
        help="cap on the peers' epochs; 0 runs their full recipes (15 and 14)",
    )
    p.add_argument(
        "--best-epochs",
        type=int,
        default=0,
        help="cap on the best preset's epochs (0: none)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=300,
        help="timed steps of the throughput comparison",
    )
    p.add_argument(
        "--no-throughput",
        action="store_true",
        help="skip the same-architecture comparison",
    )
    p.add_argument(
        "--out", help="Markdown file to write (default benchmarks/results/<date>.md)"
    )
    # Internal: one trial in this (child) process.
    p.add_argument("--trial", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=float, default=0, help=argparse.SUPPRESS)
    p.add_argument("--train-size", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.trial:
        _child(args)
        return 0

    if args.quick:
        args.repeats, args.peer_epochs, args.steps = 1, 1, 100
        args.best_epochs = args.best_epochs or 1
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = sorted(set(recipes) - set(RECIPES + CLI_RECIPES))
    if unknown:
        p.error(
            f"unknown recipes {unknown}; choose from {', '.join(RECIPES + CLI_RECIPES)}"
        )
    if any(r.startswith("previous-") for r in recipes) and not args.previous:
        p.error("the previous-cli-* recipes need --previous DIR")
    previous = Path(args.previous).resolve() if args.previous else None
    thresholds = FASHION_THRESHOLDS if args.dataset == "fashion" else THRESHOLDS
    needs = {"keras": "keras", "pytorch": "torch"}
    for recipe in list(recipes):
        if recipe in needs and not _available(needs[recipe]):
            print(
                f"skipping {recipe}: {needs[recipe]} is not installed "
                "(pip install -r benchmarks/requirements-peers.txt)",
                file=sys.stderr,
            )
            recipes.remove(recipe)
    if not os.environ.get("MNIST_CNN_DATA"):
        print(
            "note: MNIST_CNN_DATA is not set; the package looks in the user cache",
            file=sys.stderr,
        )

    started = time.strftime("%Y-%m-%d %H:%M")
    load_start = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {r: [] for r in recipes if r in RECIPES}
    cli_runs: dict[str, list[dict]] = {r: [] for r in recipes if r in CLI_RECIPES}
    throughput: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        result_dir = Path(tmp)
        caches = {r: Path(tmp) / f"cache-{r}" for r in cli_runs}
        for recipe in cli_runs:
            if recipe.endswith("-warm"):
                # One untimed run fills this recipe's persistent compilation cache.
                print(f"warming the cache of {recipe} ...", file=sys.stderr, flush=True)
                _spawn_cli(recipe, 0, caches[recipe], previous, args.dataset)
        for rep in range(args.repeats):
            # Rotate the order so no recipe always runs first (cold disk cache) or last.
            order = (
                recipes[rep % len(recipes) :] + recipes[: rep % len(recipes)]
                if recipes
                else []
            )
            for recipe in order:
                if recipe in CLI_RECIPES:
                    print(
                        f"repeat {rep + 1}/{args.repeats}: {recipe} ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    result = _spawn_cli(
                        recipe, rep, caches[recipe], previous, args.dataset
                    )
                    if result is not None:
                        cli_runs[recipe].append(result)
                        print(
                            f"  test accuracy {result['accuracy']:.4f}, "
                            f"{result['wall']:.1f} s",
                            file=sys.stderr,
                            flush=True,
                        )
                    continue
                options = ["--seed", str(rep), "--dataset", args.dataset]
                if recipe in ("keras", "pytorch"):
                    options += ["--epochs", str(args.peer_epochs)]
                    if args.quick:
                        options += ["--train-size", "12000"]
                elif recipe == "ours-best":
                    options += ["--epochs", str(args.best_epochs)]
                print(
                    f"repeat {rep + 1}/{args.repeats}: {recipe} ...",
                    file=sys.stderr,
                    flush=True,
                )
                result = _spawn(recipe, result_dir, *options)
                if result is not None:
                    runs[recipe].append(result)
                    best = max((e["test_accuracy"] or 0) for e in result["epochs"])
                    print(
                        f"  final test accuracy {result['final_accuracy']:.4f} "
                        f"(best epoch {best:.4f}), "
                        f"{result['wall']:.1f} s",
                        file=sys.stderr,
                        flush=True,
                    )
            if not args.no_throughput:
                pairs = [("ours (JAX/Flax)", "throughput-ours")]
                if _available("torch"):
                    pairs.append(("PyTorch CPU", "throughput-torch"))
                for name, trial in pairs if rep % 2 == 0 else pairs[::-1]:
                    result = _spawn(
                        trial,
                        result_dir,
                        "--steps",
                        str(args.steps),
                        "--dataset",
                        args.dataset,
                    )
                    if result is not None:
                        label = (
                            name
                            if "torch_threads" not in result
                            else f"{name}, {result['torch_threads']} threads"
                        )
                        throughput.setdefault(label, []).append(
                            result["images_per_second"]
                        )
    rows = [_summarise(r, runs[r], thresholds) for r in runs if runs[r]]
    load = (load_start, os.getloadavg()[0])
    text = _table(rows, throughput, args, load, started, cli_runs, thresholds)
    out = (
        Path(args.out)
        if args.out
        else HERE / "results" / f"{time.strftime('%Y-%m-%d-%H%M')}.md"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"written to {out}", file=sys.stderr)
    return 0 if all([*runs.values(), *cli_runs.values()]) else 1


if __name__ == "__main__":
    sys.exit(main())
