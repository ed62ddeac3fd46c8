"""The Chinese edition (issue 14): catalogues complete, current, faithful; the build.

The catalogues (locales/zh_CN/LC_MESSAGES/*.po) are checked with the rules of
tools/i18n.py, and the checker itself is shown to fail on planted mistakes. The tests on
the built HTML use _build/html (English) and _build/html/zh_CN (Chinese, `make book`);
without a Chinese build they skip, unless $CI is set, where they fail.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po, write_po

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import i18n  # noqa: E402  (tools/i18n.py)
from browser_support import book_html_dir, book_pages  # noqa: E402

CATALOGUES = i18n.all_catalogues()
PAIRS = i18n.glossary_pairs()
EN_HTML = book_html_dir()
ZH_HTML = EN_HTML / i18n.LANGUAGE
GLUE = re.compile(r"\{glue(?::(\w+))?\}`([^`]+)`")


def page_of(po: Path) -> str:
    """The docname of a catalogue: chapters/05_pooling for chapters/05_pooling.po."""
    return po.relative_to(i18n.LOCALE_DIR).with_suffix("").as_posix()


def messages(po: Path) -> list[tuple[str, str]]:
    """(msgid, msgstr) of every message of a catalogue."""
    with po.open("rb") as f:
        return [(m.id, m.string or "") for m in read_po(f) if m.id]


def rewrite(po: Path, out: Path, change) -> None:
    """Copy a catalogue to `out`, applying change(message) to every message."""
    with po.open("rb") as f:
        catalogue = read_po(f)
    for m in catalogue:
        if m.id:
            change(m)
    with out.open("wb") as f:
        write_po(f, catalogue, width=0)


def glue_outputs(notebook: Path) -> dict[str, dict]:
    """The glued values of a notebook's stored outputs: key -> mime bundle."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    found = {}
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                found[name] = {
                    k.removeprefix("application/papermill.record/"): v
                    for k, v in out.get("data", {}).items()
                }
    return found


EXERCISE = re.compile(r"^```\{exercise(?:-start)?\}[ \t]+(\S.*?)[ \t]*$", re.MULTILINE)


def exercise_titles() -> dict[str, list[str]]:
    """Page -> the titles of its exercises (```{exercise} Title```), in order."""
    found = {}
    for source in sorted((REPO / "chapters").glob("[0-9][0-9]_*.*")):
        if source.suffix == ".ipynb":
            cells = json.loads(source.read_text(encoding="utf-8"))["cells"]
            text = "\n".join(
                "".join(c["source"]) for c in cells if c["cell_type"] == "markdown"
            )
        elif source.suffix == ".md":
            text = source.read_text(encoding="utf-8")
        else:
            continue
        titles = EXERCISE.findall(text)
        if titles:
            found[source.relative_to(REPO).with_suffix("").as_posix()] = titles
    return found


EXERCISE_TITLES = exercise_titles()


# ---------- The catalogues ----------


def test_there_is_a_catalogue_per_page():
    pages = {page_of(p) for p in CATALOGUES}
    sources = {
        p.relative_to(REPO).with_suffix("").as_posix()
        for p in [
            REPO / "intro.md",
            REPO / "glossary.md",
            REPO / "references.md",
            *sorted((REPO / "chapters").glob("[0-9][0-9]_*.*")),
        ]
        if p.suffix in (".md", ".ipynb")
    }
    assert pages == sources


@pytest.mark.parametrize("po", CATALOGUES, ids=page_of)
def test_catalogue_is_complete_and_follows_the_rules(po):
    """Every message translated, none fuzzy; markup kept; glossary terms used."""
    problems = i18n.check_catalogue(po, PAIRS)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(map(str, problems))


