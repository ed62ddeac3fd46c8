"""Time the default model's training step on 1 and 2 forced host (CPU) devices.

Each measurement runs in a fresh Python process, because JAX fixes the number of host
devices when it starts: XLA_FLAGS=--xla_force_host_platform_device_count=N splits one
machine's CPU into N devices. The child trains the default Config through
`training_steps` (the loop `fit` uses), lets WARMUP steps pass (compilation included),
then times STEPS steps. Rows:

- plain: the ordinary single-device step (`data_parallel=False`), one device;
- sharded: the data-parallel step (`data_parallel=True`) over a mesh of 1 or 2 devices.

Forced host devices share the same cores, so this measures the cost of the sharded
program and its all-reduce on this machine, not the speed-up of real accelerators.

    python benchmarks/parallel_steps.py               # table on stdout
    python benchmarks/parallel_steps.py --json        # JSON on stdout, table on stderr
    python benchmarks/parallel_steps.py --repeats 5   # median of 5 runs per row
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROWS = (("plain", 1), ("sharded", 1), ("sharded", 2))
WARMUP = 20
STEPS = 200


def _child(mode: str, devices: int, steps: int, warmup: int) -> dict:
    """Seconds for `steps` steps after `warmup` steps (run inside the subprocess)."""
    import collections
    import itertools

    import jax
    import jax.numpy as jnp

    from mnist_cnn import Config, load_data
    from mnist_cnn.model import init_model
    from mnist_cnn.pixels import as_batch
    from mnist_cnn.train import training_steps

    if jax.device_count() != devices:
        raise SystemExit(f"asked for {devices} devices, JAX has {jax.device_count()}")
    config = Config(data_parallel=mode == "sharded")
    (x_train, y_train), _ = load_data(dataset=config.dataset)
    x = as_batch(x_train)  # (60000, 28, 28, 1)
    y = jnp.asarray(y_train, jnp.int32)
    model = init_model(config, x)
    loop = training_steps(model, config, x, y)

    def run(n: int) -> None:
        # Steps are dispatched asynchronously: wait for the last loss to be computed.
        last = collections.deque(itertools.islice(loop, n), maxlen=1)
        last[0][2].block_until_ready()

    run(warmup)
    start = time.perf_counter()
    run(steps)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "batch_size": config.batch_size}


def _run(mode: str, devices: int, steps: int, warmup: int) -> dict:
    """One measurement in a fresh process with `devices` forced host devices."""
    env = dict(
        os.environ,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        JAX_PLATFORMS="cpu",
    )
    args = [sys.executable, __file__, "--child", mode, str(devices)]
    args += ["--steps", str(steps), "--warmup", str(warmup)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} on {devices} device(s) failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(repeats: int, steps: int, warmup: int) -> tuple[list[dict], int]:
    """(rows of median ms/step and images/s, batch size); rows take turns per repeat."""
    runs: dict[tuple[str, int], list[float]] = {row: [] for row in ROWS}
    batch = 0
    for _ in range(repeats):
        for mode, devices in ROWS:
            result = _run(mode, devices, steps, warmup)
            runs[mode, devices].append(result["seconds"])
            batch = result["batch_size"]
    table = []
    for (mode, devices), seconds in runs.items():
        per_step = statistics.median(seconds) / steps
        table.append(
            {
                "mode": mode,
                "devices": devices,
                "ms_per_step": 1000 * per_step,
                "images_per_s": batch / per_step,
                "seconds_per_run": seconds,
            }
        )
    return table, batch


def _format(table: list[dict], meta: dict) -> str:
    lines = [
        f"{meta['steps']} steps of the default Config (batch {meta['batch_size']}) "
        f"after {meta['warmup']} warm-up steps, median of {meta['repeats']} run(s); "
        f"{meta['cpus']} CPU cores, load average {meta['load_before']} before, "
        f"{meta['load_after']} after",
        "",
        "| step | devices | ms/step | images/s |",
        "|---|---|---|---|",
    ]
    for row in table:
        lines.append(
            f"| {row['mode']} | {row['devices']} | {row['ms_per_step']:.2f} "
            f"| {row['images_per_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=1, help="runs per row (median)")
    p.add_argument("--steps", type=int, default=STEPS, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=WARMUP, help="untimed steps first")
    p.add_argument("--json", action="store_true", help="JSON on stdout")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        mode, devices = args.child[0], int(args.child[1])
        print(json.dumps(_child(mode, devices, args.steps, args.warmup)))
        return
    load_before = os.getloadavg()[0]
    table, batch = measure(args.repeats, args.steps, args.warmup)
    meta = {
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "batch_size": batch,
        "cpus": os.cpu_count(),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    text = _format(table, meta)
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps({"meta": meta, "rows": table}, indent=2))
    else:
        print(text)


if __name__ == "__main__":
    main()
