"""Re-execute notebooks in place so their stored outputs are fresh: the book shows them.

Usage: python tools/run_notebooks.py chapters/01_convolution.ipynb [...]
Each notebook runs in a new kernel from its own folder, like nbval does in CI. A
notebook that fails is left untouched and the script exits non-zero. Any stderr output
is reported, since nbval compares stderr too and warnings must not leak into the book.
"""

from __future__ import annotations

import html
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _widget_text(model_id: str, state: dict) -> str | None:
    """The final text of a tqdm progress-bar widget (an HBox: HTML, progress, HTML)."""
    box = state.get(model_id, {}).get("state", {})
    parts = []
    for child in box.get("children", []):
        child = state.get(child.removeprefix("IPY_MODEL_"), {})
        values = child.get("state", {})
        if child.get("model_name") == "FloatProgressModel" and values.get("max"):
            filled = round(10 * values.get("value", 0) / values["max"])
            parts.append("|" + "█" * filled + " " * (10 - filled) + "|")
        elif "value" in values:
            parts.append(html.unescape(str(values["value"])).replace("\u2007", " "))
    return "".join(parts) or None


def _drop_widget_state(nb) -> None:
    """Replace widget outputs (progress bars) by their final text; drop widget state.

    Stored widget state makes the rendered page load require.js and the widget library
    from a CDN; a static book shows the bar's final text instead, which works offline.
    """
    state = (
        (nb.metadata.pop("widgets", None) or {})
        .get("application/vnd.jupyter.widget-state+json", {})
        .get("state", {})
    )
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                text = _widget_text(data.pop(WIDGET_VIEW)["model_id"], state)
                if text:
                    data["text/plain"] = text


def run(path: Path, timeout: int = 600) -> bool:
    """Execute one notebook; write it back only if every cell succeeded."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:
        print(f"FAILED {path}:\n{err}", file=sys.stderr)
        return False
    _drop_widget_state(nb)
    stderr = [
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("name") == "stderr"
    ]
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".ipynb")
    os.close(fd)
    nbformat.write(nb, tmp)
    os.chmod(
        tmp, path.stat().st_mode
    )  # mkstemp files are 0600; keep the notebook's mode
    os.replace(tmp, path)
    note = f" (stderr in {len(stderr)} outputs: check them)" if stderr else ""
    print(f"ok {path} in {time.perf_counter() - start:.1f} s{note}")
    return True


if __name__ == "__main__":
    results = [run(Path(p)) for p in sys.argv[1:]]
    sys.exit(0 if all(results) else 1)
