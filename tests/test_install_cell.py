"""The chapters' install cell (Colab, Binder) and collapsed solutions.

Both are written by tools/notebook_setup.py. The repository URL lives in pyproject.toml
([project.urls] Repository); the book's launch buttons (_config.yml) and every chapter's
install cell must use that same URL. The cell must be a no-op wherever `mnist_cnn`
imports (local runs, nbval) and must pip-install from the repository where it does not.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import notebook_setup  # noqa: E402

URL = notebook_setup.repository_url()
CHAPTERS = sorted((REPO / "chapters").glob("*.ipynb"))

# Run before the cell: every way the cell could start a process records it and stops.
NO_PROCESSES = textwrap.dedent("""
    import os, subprocess, sys
    def _refuse(*args, **kwargs):
        print("PROCESS", repr(args[0] if args else kwargs))
        raise SystemExit(3)
    subprocess.run = subprocess.call = subprocess.check_call = _refuse
    subprocess.check_output = subprocess.Popen = os.system = _refuse
""")


def _code(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_repository_url_is_shared():
    """pyproject.toml's Repository URL is the book's repository.url (launch buttons)."""
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["repository"]["url"] == URL
    assert URL.startswith("https://github.com/")
    assert config["launch_buttons"]["binderhub_url"]
    assert config["launch_buttons"]["colab_url"]


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_chapter_is_set_up(path):
    """First code cell = the install cell with the shared URL; solutions collapsed."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = _code(nb)[0]
    source = "".join(first["source"])
    assert f"git+{URL}" in source, (
        f"{path.name}: the first code cell is not the install cell for {URL}; run "
        f"`.venv/bin/python tools/notebook_setup.py chapters/*.ipynb`"
    )
    assert source == notebook_setup.install_source(URL)
    assert "remove-cell" in first["metadata"]["tags"]
    assert notebook_setup.setup_notebook(nb, URL) == nb, (
        f"{path.name} is out of date (solution cells not collapsed?); run "
        "`.venv/bin/python tools/notebook_setup.py chapters/*.ipynb`"
    )


