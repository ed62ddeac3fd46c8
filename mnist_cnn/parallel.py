"""Data parallelism with `jax.sharding`: one mesh axis over the batch, state replicated.

Every device holds a whole copy of the model and of the optimizer state and works on
its own slice of each batch. Nothing here communicates by hand: the training step asks
(with a sharding constraint) for the batch to be split over the mesh axis "batch", and
XLA's partitioner, seeing replicated parameters and a loss averaged over a split batch,
inserts the all-reduce that sums the gradients. The same program runs on one device
(a mesh of one) and on many.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import jax
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

BATCH_AXIS = "batch"

Tree = TypeVar("Tree")


def batch_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis "batch" over `devices` (default: every local device)."""
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("batch_mesh needs at least one device")
    # Auto axes: the compiler propagates shardings from the arrays we place and the
    # constraint on the batch. (`jax.make_mesh` defaults to explicit axes, which put
    # shardings into the array types and want `jax.sharding.reshard` instead.)
    return jax.make_mesh(
        (len(devices),), (BATCH_AXIS,), axis_types=(AxisType.Auto,), devices=devices
    )


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding that keeps a whole copy of an array on every device of `mesh`."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding that splits an array's first (batch) axis over the "batch" axis."""
    return NamedSharding(mesh, P(BATCH_AXIS))


def replicate(tree: Tree, mesh: Mesh) -> Tree:
    """A copy of the arrays of `tree` (a pytree) with one whole copy on every device."""
    return jax.device_put(tree, replicated(mesh))


def replicate_state(*nodes: Any, mesh: Mesh) -> None:
    """Replicate in place every variable of NNX objects (a model, an optimizer)."""
    for node in nodes:
        # nnx.state is a pytree of the variables' arrays; nnx.update writes the
        # replicated copies back into the same Variables, so references stay valid.
        nnx.update(node, replicate(nnx.state(node), mesh))


def shard_batch(tree: Tree, sharding: NamedSharding) -> Tree:
    """Inside jit: constrain every array of `tree` to `sharding` (split its batch axis).

    A constraint, not a copy: the compiler lays the arrays out this way and partitions
    the computation that uses them accordingly.
    """
    return jax.lax.with_sharding_constraint(tree, sharding)


def check_batch_size(batch_size: int, devices: int) -> None:
    """Raise a clear ValueError unless `batch_size` splits evenly over `devices`."""
    n = devices
    if batch_size % n == 0:
        return
    below = batch_size // n * n
    nearest = f"{below} or {below + n}" if below else f"{n}"
    raise ValueError(
        f"batch_size={batch_size} does not split evenly over the {n} devices of the "
        f"data-parallel mesh: use a multiple of {n} (e.g. {nearest}), or set "
        "data_parallel=False"
    )
