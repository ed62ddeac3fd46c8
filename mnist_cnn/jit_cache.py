"""An opt-in persistent cache of compiled XLA programs, used by one process at a time.

Nothing here runs on import: the command line calls `enable_compilation_cache()` first
thing, and a notebook may call it in its set-up cell. Later runs then skip most
compilation (seconds of a short run on a 2-core CPU).

Concurrency: JAX writes cache entries without a lock, so two processes compiling the
same program at the same instant can read each other's half-written entry. Rather than
make concurrent use safe, the cache has a single writer: the first process takes an
exclusive `flock` on a lock file in the cache folder and keeps it until it exits; any
other process finds the lock taken, leaves the cache off and compiles as JAX does by
default.
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path
from typing import IO

import jax

from .files import cache_root

try:
    import fcntl
except ImportError:  # Windows: no flock, so no single-writer guarantee and no cache
    fcntl = None

# Set MNIST_CNN_JAX_CACHE=0 to keep the cache off, or to a folder to move it.
CACHE_ENV_VAR = "MNIST_CNN_JAX_CACHE"
LOCK_NAME = ".mnist_cnn.lock"

# The open lock file while this process owns the cache; the lock lasts as long as it
# does.
_lock: IO[str] | None = None
_folder: Path | None = None


def compilation_cache_dir() -> Path:
    """The cache folder: the user cache, one folder per CPU kind and JAX version.

    XLA compiles for the exact instruction set of this CPU, so a home folder shared by
    different machines must not share executables: the name holds a hash of the CPU
    flags.
    """
    features = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            features += next(
                (line for line in f if line.startswith(("flags", "Features"))), ""
            )
    except OSError:
        pass  # not Linux: the architecture name alone
    tag = hashlib.sha256(f"{features} jax={jax.__version__}".encode()).hexdigest()[:12]
    return cache_root() / f"jax-{tag}"


def _take_lock(folder: Path) -> IO[str] | None:
    """The lock file of `folder`, exclusively locked by this process; None if taken."""
    if fcntl is None:
        return None
    handle = open(folder / LOCK_NAME, "a")  # noqa: SIM115 (held open for the process)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # another process writes this cache
        handle.close()
        return None
    return handle


def enable_compilation_cache() -> Path | None:
    """Turn on the persistent compilation cache for this process; its folder, or None.

    None means the cache stays off: $MNIST_CNN_JAX_CACHE is 0, the user configured a JAX
    cache of their own, the folder cannot be created, or another process holds the
    cache. Call it before anything is compiled: JAX decides at the first compile.
    """
    global _lock, _folder
    if _lock is not None:
        return _folder  # already ours: calling twice is harmless
    choice = os.environ.get(CACHE_ENV_VAR, "")
    if (
        choice.lower() in ("0", "off", "false", "no")
        or jax.config.jax_compilation_cache_dir
    ):
        return None
    folder = Path(choice) if choice else compilation_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = _take_lock(folder)
    except OSError:
        return None  # a read-only home: compile every time, as JAX does by default
    if lock is None:
        return None
    _lock, _folder = lock, folder
    jax.config.update("jax_compilation_cache_dir", str(folder))
    # Our programs compile in well under JAX's default 1 s threshold, yet together they
    # cost seconds of a short run; each entry is a few kB.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