@pytest.mark.parametrize(
    "po", [p for p in CATALOGUES if p.stem[:2].isdigit()], ids=page_of
)
def test_glue_roles_are_kept_and_resolve(po):
    """Each glue role of a msgid is in its msgstr and names a key the notebook glues."""
    notebook = REPO / (page_of(po) + ".ipynb")
    if not notebook.exists():
        pytest.skip(f"{page_of(po)} is not a notebook")
    keys = set(glue_outputs(notebook))
    for msgid, msgstr in messages(po):
        wanted = sorted(GLUE.findall(msgid))
        for _, content in wanted:
            key = content.rsplit("::", 1)[-1].split(":")[0]
            assert key in keys, f"{msgid[:60]!r}: glue key {key!r} not in {notebook}"
        if msgstr:
            assert sorted(GLUE.findall(msgstr)) == wanted, (
                f"{po.name}: {msgid[:60]!r}: glue roles {wanted} became "
                f"{sorted(GLUE.findall(msgstr))}"
            )


def test_exercise_titles_are_messages():
    """sphinx-exercise titles are translated like paragraphs (_ext/book_i18n.py)."""
    assert sum(map(len, EXERCISE_TITLES.values())) >= 20
    for page, titles in EXERCISE_TITLES.items():
        catalogue = dict(messages(i18n.LOCALE_DIR / f"{page}.po"))
        for title in titles:
            assert title in catalogue, f"{page}: exercise title {title!r} not a msgid"
            assert i18n.CJK.search(catalogue[title]), f"{page}: {title!r} not Chinese"


# ---------- The checker fails on planted mistakes ----------


def test_checker_finds_a_planted_untranslated_paragraph(tmp_path):
    po = REPO / "locales/zh_CN/LC_MESSAGES/chapters/05_pooling.po"
    victim = next(i for i, _ in messages(po) if len(i) > 80 and not i.startswith("{"))

    def plant(m):
        m.string = "" if m.id == victim else (m.string or "已译。")

    bad = tmp_path / po.name
    rewrite(po, bad, plant)
    problems = i18n.check_catalogue(bad, PAIRS)
    hits = [p for p in problems if p.msgid == victim]
    assert [p.problem for p in hits] == ["untranslated (empty msgstr)"]
    assert str(hits[0]).startswith(f"{bad}:")
    assert victim[:60] in str(hits[0])


def test_checker_finds_a_planted_fuzzy_message(tmp_path):
    po = REPO / "locales/zh_CN/LC_MESSAGES/intro.po"
    victim = messages(po)[0][0]

    def plant(m):
        if m.id == victim:
            m.string = m.string or "入门"
            m.flags.add("fuzzy")

    bad = tmp_path / po.name
    rewrite(po, bad, plant)
    hits = [p for p in i18n.check_catalogue(bad, PAIRS) if p.msgid == victim]
    assert len(hits) == 1 and "fuzzy" in hits[0].problem


def test_checker_finds_a_planted_wrong_term(tmp_path):
    """权重共享 for weight sharing fails twice: wrong variant, glossary term missing."""
    po, victim = next(
        (p, i)
        for p in CATALOGUES
        for i, _ in messages(p)
        if re.search(r"weight sharing", i, re.I) and "`" not in i
    )

    def plant(m):
        if m.id == victim:
            m.string = "卷积层的权重共享。"

    bad = tmp_path / po.name
    rewrite(po, bad, plant)
    hits = {p.problem for p in i18n.check_catalogue(bad, PAIRS) if p.msgid == victim}
    assert "'Weight sharing' needs the glossary term 权值共享" in hits
    assert "权重共享 is not the book's term: write 权值共享" in hits


