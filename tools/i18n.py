"""The book's translations (issue 14): update, check, find stale ones, build zh_CN.

Usage (from the repository root, with the project's virtual environment):

    python tools/i18n.py update         # after an English edit (what `make i18n` runs)
    python tools/i18n.py check [PO ...] # the translation rules, message by message
    python tools/i18n.py stale          # paragraphs added/removed since the .po files
    python tools/i18n.py counts         # messages per page, and how many are translated
    python tools/i18n.py build-zh       # the Chinese edition into _build/html/zh_CN

The catalogues live in locales/zh_CN/LC_MESSAGES/, one .po file per page, made by
Sphinx's gettext builder and `sphinx-intl`. `check` enforces the translators' rules:
every message translated (none fuzzy or empty), MyST markup kept, and one Chinese term
per English glossary term (read from glossary.md).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LANGUAGE = "zh_CN"
LOCALE_DIR = REPO / "locales" / LANGUAGE / "LC_MESSAGES"
ZH_TITLE = "动手理解卷积神经网络"
# The Chinese edition sits inside the English one, so that relative links between the
# two work on any static host.
ZH_HTML = REPO / "_build" / "html" / LANGUAGE
# Same strictness as the English build in the Makefile.
BUILD_FLAGS = ["--all", "-W", "-n", "--keep-going"]

# ---------- Terminology ----------

# Glossary names readers know in English: the English name may stand in the Chinese text
# in place of the glossary's Chinese term.
KEPT_IN_ENGLISH = {
    "relu",
    "sigmoid",
    "softmax",
    "logits",
    "pca",
    "principal component analysis",
    "dropout",
    "epoch",
}
# Chinese variants that are always wrong, whatever the English says (TRANSLATE.md).
FORBIDDEN = {
    "褶积": "卷积",
    "步幅": "步长",
    "补零": "填充",
    "接受域": "感受野",
    "权重共享": "权值共享",
    "参数共享": "权值共享",
    "激励函数": "激活函数",
    "全连通层": "全连接层",
    "稠密层": "全连接层",
    "过度拟合": "过拟合",
    "批量归一化": "批归一化",
    "批标准化": "批归一化",
    "学习速率": "学习率",
}
# Variants that are wrong where the English message has the term (elsewhere they are
# ordinary words: 周期 is also "period").
FORBIDDEN_FOR_TERM = {
    "pooling": {"汇聚": "池化", "汇合": "池化"},
    "epoch": {"周期": "轮次", "回合": "轮次"},
}
# A translator comment `# i18n-term-ok: Kernel` above an entry waives the term check for
# that term in that message (e.g. "kernel" meaning the Jupyter kernel, 内核).
WAIVER = re.compile(r"i18n-term-ok:\s*(.+)", re.IGNORECASE)
CJK = re.compile(r"[\u3400-\u9fff]")


def glossary_pairs(glossary: Path = REPO / "glossary.md") -> dict[str, str]:
    """English term -> Chinese term, from the ```{glossary}``` block of glossary.md."""
    text = glossary.read_text(encoding="utf-8")
    match = re.search(r"```\{glossary\}\n(.*?)\n```", text, re.DOTALL)
    if not match:
        raise ValueError(f"{glossary}: no ```{{glossary}} block found")
    pairs: dict[str, str] = {}
    english: list[str] = []
    chinese: list[str] = []

    def flush() -> None:
        # A run of English lines then a run of Chinese lines: paired in order, or all
        # English names mapped to the one Chinese term (PCA, Principal component ...).
        if english and chinese:
            if len(chinese) == 1:
                pairs.update({e: chinese[0] for e in english})
            elif len(english) == len(chinese):
                pairs.update(zip(english, chinese))
            else:
                raise ValueError(
                    f"{glossary}: cannot pair terms {english} with {chinese}: give "
                    "each English term line its own Chinese line, in the same order"
                )
        english.clear()
        chinese.clear()

    for line in match.group(1).splitlines():
        if not line.strip() or line.startswith((" ", "\t")):
            flush()
            continue
        term = line.strip()
        if CJK.search(term):
            chinese.append(term)
        else:
            if chinese:
                flush()
            english.append(term)
    flush()
    return pairs


def glossary_term_lines(glossary: Path = REPO / "glossary.md") -> set[str]:
    """Every term line (English and Chinese) of the glossary block."""
    pairs = glossary_pairs(glossary)
    return set(pairs) | set(pairs.values())


def term_pattern(term: str) -> re.Pattern[str]:
    """The English term as a whole word, any case, plural allowed, -ise or -ize."""
    words = [re.escape(w) for w in re.split(r"[\s-]+", term)]
    body = r"[\s-]+".join(words)
    body = re.sub(r"is(ation|er)", r"i[sz]\1", body)
    return re.compile(r"(?<!\w)" + body + r"(?:s|es)?(?!\w)", re.IGNORECASE)


# ---------- Markup ----------

ROLE = re.compile(r"\{([a-z][\w:-]*)\}(`+)(.+?)\2", re.DOTALL)
CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
MATH = re.compile(r"\$\$.+?\$\$|(?<!\\)\$[^$\n]+?(?<!\\)\$", re.DOTALL)
URL = re.compile(r"https?://[^\s)>\]`\"]+")
LINK_TARGET = re.compile(r"\]\(([^)\s]+)\)")
TERM_TARGET = re.compile(r"^(.*?)\s*<([^<>]+)>$", re.DOTALL)


def roles(text: str) -> list[tuple[str, str]]:
    """Every MyST role in `text` as (name, content)."""
    return [(m.group(1), m.group(3)) for m in ROLE.finditer(text)]


def term_target(content: str) -> str:
    """The glossary entry a {term} role points at (the part in <>, else all of it)."""
    m = TERM_TARGET.match(content.strip())
    return (m.group(2) if m else content).strip()


def without_markup(text: str) -> str:
    """`text` with roles (but a {term}'s display text), code, math and URLs removed."""

    def role(m: re.Match[str]) -> str:
        if m.group(1) == "term":
            shown = TERM_TARGET.match(m.group(3).strip())
            return shown.group(1) if shown else m.group(3)
        return " "

    text = ROLE.sub(role, text)
    text = CODE.sub(" ", text)
    text = MATH.sub(" ", text)
    text = URL.sub(" ", text)
    return LINK_TARGET.sub("]", text)


def _spans(text: str) -> dict[str, Counter[str]]:
    """The spans a translation must copy unchanged, by kind."""
    found = roles(text)
    rest = ROLE.sub(" ", text)
    code = [m.group(0) for m in CODE.finditer(rest)]
    rest = CODE.sub(" ", rest)
    return {
        "role": Counter(f"{{{n}}}`{c}`" for n, c in found if n != "term"),
        "glossary target of a {term} role": Counter(
            term_target(c).lower() for n, c in found if n == "term"
        ),
        "inline code": Counter(code),
        "math": Counter(m.group(0) for m in MATH.finditer(rest)),
        "URL": Counter(URL.findall(rest)),
        "link target": Counter(LINK_TARGET.findall(rest)),
    }


# ---------- Checking ----------


@dataclass(frozen=True)
class Problem:
    """One rule a message breaks."""

    file: str
    line: int
    msgid: str
    problem: str

    def __str__(self) -> str:
        short = self.msgid.replace("\n", " ")
        short = short[:60] + ("…" if len(short) > 60 else "")
        return f'{self.file}:{self.line}: "{short}": {self.problem}'


def message_problems(
    msgid: str,
    msgstr: str,
    pairs: dict[str, str],
    *,
    fuzzy: bool = False,
    waived: Iterable[str] = (),
    term_line: bool = False,
) -> list[str]:
    """What is wrong with one translation (empty list: nothing)."""
    if fuzzy:
        return ["marked fuzzy: check the translation, then remove the '#, fuzzy' flag"]
    if not msgstr.strip():
        return ["untranslated (empty msgstr)"]
    if term_line:
        # Sphinx re-registers a translated glossary term under its translation, and the
        # {term} roles, which name the English term, would no longer resolve.
        if msgstr != msgid:
            return ["glossary term line: copy it unchanged (msgstr = msgid)"]
        return []
    problems = []
    src, dst = _spans(msgid), _spans(msgstr)
    for kind in src:
        missing = src[kind] - dst[kind]
        extra = dst[kind] - src[kind]
        if missing:
            problems.append(f"{kind} changed or lost: {', '.join(sorted(missing))}")
        if extra:
            problems.append(f"{kind} not in the English: {', '.join(sorted(extra))}")
    for name, content in roles(msgstr):
        if name == "term" and CJK.search(content) and not TERM_TARGET.match(content):
            problems.append(
                f"{{term}}`{content}`: a translated display text needs the English "
                "target, e.g. {term}`池化 <Pooling>`"
            )
    if msgid.count("\n") != msgstr.count("\n"):
        problems.append(
            f"{msgid.count(chr(10))} line breaks in the English, "
            f"{msgstr.count(chr(10))} in the translation"
        )
    # Words of prose: LaTeX commands and sub/superscripts (a display-math message) are
    # not words.
    prose = re.sub(r"[_^]\{[^{}]*\}|\\[A-Za-z]+", " ", without_markup(msgid))
    english_words = re.findall(r"[A-Za-z]{3,}", prose)
    if len(english_words) >= 4 and not CJK.search(msgstr):
        problems.append("no Chinese in the translation: English left untranslated?")
    problems += term_problems(msgid, msgstr, pairs, waived)
    return problems


def term_problems(
    msgid: str, msgstr: str, pairs: dict[str, str], waived: Iterable[str] = ()
) -> list[str]:
    """Glossary terms of the English missing in the translation; forbidden variants."""
    waived = {w.strip().lower() for w in waived}
    english = without_markup(msgid)
    # A {term} role's display text joins the words around it: {term}`池化 <...>`层.
    translated = msgstr + "\n" + without_markup(msgstr)
    problems = []
    present = set()
    for term, chinese in pairs.items():
        if not term_pattern(term).search(english):
            continue
        present.add(term.lower())
        if term.lower() in waived or chinese in translated:
            continue
        if term.lower() in KEPT_IN_ENGLISH and (
            term_pattern(term).search(msgstr)
            or any(
                term_pattern(t).search(msgstr)
                for t, c in pairs.items()
                if c == chinese and t.lower() in KEPT_IN_ENGLISH
            )
        ):
            continue
        problems.append(f"'{term}' needs the glossary term {chinese}")
    for wrong, right in FORBIDDEN.items():
        if wrong in msgstr:
            problems.append(f"{wrong} is not the book's term: write {right}")
    for term, variants in FORBIDDEN_FOR_TERM.items():
        if term in present:
            for wrong, right in variants.items():
                if wrong in msgstr:
                    problems.append(f"{wrong} for '{term}': write {right}")
    if "零填充" in msgstr and not re.search(r"(?<!零)填充", msgstr):
        problems.append("零填充 alone: write 填充 (or 填充（零填充）)")
    return problems


def read_catalogue(path: Path):
    """The babel Catalog of a .po file, with a clear error when it does not parse."""
    from babel.messages.pofile import PoFileError, read_po

    try:
        with path.open("rb") as f:
            return read_po(f, abort_invalid=True)
    except (OSError, PoFileError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a valid .po file: {exc}") from exc


def check_catalogue(
    path: Path, pairs: dict[str, str] | None = None, glossary: Path | None = None
) -> list[Problem]:
    """Every rule every message of one .po file breaks."""
    glossary = glossary or REPO / "glossary.md"
    pairs = glossary_pairs(glossary) if pairs is None else pairs
    term_lines = glossary_term_lines(glossary) if path.stem == "glossary" else set()
    try:
        name = str(path.resolve().relative_to(REPO))
    except ValueError:
        name = str(path)
    try:
        catalogue = read_catalogue(path)
    except ValueError as exc:
        return [Problem(name, 0, "", str(exc))]
    problems = []
    for message in catalogue:
        if not message.id:
            continue  # the header entry
        msgid = message.id if isinstance(message.id, str) else message.id[0]
        msgstr = message.string if isinstance(message.string, str) else ""
        waived = [
            t
            for c in message.user_comments
            if (m := WAIVER.search(c))
            for t in m.group(1).split(",")
        ]
        for problem in message_problems(
            msgid,
            msgstr or "",
            pairs,
            fuzzy=message.fuzzy,
            waived=waived,
            term_line=msgid in term_lines,
        ):
            problems.append(Problem(name, message.lineno, msgid, problem))
    return problems


def all_catalogues(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """Every .po file of the Chinese edition, sorted."""
    return sorted(locale_dir.rglob("*.po"))


def message_counts(paths: Iterable[Path]) -> dict[str, tuple[int, int]]:
    """Per .po file: (messages, translated messages)."""
    counts = {}
    for path in paths:
        try:
            catalogue = read_catalogue(path)
        except ValueError:
            continue  # check_catalogue reports it
        msgs = [m for m in catalogue if m.id]
        done = sum(1 for m in msgs if m.string and not m.fuzzy)
        counts[str(path)] = (len(msgs), done)
    return counts


# ---------- Gettext builds, staleness ----------


def run(cmd: list[str], cwd: Path = REPO) -> None:
    """Run a command, echoing it; raise with its output when it fails."""
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def venv_bin(name: str) -> str:
    """A console script installed beside this Python (the project's .venv)."""
    script = Path(sys.executable).parent / name
    return str(script) if script.exists() else name


def gettext_build(out: Path, source: Path = REPO) -> Path:
    """Build the English message catalogues (.pot) into `out`; returns their folder."""
    run(
        [
            venv_bin("jupyter-book"),
            "build",
            str(source),
            "--path-output",
            str(out),
            "--builder",
            "custom",
            "--custom-builder",
            "gettext",
            "--quiet",
        ],
        cwd=source,
    )
    return out / "_build" / "gettext"


def catalogue_ids(path: Path) -> list[str]:
    """The msgids of a .po or .pot file, in order, without the header entry."""
    return [m.id for m in read_catalogue(path) if m.id]


@dataclass
class Staleness:
    """How one page's catalogue differs from the current English page."""

    page: str
    added: list[str]
    removed: list[str]

    def __str__(self) -> str:
        lines = [f"{self.page}: {len(self.added)} added, {len(self.removed)} removed"]
        lines += [f"  + {_excerpt(m, self.removed)}" for m in self.added]
        lines += [f"  - {_excerpt(m, self.added)}" for m in self.removed]
        return "\n".join(lines)


def _excerpt(message: str, others: list[str], width: int = 100) -> str:
    """The start of `message`, or the edited part when an edit of it is in `others`."""
    import difflib

    close = difflib.get_close_matches(message, others, n=1, cutoff=0.6)
    start = 0
    if close:
        match = difflib.SequenceMatcher(None, message, close[0]).get_matching_blocks()
        start = max(0, match[0].size - width // 3) if match[0].a == 0 else 0
    text = ("…" if start else "") + message[start : start + width]
    return repr(text + ("…" if len(message) > start + width else ""))


def stale_pages(pot_dir: Path, locale_dir: Path = LOCALE_DIR) -> list[Staleness]:
    """Pages whose .po msgids differ from the freshly built .pot files."""
    pots = {
        p.relative_to(pot_dir).with_suffix("").as_posix()
        for p in pot_dir.rglob("*.pot")
    }
    pos = {
        p.relative_to(locale_dir).with_suffix("").as_posix()
        for p in locale_dir.rglob("*.po")
    }
    report = []
    for page in sorted(pots | pos):
        new = catalogue_ids(pot_dir / f"{page}.pot") if page in pots else []
        old = catalogue_ids(locale_dir / f"{page}.po") if page in pos else []
        added = [m for m in new if m not in set(old)]
        removed = [m for m in old if m not in set(new)]
        if added or removed:
            report.append(Staleness(page, added, removed))
    return report


def update(source: Path = REPO) -> None:
    """Regenerate the .pot files and merge them into locales/ (new msgids empty)."""
    with tempfile.TemporaryDirectory(prefix="book-gettext-") as tmp:
        pot_dir = gettext_build(Path(tmp), source)
        run(
            [
                venv_bin("sphinx-intl"),
                "update",
                "-p",
                str(pot_dir),
                "-l",
                LANGUAGE,
                "-d",
                str(source / "locales"),
                "-w",
                "0",
            ],
            cwd=source,
        )


# ---------- The Chinese build ----------


def zh_config(source_config: Path, extension_dirs: Path) -> dict:
    """The Chinese edition's _config.yml: the English one with the language changed."""
    import yaml

    config = yaml.safe_load(source_config.read_text(encoding="utf-8"))
    config["title"] = ZH_TITLE
    sphinx = config.setdefault("sphinx", {})
    # Local extension folders are relative to the config file: make them absolute, since
    # the generated config lives under _build/.
    local = sphinx.get("local_extensions") or {}
    sphinx["local_extensions"] = {
        name: str((extension_dirs / path).resolve()) for name, path in local.items()
    }
    settings = sphinx.setdefault("config", {})
    settings["language"] = LANGUAGE
    # Sphinx segments Chinese for the search index with jieba.
    settings["html_search_language"] = "zh"
    return config


def build_zh(source: Path = REPO, output: Path | None = None) -> Path:
    """Build the Chinese edition with jupyter-book into `output` (default ZH_HTML)."""
    import yaml

    output = output or source / "_build" / "html" / LANGUAGE
    work = source / "_build" / LANGUAGE
    work.mkdir(parents=True, exist_ok=True)
    config_path = work / "_config.yml"
    config = zh_config(source / "_config.yml", source)
    config_path.write_text(
        "# Generated by tools/i18n.py build-zh from _config.yml: do not edit.\n"
        + yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    run(
        [
            venv_bin("jupyter-book"),
            "build",
            *BUILD_FLAGS,
            "--config",
            str(config_path),
            "--path-output",
            str(work),
            str(source),
        ],
        cwd=source,
    )
    built = work / "_build" / "html"
    if output.exists():
        shutil.rmtree(output)
    shutil.copytree(built, output)
    print(f"Chinese edition: {output}")
    return output


# ---------- Command line ----------


def _cmd_check(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.po] or all_catalogues()
    if not paths:
        print(f"no .po files found under {LOCALE_DIR}")
        return 1
    pairs = glossary_pairs()
    problems = []
    for path in paths:
        problems += check_catalogue(path, pairs)
    for problem in problems:
        print(problem)
    counts = message_counts(paths)
    total = sum(n for n, _ in counts.values())
    done = sum(d for _, d in counts.values())
    files = len(paths)
    print(
        f"{files} files, {total} messages, {done} translated, {len(problems)} problems"
    )
    return 1 if problems else 0


def _cmd_stale(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="book-gettext-") as tmp:
        report = stale_pages(gettext_build(Path(tmp)))
    for page in report:
        print(page)
    if report:
        print(f"{len(report)} pages changed since the catalogues: run `make i18n`")
        return 1
    print("every catalogue matches the English sources")
    return 0


def _cmd_update(args: argparse.Namespace) -> int:
    update()
    return 0


def _cmd_build_zh(args: argparse.Namespace) -> int:
    build_zh(output=Path(args.output) if args.output else None)
    return 0


def _cmd_counts(args: argparse.Namespace) -> int:
    for path, (n, done) in message_counts(all_catalogues()).items():
        page = Path(path).relative_to(LOCALE_DIR).with_suffix("").as_posix()
        print(f"{page}: {n} messages, {done} translated")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line: update, check, stale, counts, build-zh."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("update", help="regenerate the catalogues after an English edit")
    check = sub.add_parser("check", help="check translations against the rules")
    check.add_argument("po", nargs="*", help=".po files (default: all)")
    sub.add_parser("stale", help="list paragraphs changed since the catalogues")
    sub.add_parser("counts", help="messages per page")
    build = sub.add_parser("build-zh", help="build the Chinese edition")
    build.add_argument("--output", help=f"HTML folder (default {ZH_HTML})")
    args = parser.parse_args(argv)
    commands = {
        "update": _cmd_update,
        "check": _cmd_check,
        "stale": _cmd_stale,
        "counts": _cmd_counts,
        "build-zh": _cmd_build_zh,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