def _run_cell(*python_flags: str, cwd: Path) -> subprocess.CompletedProcess:
    code = NO_PROCESSES + notebook_setup.install_source(URL)
    return subprocess.run(
        [sys.executable, *python_flags, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_install_cell_is_a_no_op_when_the_package_imports(tmp_path):
    """Where mnist_cnn imports here, the cell starts no process, prints nothing."""
    result = _run_cell(cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "" and result.stderr == ""


def test_install_cell_installs_from_the_repository_when_missing(tmp_path):
    """Without site-packages (-S: no mnist_cnn, as on Colab) it runs pip once."""
    result = _run_cell("-S", cwd=tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    command = result.stdout.removeprefix("PROCESS ").strip()
    assert command == repr(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            f"mnist_cnn @ git+{URL}",
        ]
    )


def _md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _py(text: str, outputs: list | None = None) -> dict:
    return {
        "cell_type": "code",
        "execution_count": 1,
        "metadata": {},
        "outputs": outputs or [],
        "source": text,
    }


def _notebook() -> dict:
    output = {"name": "stdout", "output_type": "stream", "text": "PASS\n"}
    cells = [
        _md("# Title"),
        _py("import numpy as np"),
        _md("```{exercise} Task\n:label: ch-ex\n\nDo it.\n```"),
        _md("```{solution-start} ch-ex\n:class: dropdown\n```"),
        _py("answer = 42", [output]),
        _md("Because.\n\n```{solution-end}\n```"),
        _md("```{exercise} Other\n:label: ch-ex2\n```"),
        _md("```{solution-start} ch-ex2\n:class: dropdown\n```"),
        _py("print(1)"),
        _md("```{solution-end}\n```"),
        _py("print('after')"),
    ]
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 4}


def test_setup_notebook_layout_and_idempotence():
    nb = _notebook()
    before = copy.deepcopy(nb)
    once = notebook_setup.setup_notebook(nb, URL)
    assert nb == before, "the input notebook was modified"
    assert notebook_setup.setup_notebook(once, URL) == once
    cells = once["cells"]
    # The install cell comes right before the first code cell, after the title.
    assert cells[1]["id"] == notebook_setup.INSTALL_CELL_ID
    assert [c["source"].split("\n")[-1] for c in cells[2:]] == [
        c["source"].split("\n")[-1] for c in nb["cells"][1:]
    ]
    hidden = [c["metadata"].get("jupyter", {}) for c in cells]
    collapsed = {"source_hidden": True, "outputs_hidden": True}
    assert hidden[5] == collapsed and hidden[9] == collapsed  # solution code
    assert hidden[6] == {
        "source_hidden": True
    }  # the answer's prose (and the end fence)
    assert hidden[10] == {}  # a bare {solution-end} stays visible
    assert hidden[4] == {} and hidden[8] == {}  # solution-start cells stay visible
    assert all(h == {} for h in hidden[:4]) and hidden[11] == {}  # outside solutions
    assert cells[5]["outputs"][0]["text"] == "PASS\n"  # outputs are kept
    # A collapsed cell shows its first line in JupyterLab: it must not give the answer.
    assert cells[5]["source"] == "# Solution\nanswer = 42"
    assert cells[6]["source"] == "<!-- solution -->\nBecause.\n\n```{solution-end}\n```"
    assert cells[10]["source"] == "```{solution-end}\n```"


def test_setup_notebook_updates_an_old_install_cell_and_drops_stale_collapse():
    nb = notebook_setup.setup_notebook(_notebook(), URL)
    nb["cells"][1]["source"] = nb["cells"][1]["source"].replace(URL, "https://old")
    nb["cells"][1]["outputs"] = [
        {"output_type": "stream", "name": "stdout", "text": ""}
    ]
    nb["cells"][2]["metadata"]["jupyter"] = {"source_hidden": True}  # not a solution
    # Moved below another code cell: the tool puts it back first.
    nb["cells"].insert(3, nb["cells"].pop(1))
    fixed = notebook_setup.setup_notebook(nb, URL)
    assert fixed == notebook_setup.setup_notebook(_notebook(), URL)
    assert sum(notebook_setup._is_install_cell(c) for c in fixed["cells"]) == 1


def test_unmatched_solution_start_is_an_error():
    nb = _notebook()
    del nb["cells"][9]  # the second {solution-end}
    with pytest.raises(ValueError, match="no matching"):
        notebook_setup.setup_notebook(nb, URL)


def test_check_mode_reports_without_writing(tmp_path, capsys):
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(_notebook()))
    before = path.read_text()
    assert notebook_setup.main(["--check", str(path)]) == 1
    assert path.read_text() == before
    assert notebook_setup.main([str(path)]) == 0
    assert notebook_setup.main(["--check", str(path)]) == 0
    assert "out of date" in capsys.readouterr().out


def test_dependencies_have_lower_bounds_only():
    """pyproject.toml has lower bounds only (Colab, Binder), and CI's pins fit them."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = {r.name: r for r in map(Requirement, project["dependencies"])}
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    for name, req in deps.items():
        assert all(s.operator == ">=" for s in req.specifier), req
        assert req.specifier.contains(pins[name]), (req, pins[name])
    for name in ("jax", "flax", "optax"):
        assert [s.operator for s in deps[name].specifier] == [">="], deps[name]


def test_a_cell_holding_exercise_and_answer_is_cut_so_the_answer_collapses():
    text = (
        "```{exercise} Task\n:label: ch-ex\n\nDo it.\n```\n\n"
        "```{solution-start} ch-ex\n:class: dropdown\n```\n\nBecause.\n\n"
        "```{solution-end}\n```\n\nMore prose."
    )
    nb = {
        "cells": [
            {"cell_type": "markdown", "id": "abc", "metadata": {}, "source": text}
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    once = notebook_setup.setup_notebook(nb, URL)
    assert notebook_setup.setup_notebook(once, URL) == once
    cells = [c for c in once["cells"] if c["cell_type"] == "markdown"]
    assert [c["id"] for c in cells] == ["abc", "abc-1", "abc-2"]
    assert cells[0]["source"].endswith(":class: dropdown\n```")
    assert cells[1]["source"] == "<!-- solution -->\nBecause.\n\n```{solution-end}\n```"
    assert cells[1]["metadata"]["jupyter"] == {"source_hidden": True}
    assert cells[2]["source"] == "More prose." and "jupyter" not in cells[2]["metadata"]
    # Cut back together, the cells hold the original text (the book renders the same).
    joined = "\n\n".join(c["source"] for c in cells).replace("<!-- solution -->\n", "")
    assert joined == text
