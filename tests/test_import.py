"""Importing mnist_cnn has no side effects; the compilation cache is opt-in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

import mnist_cnn
from mnist_cnn import jit_cache

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, cache: Path, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter, XDG_CACHE_HOME=cache, no cache opt-out."""
    environ = {k: v for k, v in os.environ.items() if k != jit_cache.CACHE_ENV_VAR}
    environ.update(XDG_CACHE_HOME=str(cache), PYTHONPATH=str(REPO), **env)
    return subprocess.run(
        [sys.executable, "-c", code],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def test_import_changes_no_jax_setting_creates_nothing_and_loads_no_plotting(tmp_path):
    code = (
        "import sys, mnist_cnn, jax\n"
        "print(jax.config.jax_compilation_cache_dir)\n"
        "print(sorted(m for m in ('matplotlib', 'scipy', 'PIL') if m in sys.modules))\n"
    )
    out = _python(code, tmp_path).stdout.splitlines()
    assert out == ["None", "[]"]
    assert list(tmp_path.iterdir()) == []


def test_lazy_teaching_modules_are_listed_and_aliased():
    names = dir(mnist_cnn)
    for name in ("teach", "ops", "checks", "export_web", "fit", "pretrained"):
        assert name in names
    assert set(mnist_cnn.__all__) <= set(names)
    assert mnist_cnn.ops is sys.modules["mnist_cnn.teach.ops"]
    assert mnist_cnn.checks is sys.modules["mnist_cnn.teach.checks"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = mnist_cnn.nope


def test_second_process_gets_no_cache_while_the_first_holds_it(tmp_path):
    folder = tmp_path / "jax"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, mnist_cnn\n"
            "print(mnist_cnn.enable_compilation_cache(), flush=True)\n"
            "sys.stdin.read()\n",
        ],
        env={
            **os.environ,
            jit_cache.CACHE_ENV_VAR: str(folder),
            "PYTHONPATH": str(REPO),
        },
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == str(folder)
        code = (
            "import mnist_cnn, jax\n"
            "print(mnist_cnn.enable_compilation_cache())\n"
            "print(jax.config.jax_compilation_cache_dir)\n"
        )
        second = _python(code, tmp_path, **{jit_cache.CACHE_ENV_VAR: str(folder)})
        assert second.stdout.splitlines() == ["None", "None"]
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    # Once the first process has exited, the next one gets the cache.
    third = _python(code, tmp_path, **{jit_cache.CACHE_ENV_VAR: str(folder)})
    assert third.stdout.splitlines() == [str(folder), str(folder)]


def test_cache_folder_is_per_cpu_kind_in_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = jit_cache.compilation_cache_dir()
    assert folder.parent == tmp_path / "mnist_cnn" and folder.name.startswith("jax-")


def test_cache_respects_opt_out_and_an_existing_setting(monkeypatch, tmp_path):
    # In this process: the lock is taken for real, so restore what the test changes.
    monkeypatch.setattr(jit_cache, "_lock", None)
    monkeypatch.setattr(jit_cache, "_folder", None)
    before = jax.config.jax_compilation_cache_dir
    try:
        monkeypatch.setenv(jit_cache.CACHE_ENV_VAR, "0")
        assert jit_cache.enable_compilation_cache() is None
        # A cache the user configured is left alone.
        jax.config.update("jax_compilation_cache_dir", str(tmp_path / "theirs"))
        monkeypatch.setenv(jit_cache.CACHE_ENV_VAR, str(tmp_path / "ours"))
        assert jit_cache.enable_compilation_cache() is None
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "theirs")
        # With none configured, the folder named by the variable is used and created.
        jax.config.update("jax_compilation_cache_dir", None)
        assert jit_cache.enable_compilation_cache() == tmp_path / "ours"
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "ours")
        assert (tmp_path / "ours" / jit_cache.LOCK_NAME).is_file()
        # Calling it again is harmless.
        assert jit_cache.enable_compilation_cache() == tmp_path / "ours"
    finally:
        if jit_cache._lock is not None:
            jit_cache._lock.close()  # releases the flock
        jax.config.update("jax_compilation_cache_dir", before)