@pytest.mark.parametrize(
    "msgid, msgstr, expected",
    [
        ("Padding keeps the size.", "填充保持尺寸不变。", []),
        (
            "Accuracy is {glue:text}`acc:.2%`.",
            "准确率为 {glue:text}`acc:.1%`。",
            [
                "role changed or lost: {glue:text}`acc:.2%`",
                "role not in the English: {glue:text}`acc:.1%`",
            ],
        ),
        (
            "See {cite}`lecun1998mnist` and {ref}`ch05-pool`.",
            "见 {cite}`lecun1998mnist`。",
            ["role changed or lost: {ref}`ch05-pool`"],
        ),
        (
            "A {term}`pooling <Pooling>` layer.",
            "一个{term}`池化 <Pooling>`层。",
            [],
        ),
        (
            "A {term}`pooling <Pooling>` layer.",
            "一个{term}`池化`层。",
            [
                "glossary target of a {term} role changed or lost: pooling",
                "glossary target of a {term} role not in the English: 池化",
                "{term}`池化`: a translated display text needs the English target, "
                "e.g. {term}`池化 <Pooling>`",
            ],
        ),
        (
            "Call `fit(model)` on $x_i$ ([docs](https://example.org/a)).",
            "对 $x_j$ 调用 `fit()`（[文档](https://example.org/b)）。",
            [
                "inline code changed or lost: `fit(model)`",
                "inline code not in the English: `fit()`",
                "math changed or lost: $x_i$",
                "math not in the English: $x_j$",
                "URL changed or lost: https://example.org/a",
                "URL not in the English: https://example.org/b",
                "link target changed or lost: https://example.org/a",
                "link target not in the English: https://example.org/b",
            ],
        ),
        ("one\ntwo", "一二", ["1 line breaks in the English, 0 in the translation"]),
        (
            "The kernel slides over the image.",
            "The kernel slides over the image.",
            [
                "no Chinese in the translation: English left untranslated?",
                "'Kernel' needs the glossary term 卷积核",
            ],
        ),
        (
            "Stride two.",
            "步幅为二。",
            [
                "'Stride' needs the glossary term 步长",
                "步幅 is not the book's term: write 步长",
            ],
        ),
        ("Three epochs.", "三个 epoch。", []),
        (
            "Three epochs.",
            "三个周期。",
            ["'Epoch' needs the glossary term 轮次", "周期 for 'epoch': write 轮次"],
        ),
        ("A period of the signal.", "信号的周期。", []),
        ("ReLU and softmax.", "ReLU 与归一化指数函数。", []),
        ("Zero-padding.", "零填充。", ["零填充 alone: write 填充 (or 填充（零填充）)"]),
        ("Zero-padding.", "填充（零填充）。", []),
        ("Max-pooling layers.", "最大池化层。", []),
        (
            "Normalization.",
            "标准化。",
            ["'Normalisation' needs the glossary term 归一化"],
        ),
    ],
)
def test_message_rules(msgid, msgstr, expected):
    assert i18n.message_problems(msgid, msgstr, PAIRS) == expected


def test_term_waiver_comment():
    """`# i18n-term-ok: Kernel`: "kernel" meaning the Jupyter kernel may be 内核."""
    msgid, msgstr = "There is no kernel behind the page.", "页面背后没有内核。"
    assert i18n.message_problems(msgid, msgstr, PAIRS)
    assert not i18n.message_problems(msgid, msgstr, PAIRS, waived=["Kernel"])


def test_glossary_pairs():
    pairs = PAIRS
    assert pairs["Filter"] == "滤波器" and pairs["Kernel"] == "卷积核"
    assert pairs["PCA"] == pairs["Principal component analysis"] == "主成分分析"
    assert pairs["Activation function"] == "激活函数"
    assert pairs["Activation layer"] == "激励层"
    assert pairs["Weight sharing"] == "权值共享"
    block = re.search(
        r"```\{glossary\}\n(.*?)\n```",
        (REPO / "glossary.md").read_text(encoding="utf-8"),
        re.DOTALL,
    ).group(1)
    english = [
        line
        for line in block.splitlines()
        if line.strip() and not line[0].isspace() and line.isascii()
    ]
    assert sorted(pairs) == sorted(english)
    assert all(i18n.CJK.search(c) for c in pairs.values())


def test_glossary_term_lines_stay_unchanged():
    """A translated term line would re-register the term and break {term} roles."""
    problems = i18n.message_problems("Pooling", "池化", PAIRS, term_line=True)
    assert problems == ["glossary term line: copy it unchanged (msgstr = msgid)"]
    assert not i18n.message_problems("Pooling", "Pooling", PAIRS, term_line=True)


# ---------- Staleness ----------


@pytest.fixture(scope="module")
def fresh_pots(tmp_path_factory):
    """The .pot files of the current English sources (a gettext build, ~10 s)."""
    if shutil.which(i18n.venv_bin("jupyter-book")) is None:
        pytest.skip("jupyter-book is not installed")
    return i18n.gettext_build(tmp_path_factory.mktemp("gettext"))


