"""Prepare the chapter notebooks for JupyterLab, Colab and Binder (idempotent).

Usage:
    python tools/notebook_setup.py chapters/*.ipynb          # rewrite what is stale
    python tools/notebook_setup.py --check chapters/*.ipynb  # exit 1 if anything is

Two things, both derived from the notebook itself and from pyproject.toml, so running
the tool again changes nothing:

1. The install cell. The first code cell of every chapter installs `mnist_cnn` from the
   repository (`[project.urls] Repository` in pyproject.toml, the same URL as
   `repository.url` in _config.yml) when the package cannot be imported, as on Colab,
   and does nothing otherwise (a local `.venv`, Binder after its postBuild, nbval). The
   book hides the cell (`remove-cell`): it is for the notebook, not for the page.
2. Collapsed solutions. The cells between a `{solution-start}` cell and the matching
   `{solution-end}` get `"jupyter": {"source_hidden": true, "outputs_hidden": true}`, so
   JupyterLab shows them collapsed until the reader expands them. myst-nb ignores that
   metadata, so the rendered book still shows the solution inside its dropdown. A
   collapsed cell still shows its first line, so each one starts with a line that gives
   nothing away: `# Solution` in code, `<!-- solution -->` (invisible in the book) in
   markdown. A markdown cell that holds an exercise and its whole answer is first cut
   after the `{solution-start}` fence (and after a `{solution-end}` fence that more text
   follows), so that the answer has a cell of its own to collapse.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INSTALL_CELL_ID = "install-mnist-cnn"
INSTALL_MARKER = "# Colab and Binder: install mnist_cnn"
SOLUTION_START = "{solution-start}"
SOLUTION_END = "{solution-end}"
COLLAPSED = {"source_hidden": True, "outputs_hidden": True}
# JupyterLab shows the first line of a collapsed cell: one that gives nothing away.
FIRST_LINE = {"code": "# Solution", "markdown": "<!-- solution -->"}


def repository_url(pyproject: Path = REPO / "pyproject.toml") -> str:
    """The repository URL: `[project.urls] Repository` in pyproject.toml."""
    urls = tomllib.loads(pyproject.read_text())["project"].get("urls", {})
    if "Repository" not in urls:
        raise ValueError(f"{pyproject} has no [project.urls] Repository entry; add one")
    return urls["Repository"]


def install_source(url: str) -> str:
    """The install cell's code: pip-install the package from `url` if it is missing."""
    # Kept ruff-clean (format and lint) at 88 columns, like every other code cell.
    return f"""{INSTALL_MARKER} when it is missing (a no-op where it imports).
import importlib

try:
    importlib.import_module("mnist_cnn")
except ImportError:
    import subprocess
    import sys

    # Unpinned: pip keeps the jax, flax and optax the machine already has when they are
    # new enough (pyproject.toml gives the lower bounds).
    package = "mnist_cnn @ git+{url}"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", package]
    subprocess.run(pip, check=True)
    importlib.invalidate_caches()
    print("installed", package)"""


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _install_cell(url: str, old: dict | None) -> dict:
    """The install cell; an unchanged `old` is kept (outputs, execution data)."""
    source = install_source(url)
    if old is not None and _source(old) == source:
        cell = copy.deepcopy(old)
    else:
        cell = {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": source,
        }
    cell["id"] = INSTALL_CELL_ID
    tags = cell["metadata"].setdefault("tags", [])
    if "remove-cell" not in tags:
        tags.append("remove-cell")
    return cell


def _is_install_cell(cell: dict) -> bool:
    return cell.get("id") == INSTALL_CELL_ID or _source(cell).startswith(INSTALL_MARKER)


def _split_points(text: str) -> list[int]:
    """Line numbers after which a markdown cell is cut: after the closing fence of each
    `{solution-start}` or `{solution-end}` directive that has more text after it."""
    lines, cuts, i = text.split("\n"), [], 0
    while i < len(lines):
        line = lines[i].strip()
        if SOLUTION_START in line or SOLUTION_END in line:
            fence = line[: len(line) - len(line.lstrip("`:"))]
            close = next(
                (j for j in range(i + 1, len(lines)) if lines[j].strip() == fence),
                None,
            )
            if fence and close is not None:
                if "\n".join(lines[close + 1 :]).strip():
                    cuts.append(close + 1)
                i = close
        i += 1
    return cuts


