"""The package outside the repository: build the wheel, install it alone, run chapters.

A fresh venv gets only the built wheel of `mnist_cnn` (`pip install --no-deps`); its
other dependencies are the pinned ones already installed in this environment, reached
through a .pth file that names this environment's site-packages and nothing else (not
the repository, and not the editable install's finder: a .pth line that is a path is not
itself scanned for .pth files). Chapter 0 (load, train, evaluate, predict, with the
install cell that must do nothing here) is copied to a folder outside the repository and
executed there with nbclient, in a kernel run by that venv's Python. It must run without
error and import `mnist_cnn` from the venv.

One of the slowest unit tests (chapter 0 trains the default model). Run it alone with
`.venv/bin/python -m pytest -q -p no:xdist tests/test_wheel.py`; `make test` runs it
too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = ["00_mnist_in_five_minutes.ipynb"]
# What setuptools needs to build the wheel (pyproject.toml ships only mnist_cnn*).
SOURCE_FILES = ["pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"]

# Run by the temporary venv's Python: executes each notebook with nbclient in its folder
# (a kernel started by that same Python), then asks the kernel where mnist_cnn came
# from.
DRIVER = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    where = {}
    for name in sys.argv[1:]:
        path = Path(name)
        nb = nbformat.read(path, as_version=4)
        probe = "import sys, mnist_cnn; print(sys.executable, mnist_cnn.__file__)"
        nb.cells.append(nbformat.v4.new_code_cell(probe))
        client = NotebookClient(
            nb, timeout=900, kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
        where[path.name] = nb.cells[-1].outputs[0]["text"].split()
    print(json.dumps(where))
""")


def _run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed:\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-5000:]}"
    )
    return result


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A venv outside the repository with only the built wheel of mnist_cnn in it."""
    root = tmp_path_factory.mktemp("wheel")
    # Build from a copy of the package's sources, so the build writes nothing into the
    # repository (build/, *.egg-info) and cannot pick up anything but the package.
    src = root / "src"
    shutil.copytree(
        REPO / "mnist_cnn",
        src / "mnist_cnn",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in SOURCE_FILES:
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, src / name)
    dist = root / "dist"
    _run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"),
            *("--no-build-isolation", "--no-index", "-w", str(dist), str(src)),
        ]
    )
    (wheel,) = dist.glob("mnist_cnn-*.whl")

    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
        ).stdout.strip()
    )
    # This environment's dependencies (jax, flax, ipykernel, nbclient...), not the repo.
    ours = Path(sysconfig.get_path("purelib"))
    (site / "_project_dependencies.pth").write_text(f"{ours}\n")
    _run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install"),
            *("--quiet", "--no-deps", "--no-index", str(wheel)),
        ]
    )
    return env_dir


def _clean_env(tmp: Path) -> dict:
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env["MNIST_CNN_DATA"] = os.environ.get("MNIST_CNN_DATA", "")
    assert env["MNIST_CNN_DATA"], (
        "set MNIST_CNN_DATA (tests/conftest.py does near shared/)"
    )
    # The kernel's own Jupyter runtime files, away from the repository and the user's.
    env["JUPYTER_RUNTIME_DIR"] = str(tmp / "runtime")
    return env


def test_wheel_holds_only_the_package(wheel_venv):
    site = next(wheel_venv.glob("lib/python3*/site-packages"))
    record = next(site.glob("mnist_cnn-*.dist-info")) / "RECORD"
    files = [line.split(",")[0] for line in record.read_text().splitlines()]
    others = [
        f
        for f in files
        if f.split("/")[0] not in ("mnist_cnn", record.parent.name)
        and not f.endswith("/bin/mnist-cnn")  # the console script
    ]
    assert not others, f"the wheel installs more than the package: {others}"
    assert "mnist_cnn/__init__.py" in files
    assert any(f.startswith("mnist_cnn/teach/") for f in files), (
        "mnist_cnn.teach is missing from the wheel"
    )


def test_chapters_run_from_the_installed_wheel(wheel_venv, tmp_path):
    """Chapters 0 and 11, copied out of the repository, run on the wheel's mnist_cnn."""
    work = tmp_path / "notebooks"
    work.mkdir()
    for name in CHAPTERS:
        shutil.copy2(REPO / "chapters" / name, work / name)
    python = wheel_venv / "bin" / "python"
    result = _run(
        [python, "-c", DRIVER, *(str(work / n) for n in CHAPTERS)],
        cwd=work,
        env=_clean_env(tmp_path),
        timeout=1800,
    )
    where = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(where) == sorted(CHAPTERS)
    for name, (executable, package_file) in where.items():
        assert Path(executable).parent == python.parent, (name, executable)
        assert Path(package_file).resolve().is_relative_to(wheel_venv.resolve()), (
            f"{name} imported mnist_cnn from {package_file}, not from the wheel"
        )