def test_catalogues_match_the_english_sources(fresh_pots):
    """An English edit without `make i18n` and its translation fails here."""
    stale = i18n.stale_pages(fresh_pots)
    assert not stale, (
        "catalogues out of date (run `make i18n`, then translate the new messages):\n"
        + "\n".join(map(str, stale))
    )


def test_gettext_extracts_exercise_titles(fresh_pots):
    """The gettext build itself has the titles (not only the catalogues)."""
    for page, titles in EXERCISE_TITLES.items():
        ids = set(i18n.catalogue_ids(fresh_pots / f"{page}.pot"))
        assert set(titles) <= ids, f"{page}: missing {sorted(set(titles) - ids)}"


def test_staleness_is_detected(fresh_pots, tmp_path):
    """A catalogue missing one paragraph, with one paragraph too many, is reported."""
    locale = tmp_path / "LC_MESSAGES"
    shutil.copytree(i18n.LOCALE_DIR, locale, ignore=shutil.ignore_patterns("*.mo"))
    po = locale / "chapters" / "05_pooling.po"
    with po.open("rb") as f:
        catalogue = read_po(f)
    dropped = [m.id for m in catalogue if m.id][3]
    del catalogue[dropped]
    catalogue.add("An English paragraph that no longer exists.", "已删除的段落。")
    with po.open("wb") as f:
        write_po(f, catalogue, width=0)
    stale = {s.page: s for s in i18n.stale_pages(fresh_pots, locale)}
    assert stale["chapters/05_pooling"].added == [dropped]
    assert stale["chapters/05_pooling"].removed == [
        "An English paragraph that no longer exists."
    ]


# ---------- The built editions ----------


def _need_zh_build() -> None:
    if not (ZH_HTML / "intro.html").is_file():
        reason = f"no Chinese build at {ZH_HTML} (run `make book`)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def _text(page: Path) -> str:
    """The visible text of a built page, roughly: tags dropped, entities decoded."""
    body = page.read_text(encoding="utf-8")
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", body))


def test_lang_attribute_and_title():
    _need_zh_build()
    zh_pages = book_pages(ZH_HTML)
    assert "intro.html" in zh_pages and "chapters/05_pooling.html" in zh_pages
    for page in zh_pages:
        head = (ZH_HTML / page).read_text(encoding="utf-8")[:3000]
        assert '<html lang="zh-CN"' in head, page
        assert re.search(r"<title>[^<]*动手理解卷积神经网络</title>", head), page
    for page in ["intro.html", "chapters/05_pooling.html"]:
        head = (EN_HTML / page).read_text(encoding="utf-8")[:3000]
        assert '<html lang="en"' in head, page


def test_part_captions_are_translated():
    _need_zh_build()
    captions = dict(messages(i18n.LOCALE_DIR / "intro.po")[:5])
    shown = re.findall(
        r'caption-text">([^<]*)<',
        (ZH_HTML / "chapters/05_pooling.html").read_text(encoding="utf-8"),
    )
    assert shown == [html.escape(captions[c] or c, quote=False) for c in captions]


def _language_link(page: Path) -> str:
    found = re.search(
        r'class="book-language-link"[^>]*><a href="([^"]+)"',
        page.read_text(encoding="utf-8"),
    )
    assert found, f"{page}: no link to the other edition"
    return found.group(1)


def test_every_page_links_to_the_other_edition():
    _need_zh_build()
    en_pages = [p for p in book_pages(EN_HTML) if not p.startswith("zh_CN/")]
    zh_pages = book_pages(ZH_HTML)
    assert sorted(en_pages) == sorted(zh_pages)
    # search.html and genindex.html are made from templates without a page body: they
    # only carry the <link rel="alternate"> in their head.
    for page in en_pages:
        for root, other in [(EN_HTML, ZH_HTML), (ZH_HTML, EN_HTML)]:
            source = root / page
            if page in ("search.html", "genindex.html"):
                assert 'rel="alternate"' in source.read_text(encoding="utf-8")
                continue
            href = _language_link(source)
            assert not href.startswith(("/", "http")), href  # relative: any host
            assert (source.parent / href).resolve() == (other / page).resolve()