def split_solution_cells(cells: list[dict]) -> list[dict]:
    """Markdown cells cut so that each solution's content sits in cells of its own.

    A cell that holds an exercise, its `{solution-start}`, the answer and the
    `{solution-end}` all at once would show the answer in JupyterLab, where only whole
    cells collapse. The cut cells render the same in the book (the directives are gated
    across cells); each new cell's id is the old one with a suffix.
    """
    out = []
    for cell in cells:
        text = _source(cell)
        cuts = _split_points(text) if cell["cell_type"] == "markdown" else []
        if not cuts:
            out.append(cell)
            continue
        lines = text.split("\n")
        bounds = [0, *cuts, len(lines)]
        for k, (a, b) in enumerate(itertools.pairwise(bounds)):
            piece = copy.deepcopy(cell)
            piece["source"] = "\n".join(lines[a:b]).strip("\n")
            if k and "id" in cell:
                piece["id"] = f"{cell['id']}-{k}"
            out.append(piece)
    return out


def solution_cells(cells: list[dict]) -> list[bool]:
    """For each cell: does it belong to a solution (after its start, up to its end)?

    The `{solution-start}` cell itself stays visible (it only opens the directive); the
    `{solution-end}` cell is collapsed when it also holds part of the answer.
    """
    inside, flags = False, []
    for cell in cells:
        text = _source(cell)
        if inside:
            flags.append(True)
            if SOLUTION_END in text:
                inside = False
            continue
        starts = SOLUTION_START in text
        if starts and SOLUTION_END in text.split(SOLUTION_START, 1)[1]:
            raise ValueError(
                "a cell opens and closes a solution at once; put the solution's "
                f"content in cells between the two directives: {text[:80]!r}"
            )
        flags.append(False)
        inside = starts
    if inside:
        raise ValueError("a {solution-start} has no matching {solution-end}")
    return flags


def _only_directive(text: str) -> bool:
    """True for a cell that holds nothing but the `{solution-end}` fence."""
    return text.replace("```", "").replace(SOLUTION_END, "").strip() == ""


def _start_with(cell: dict, line: str) -> None:
    """Make `line` the first line of the cell's source (once)."""
    if _source(cell).split("\n", 1)[0] == line:
        return
    source = cell.get("source", "")
    if isinstance(source, list):
        cell["source"] = [line + "\n", *source]
    else:
        cell["source"] = line + "\n" + source


def setup_notebook(nb: dict, url: str) -> dict:
    """A copy of the notebook `nb` (nbformat 4 JSON) with its install cell and collapsed
    solutions up to date."""
    nb = copy.deepcopy(nb)
    cells = split_solution_cells(nb["cells"])
    old = next((c for c in cells if _is_install_cell(c)), None)
    cells = [c for c in cells if not _is_install_cell(c)]
    first_code = next(
        (i for i, c in enumerate(cells) if c["cell_type"] == "code"), len(cells)
    )
    cells.insert(first_code, _install_cell(url, old))

    for cell, in_solution in zip(cells, solution_cells(cells)):
        meta = cell.setdefault("metadata", {})
        jupyter = {
            k: v
            for k, v in meta.get("jupyter", {}).items()
            if k not in ("source_hidden", "outputs_hidden")
        }
        if in_solution and not (
            cell["cell_type"] == "markdown" and _only_directive(_source(cell))
        ):
            jupyter.update(
                COLLAPSED if cell["cell_type"] == "code" else {"source_hidden": True}
            )
            _start_with(cell, FIRST_LINE[cell["cell_type"]])
        if jupyter:
            meta["jupyter"] = jupyter
        else:
            meta.pop("jupyter", None)
    nb["cells"] = cells
    # Cell ids (the install cell has one) need nbformat 4.5.
    nb["nbformat_minor"] = max(nb.get("nbformat_minor", 0), 5)
    return nb


def _dump(nb: dict) -> str:
    # The layout nbformat writes: one-space indent, sorted keys, final newline.
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Apply (or with --check, verify) the set-up on the given notebooks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if out of date"
    )
    args = parser.parse_args(argv)
    url = repository_url()
    stale, failed = [], []
    for path in args.notebooks:
        text = path.read_text(encoding="utf-8")
        try:
            new = _dump(setup_notebook(json.loads(text), url))
        except ValueError as error:
            failed.append(path)
            print(f"{path}: {error}", file=sys.stderr)
            continue
        if json.loads(new) == json.loads(text):
            continue
        stale.append(path)
        if not args.check:
            path.write_text(new, encoding="utf-8")
    verb = "out of date" if args.check else "updated"
    for path in stale:
        print(f"{verb}: {path}")
    return 1 if failed or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
