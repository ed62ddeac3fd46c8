"""Where a cold start of `python -m mnist_cnn train` spends its time before training.

Run from the repository root (MNIST_CNN_DATA set):

    python benchmarks/startup.py            # 3 fresh processes, medians
    python benchmarks/startup.py --repeats 5

Each repeat is a fresh interpreter with the persistent compilation cache off, so every
phase is measured as a new reader's first run meets it: importing the package, reading
the four files (decompressing them and checking their SHA-256 separately), copying the
images to the device, drawing the initial weights, building the optimizer, the first
training step (tracing and compiling it) and a later one, and compiling plus running the
evaluation of the test set. Two more phases time what the previous version did instead
(weights drawn operation by operation with the threefry generator; the batch order drawn
on the device).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time


def _phases() -> dict[str, float]:
    """Seconds per phase of a cold start, in this (fresh) process."""
    t = {"start": time.perf_counter()}
    import gzip
    import hashlib

    import jax.numpy as jnp
    import numpy as np

    import mnist_cnn
    from mnist_cnn import Config, data
    from mnist_cnn.model import init_model
    from mnist_cnn.pixels import as_batch
    from mnist_cnn.train import evaluate, make_optimizer, make_step, new_optimizer

    t["import"] = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = mnist_cnn.load_data()
    t["load_data"] = time.perf_counter()
    # The two parts of load_data that a "verified once" stamp could or could not skip.
    folder = data.find_data_folder()
    raw = {}
    for stem in data.FILES:
        path = data.find_file(folder, stem)
        blob = path.read_bytes()
        raw[stem] = gzip.decompress(blob) if path.suffix == ".gz" else blob
    t["decompress"] = time.perf_counter()
    for blob in raw.values():
        hashlib.sha256(blob).hexdigest()
    t["sha256"] = time.perf_counter()
    config = Config()
    x_dev = as_batch(x_train)
    y_dev = jnp.asarray(np.asarray(y_train, np.int32))
    x_dev.block_until_ready()
    t["to_device"] = time.perf_counter()
    model = init_model(config, x_dev)
    t["init_model"] = time.perf_counter()
    optimizer = new_optimizer(model, make_optimizer(config, 937))
    t["optimizer"] = time.perf_counter()
    step = make_step(model, optimizer, config)
    batch = np.arange(config.batch_size, dtype=np.int32)
    step(x_dev, y_dev, batch, config.label_smoothing, None)[0].block_until_ready()
    t["first_step"] = time.perf_counter()
    step(x_dev, y_dev, batch + 64, config.label_smoothing, None)[0].block_until_ready()
    t["later_step"] = time.perf_counter()
    evaluate(model, x_test, y_test)
    t["first_evaluation"] = time.perf_counter()
    evaluate(model, x_test, y_test)
    t["later_evaluation"] = time.perf_counter()
    # What the previous version did instead, for comparison: the weights drawn op by op
    # with the default threefry generator, and the batch order drawn on the device.
    import jax
    from flax import nnx

    from mnist_cnn.model import CNN

    eager = CNN(config, rngs=nnx.Rngs(config.seed))
    eager.set_input_stats(jnp.mean(x_dev), jnp.std(x_dev))
    jax.block_until_ready(nnx.state(eager))
    t["previous_init_op_by_op"] = time.perf_counter()
    key = jax.random.split(jax.random.key(config.seed))[1]
    np.asarray(jax.random.permutation(key, len(x_train)))
    t["previous_device_permutation"] = time.perf_counter()
    names = list(t)
    return {b: t[b] - t[a] for a, b in itertools.pairwise(names)}


def main(argv: list[str] | None = None) -> int:
    """Run `--repeats` fresh processes and print the median of every phase."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_phases()))
        return 0
    env = dict(os.environ, MNIST_CNN_JAX_CACHE="0")
    runs = []
    for _ in range(args.repeats):
        out = subprocess.run(
            [sys.executable, __file__, "--child"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    print(f"median of {args.repeats} fresh processes, compilation cache off")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    print(f"{'phase':<18} {'seconds':>8}")
    for phase in runs[0]:
        print(f"{phase:<18} {statistics.median(r[phase] for r in runs):>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