def test_chinese_search_finds_the_convolution_chapter():
    """Sphinx's zh search index (segmented with jieba): 卷积 -> chapter 1."""
    _need_zh_build()
    js = (ZH_HTML / "searchindex.js").read_text(encoding="utf-8")
    index = json.loads(js[js.index("(") + 1 : js.rindex(")")])
    docs = index["docnames"]

    def hits(table: str, word: str) -> set[str]:
        found = index[table].get(word, [])
        return {docs[i] for i in ([found] if isinstance(found, int) else found)}

    found = hits("terms", "卷积") | hits("titleterms", "卷积")
    assert "chapters/01_convolution" in found, sorted(found)
    assert "chapters/05_pooling" in hits("terms", "池化") | hits("titleterms", "池化")


@pytest.mark.parametrize(
    "po", [p for p in CATALOGUES if p.stem[:2].isdigit()], ids=page_of
)
def test_glued_numbers_are_in_the_chinese_pages(po):
    """Every glued number of a translated paragraph shows in the Chinese HTML."""
    _need_zh_build()
    from myst_nb.core.variables import format_plain_text

    notebook = REPO / (page_of(po) + ".ipynb")
    if not notebook.exists():
        pytest.skip(f"{page_of(po)} is not a notebook")
    data = glue_outputs(notebook)
    text = _text(ZH_HTML / (page_of(po) + ".html"))
    missing = []
    for _, msgstr in messages(po):
        for kind, content in GLUE.findall(msgstr):
            key, _, fmt = content.rsplit("::", 1)[-1].partition(":")
            if kind == "text":
                shown = format_plain_text(data[key]["text/plain"], fmt or "s")
            elif kind == "md":
                shown = re.sub(r"[*_`]", "", data[key]["text/markdown"])
            else:
                continue
            if shown not in text:
                missing.append(f"{content} -> {shown!r}")
    assert not missing, f"{page_of(po)}: glued values missing: {missing}"


@pytest.mark.parametrize("po", CATALOGUES, ids=page_of)
def test_translated_paragraphs_are_in_the_chinese_pages(po):
    """The Chinese build used the catalogue: a translated heading is on its page."""
    _need_zh_build()
    _, title = messages(po)[0]
    if not title:
        pytest.skip(f"{po.name}: title not translated yet")
    page = ZH_HTML / (page_of(po) + ".html")
    assert html.escape(title, quote=False) in page.read_text(encoding="utf-8")


def _admonition_titles(page: Path) -> list[str]:
    """The visible text of every admonition title of a built page."""
    found = re.findall(
        r'<p class="admonition-title">(.*?)</p>', page.read_text(encoding="utf-8")
    )
    return [html.unescape(re.sub(r"<[^>]+>", "", t)) for t in found]


def test_exercise_titles_are_chinese():
    """练习 N（标题）, 练习 N（标题）的解答 on every zh page; no English title left."""
    _need_zh_build()
    first = EXERCISE_TITLES["chapters/10_write_it_yourself"][0]
    assert first == "A third conv block"
    chinese = dict(messages(i18n.LOCALE_DIR / "chapters/10_write_it_yourself.po"))[
        first
    ]
    shown = _admonition_titles(ZH_HTML / "chapters/10_write_it_yourself.html")
    assert re.fullmatch(rf"练习 [\d.]+ ?（{re.escape(chinese)}）", shown[0]), shown[0]
    assert re.fullmatch(rf"练习 [\d.]+ ?（{re.escape(chinese)}）的解答", shown[1])
    english = {t for titles in EXERCISE_TITLES.values() for t in titles}
    for page, titles in EXERCISE_TITLES.items():
        catalogue = dict(messages(i18n.LOCALE_DIR / f"{page}.po"))
        zh = _admonition_titles(ZH_HTML / f"{page}.html")
        en = _admonition_titles(EN_HTML / f"{page}.html")
        for title in titles:
            assert any(f"（{catalogue[title]}）" in t for t in zh), (page, title)
            assert any(t.endswith(f" ({title})") for t in en), (page, title)
        for text in zh:
            assert "Exercise" not in text and "Solution" not in text, (page, text)
            assert not any(f"({t})" in text for t in english), (page, text)
        solutions = [t for t in zh if t.endswith("的解答")]
        assert len(solutions) == len(titles), (page, zh)
