"""Every number the book's prose quotes from a measurement must be glued from a cell.

The scan reads the markdown cells of every chapter notebook and every chapters/*.md page
and finds percentages (`99.2%`), decimals (`0.55`), scientific numbers (`1e-4`) and
timings (`12.5 s`, `164 s`, `3 minutes`). A number is fine when it is

- inside a glue role (`{glue:text}`acc:.2%``): it comes from a cell and cannot drift;
- inside a code span or a fenced code block: code, not a claim (a fenced *directive*
  such as `{exercise}` or `{note}` is prose and is scanned);
- in a link target or an HTML comment;
- or covered by `ALLOWED`, a short list of textbook constants, each with its reason.

Decisions: math (`$...$`, `$$...$$`) is scanned like prose, because a measured number in
a formula drifts like any other (write it outside the formula, glued, or glue the
quantity the formula is about); headings are scanned too. Integers are not flagged
unless they carry a time unit: counts are mostly definitions (28×28, 16 channels).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"


@dataclass(frozen=True)
class Allowed:
    """A pattern whose numbers may stand unglued; `where` limits it to some files."""

    pattern: str
    reason: str
    where: str = ""  # a substring of the file name; "" means every file


ALLOWED: tuple[Allowed, ...] = (
    Allowed(
        r"at most 0\.25",
        "the sigmoid's largest slope, σ'(0) = 1/4: a property of the function",
        "04_activation",
    ),
    Allowed(
        r"88\.7",
        "exp overflows float32 above ln(3.4e38) ≈ 88.72: a property of the format",
        "06_fully_connected",
    ),
    Allowed(
        r"≈ \d+(?:\.\d+)?%(?=.*\{cite\})",
        "accuracies quoted from the cited literature on the same table row",
        "11_train",
    ),
    Allowed(
        r"(?:keep|explain|hold)s? (?:only )?9[05]%",
        "the share of variance asked for: a chosen threshold (the count is measured)",
    ),
    Allowed(
        r"ε = \S+ instead of \d*\.\d+",
        "the whitening constant ε: a chosen setting, not a measurement",
        "02_architecture",
    ),
    Allowed(
        r"\\log 10 \\approx 2\.30|about 2\.3\b",
        "ln 10 ≈ 2.303, the cross-entropy of a uniform guess over ten classes",
        "10_write",
    ),
    Allowed(
        r"brighter than \$0\.1\$",
        "preprocess_image's ink threshold: a constant of the code",
        "14_draw",
    ),
)

# Percentages, decimals, scientific numbers and timings (integers with a time unit).
NUMBER = re.compile(
    r"(?<![\w.])(?:"
    r"\d+(?:\.\d+)?\s?%"  # 99%  99.2 %
    r"|\d+(?:\.\d+)?[eE][-+]?\d+"  # 1e-4  2.5e3
    r"|\d+(?:\.\d+)?\s?(?:ms|µs|sec|seconds?|min|minutes?|hours?)\b"  # 3 minutes
    r"|(?:\d+\.\d+\s?|\d+\s)s\b"  # 12.5 s, 164 s (not the digits "0s and 1s")
    r"|\d*\.\d+"  # 0.55  .5
    r")"
)
GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`[^`]*`")
CODE_SPAN = re.compile(r"(`+)(?!\{).+?\1", re.S)
LINK_TARGET = re.compile(r"\]\([^)]*\)|<https?://[^>]*>|https?://\S+")
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
DIRECTIVE_OPTION = re.compile(r"^\s*:[\w-]+:.*$")
CODE_DIRECTIVES = ("{code-cell}", "{code-block}", "{code}", "{literalinclude}")


@dataclass(frozen=True)
class Finding:
    """An unglued number: where it is and the line around it."""

    file: str
    cell: int  # markdown cell index in the notebook (0 for a .md page)
    number: str
    line: str

    def __str__(self) -> str:
        return f"{self.file} cell {self.cell}: {self.number!r} in: {self.line.strip()}"


def _prose_lines(markdown: str) -> list[str]:
    """The prose lines of `markdown`: code fences and directive options dropped."""
    lines, fence, code = [], None, False
    for line in markdown.splitlines():
        match = FENCE.match(line)
        if match and fence is None:
            fence, info = match.group(2), match.group(3).strip()
            # A code block is not prose; a directive fence ({exercise}, {note}) is.
            code = not info.startswith("{") or info.startswith(CODE_DIRECTIVES)
            if not code and info:
                lines.append(info.split("}", 1)[-1])  # a directive's title is prose
            continue
        closing = line.strip()
        if (
            fence is not None
            and closing.startswith(fence[0] * len(fence))
            and closing == closing[0] * len(closing)
        ):
            fence, code = None, False
            continue
        if code or DIRECTIVE_OPTION.match(line):
            continue
        lines.append(line)
    return lines


def unglued_numbers(markdown: str, file: str = "", cell: int = 0) -> list[Finding]:
    """Numbers in `markdown` neither glued, nor code, nor allowed for `file`."""
    text = HTML_COMMENT.sub(" ", markdown)
    findings = []
    for line in _prose_lines(text):
        for pattern in (GLUE_ROLE, CODE_SPAN, LINK_TARGET):
            line = pattern.sub(lambda m: " " * len(m.group(0)), line)
        allowed = [
            m.span()
            for a in ALLOWED
            if a.where in file
            for m in re.finditer(a.pattern, line)
        ]
        for m in NUMBER.finditer(line):
            if not any(s <= m.start() and m.end() <= e for s, e in allowed):
                findings.append(Finding(file, cell, m.group(0), line))
    return findings


def markdown_cells(path: Path) -> list[tuple[int, str]]:
    """(index, source) of each markdown cell of a notebook; a .md page is one cell."""
    if path.suffix == ".md":
        return [(0, path.read_text(encoding="utf-8"))]
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [
        (i, "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
        for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "markdown"
    ]


def scan(path: Path) -> list[Finding]:
    """Every unglued number in one chapter file."""
    return [
        finding
        for i, source in markdown_cells(path)
        for finding in unglued_numbers(source, path.name, i)
    ]


CHAPTER_FILES = sorted(
    p
    for p in [*CHAPTERS.glob("*.ipynb"), *CHAPTERS.glob("*.md")]
    if p.name[:2].isdigit()
)


@pytest.mark.parametrize("path", CHAPTER_FILES, ids=lambda p: p.name)
def test_prose_numbers_are_glued(path):
    findings = scan(path)
    assert not findings, (
        f"{len(findings)} unglued numbers in {path.name} (glue them from a cell, or "
        "add a textbook constant with its reason to ALLOWED):\n"
        + "\n".join(str(f) for f in findings)
    )


def test_every_allowed_pattern_is_used():
    text = "\n".join(src for path in CHAPTER_FILES for _, src in markdown_cells(path))
    unused = [a.pattern for a in ALLOWED if not re.search(a.pattern, text)]
    assert not unused, f"allow-list entries no chapter needs any more: {unused}"


# The scanner itself, on made-up text and a made-up notebook


@pytest.mark.parametrize(
    "text,expected",
    [
        ("The test accuracy is 99.2% after training.", ["99.2%"]),
        (
            "It took 12.5 s, then 164 s, and 3 minutes.",
            ["12.5 s", "164 s", "3 minutes"],
        ),
        ("A loss of 0.55 and a step of .5 and 1e-3.", ["0.55", ".5", "1e-3"]),
        ("Accuracy {glue:text}`acc:.2%` in {glue:text}`secs:.1f` s.", []),
        ("Set `learning_rate=5e-3` or `0.9`.", []),
        ("Grey is 0.299 R + 0.587 G + 0.114 B.", ["0.299", "0.587", "0.114"]),
        ("$\\sigma(x) = 0.5$ at zero.", ["0.5"]),
        ("## Reaching 99% in a minute", ["99%"]),
        (
            "See [the page](https://example.org/v1.2/x) and 28×28 images, 16 channels.",
            [],
        ),
        ("<!-- 12.5% hidden -->Nothing else.", []),
        ("Zeros: 0s and 1s look different.", []),
    ],
)
def test_scanner_finds_what_it_should(text, expected):
    assert [f.number for f in unglued_numbers(text)] == expected


def test_allowed_constants_are_scoped_to_their_files():
    text = "With sigmoids every factor is at most 0.25, so"
    assert unglued_numbers(text, "04_activation.ipynb") == []
    assert [f.number for f in unglued_numbers(text, "12_other.ipynb")] == ["0.25"]


def test_scanner_skips_code_but_reads_directives():
    text = "\n".join(
        [
            "```python",
            "accuracy = 0.97",
            "```",
            "```{exercise} Beat 98.5%",
            ":label: ch12-ex-x",
            "",
            "Reach 0.9 on validation.",
            "```",
            "~~~",
            "12.5 s",
            "~~~",
        ]
    )
    assert [f.number for f in unglued_numbers(text)] == ["98.5%", "0.9"]


def test_planted_number_in_a_notebook_fails(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title\nGlued: {glue:text}`acc:.2%`."),
        nbformat.v4.new_code_cell("x = 0.5  # code cells are not prose"),
        nbformat.v4.new_markdown_cell("The network reaches 98.7% on the test set."),
    ]
    path = tmp_path / "99_planted.ipynb"
    nbformat.write(nb, path)
    findings = scan(path)
    assert [(f.cell, f.number) for f in findings] == [(2, "98.7%")]
    with pytest.raises(AssertionError, match=r"1 unglued numbers in 99_planted"):
        test_prose_numbers_are_glued(path)
    # Gluing the number makes the same notebook pass.
    nb.cells[
        2
    ].source = "The network reaches {glue:text}`test_acc:.1%` on the test set."
    nbformat.write(nb, path)
    test_prose_numbers_are_glued(path)


def test_allowed_entries_have_reasons():
    for entry in ALLOWED:
        re.compile(entry.pattern)
        assert len(entry.reason) > 10, entry
