"""Command line: `python -m mnist_cnn train|evaluate|predict|export-web ...` (see
--help)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

from .train import TrainingDivergedError


def _parser() -> argparse.ArgumentParser:
    from .config import PRESETS

    p = argparse.ArgumentParser(
        prog="python -m mnist_cnn",
        description="Train, evaluate and use a small CNN on MNIST (or Fashion-MNIST).",
    )
    p.add_argument(
        "--data",
        metavar="DIR",
        help="folder with the data set's four files (default: $MNIST_CNN_DATA, or "
        "$MNIST_CNN_FASHION_DATA for Fashion-MNIST, then the user cache, then "
        "download)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model and report its test accuracy")
    t.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="default",
        help="a named configuration (default: %(default)s)",
    )
    t.add_argument(
        "--dataset",
        choices=("mnist", "fashion"),
        help="mnist (handwritten digits) or fashion (Fashion-MNIST); default: the "
        "preset's (mnist)",
    )
    t.add_argument(
        "--epochs",
        type=float,
        help="passes over the training set; a fraction (e.g. 1.5) trains part of a "
        "last pass",
    )
    t.add_argument("--batch-size", type=int)
    t.add_argument("--learning-rate", type=float)
    t.add_argument("--seed", type=int)
    t.add_argument("--activation")
    t.add_argument("--pool")
    t.add_argument(
        "--flip",
        action="store_true",
        help="augment with random horizontal flips (Fashion-MNIST; never for digits)",
    )
    t.add_argument(
        "--data-parallel",
        action="store_true",
        help="split each batch over all local devices (jax.sharding)",
    )
    t.add_argument("--out", metavar="PATH", help="save the trained model here (.npz)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    e = sub.add_parser("evaluate", help="test accuracy of a saved model")
    e.add_argument("checkpoint")
    r = sub.add_parser(
        "predict",
        help="classify image files (photos, scans, drawings) with a saved model",
        description="Print one line per image: its name, the predicted class and its "
        "probability, and the runner-up. Folders are searched for image files.",
    )
    r.add_argument("checkpoint")
    r.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    r.add_argument(
        "--save-preprocessed",
        metavar="DIR",
        help="also write the 28x28 image the network saw for each file (PNG) here",
    )
    w = sub.add_parser(
        "export-web",
        help="write a saved model as the JavaScript file the "
        "book's draw-a-digit page loads",
    )
    w.add_argument("checkpoint")
    w.add_argument(
        "out", help="the .js file to write (e.g. chapters/_static/mnist_cnn_model.js)"
    )
    return p


def _train(args) -> None:
    from . import PRESETS, evaluate, fit, load_data, save

    start = time.perf_counter()
    overrides = {
        k: v
        for k, v in {
            "dataset": args.dataset,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "seed": args.seed,
            "activation": args.activation,
            "pool": args.pool,
            "flip": args.flip or None,
            "data_parallel": args.data_parallel or None,
        }.items()
        if v is not None
    }
    config = dataclasses.replace(PRESETS[args.preset], **overrides)
    data = load_data(args.data, dataset=config.dataset)
    model, history = fit(config, data, progress=not args.quiet)
    for i, epoch in enumerate(history.epoch):
        print(
            f"epoch {epoch}: loss {history.loss[i]:.4f}  "
            f"train acc {history.train_accuracy[i]:.4f}  "
            f"{history.evaluated_on} acc {history.eval_accuracy[i]:.4f}  "
            f"({history.seconds[i]:.1f} s)"
        )
    # Without a validation split, the last epoch was already scored on the test set.
    test_accuracy = (
        history.eval_accuracy[-1]
        if history.evaluated_on == "test"
        else evaluate(model, *data[1])
    )
    print(f"test accuracy: {test_accuracy:.4f}")
    since_start = _seconds_since_process_start()
    print(
        f"trained in {history.seconds[-1]:.1f} s; "
        f"{time.perf_counter() - start:.1f} s in all "
        "(data loading and compilation included)"
        + (
            f"; wall time {since_start:.1f} s from process start"
            if since_start is not None
            else ""
        )
    )
    if args.out:
        print(f"saved to {save(model, args.out)}")


def _seconds_since_process_start() -> float | None:
    """Wall-clock seconds since this process started (Linux), imports included."""
    try:
        stat = Path("/proc/self/stat").read_text()
        # Field 22 (starttime, clock ticks after boot); fields after the ")" that ends
        # the command name start at field 3.
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None  # not Linux: only the time since main() started is reported


def _evaluate(args) -> None:
    from . import evaluate, load, load_data

    model = load(args.checkpoint)
    (_, _), (x_test, y_test) = load_data(args.data, dataset=model.config.dataset)
    print(f"test accuracy: {evaluate(model, x_test, y_test):.4f}")


def _image_files(names: list[str]) -> list[Path]:
    """Command-line names -> files: folders give their image files, sorted."""
    from .predict import IMAGE_SUFFIXES

    files = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            files += sorted(
                p
                for p in path.iterdir()
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            files.append(path)
    return files


def _predict(args) -> int:
    """One line per file; unreadable files get an error line and a non-zero status."""
    import numpy as np

    from . import class_names, load, predict, preprocess_image

    model = load(args.checkpoint)
    names = class_names(model.config.dataset)
    out_dir = Path(args.save_preprocessed) if args.save_preprocessed else None
    failed = 0
    files = _image_files(args.images)
    if not files:
        raise ValueError(f"no image files in {', '.join(args.images)}")
    for path in files:
        try:
            image, steps = preprocess_image(path, steps=True)
        except (ValueError, OSError) as err:
            print(f"error: {_one_line(err)}", file=sys.stderr)
            failed += 1
            continue
        probs = predict(model, image)
        first, second = np.argsort(probs)[::-1][:2]
        notes = f"  ({'; '.join(steps['notes'])})" if steps["notes"] else ""
        print(
            f"{path}: {names[first]} (probability {probs[first]:.3f}), "
            f"runner-up {names[second]} ({probs[second]:.3f}){notes}"
        )
        if out_dir is not None:
            _save_png(out_dir / f"{path.stem}.png", image)
    return 1 if failed else 0


def _save_png(path: Path, image) -> None:
    """A 28x28 float image in [0, 1] -> an 8-bit grey PNG, written atomically."""
    import io

    import numpy as np
    from PIL import Image

    from .files import atomic_write

    buffer = io.BytesIO()
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(buffer, "PNG")
    atomic_write(path, buffer.getvalue())


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _export_web(args) -> None:
    from . import load
    from .export import export_web

    path = export_web(load(args.checkpoint), args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


def main(argv: list[str] | None = None) -> int:
    """Entry point; errors print one readable line and return a non-zero status."""
    args = _parser().parse_args(argv)
    try:
        if args.command in ("train", "evaluate", "predict"):
            from .jit_cache import enable_compilation_cache

            # Later runs skip most compilation; off with MNIST_CNN_JAX_CACHE=0.
            enable_compilation_cache()
        status = {
            "train": _train,
            "evaluate": _evaluate,
            "predict": _predict,
            "export-web": _export_web,
        }[args.command](args)
    except TrainingDivergedError as err:
        print(f"error: training diverged: {_one_line(err)}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
