"""Sphinx extension for the book's two editions (English, and Chinese under zh_CN/).

1. Glue roles in translations. Sphinx parses each translated paragraph (msgstr) as a
   separate little document, which has no access to the notebook's glue data, so a
   `{glue:text}` role copied verbatim into a msgstr printed nothing and warned "No key
   ... found in glue data". Here a glue role in such a paragraph reads the glue data of
   the page being translated, so translators copy glue roles unchanged.
2. Part captions of the table of contents, which sphinx-external-toc inserts after
   Sphinx's translation step, are translated from the root page's catalogue (intro.po).
3. A link to the same page in the other edition at the top of every page (relative, so
   any static host works), and `<link rel="alternate" hreflang>` in every page's head.
4. Exercise titles. sphinx-exercise puts the title of ```{exercise} A title``` in a node
   without source, which gettext skips, and its title post-transform would drop such a
   node anyway; the title is wrapped in a translatable inline (Sphinx's own placeholder,
   unwrapped after translation), so it is a message of the page's catalogue like any
   paragraph. Solutions repeat the title from a copy of the exercise taken before
   translation: the copy is refreshed. In Chinese the labels read 练习 3（标题）and
   练习 3（标题）的解答 (sphinx-exercise's own catalogue gives 练习 and 解答).
"""

from __future__ import annotations

import html
import warnings
from os import path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.locale import init as init_locale
from sphinx.transforms import SphinxTransform
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.i18n import docname_to_domain
from sphinx_exercise.directive import ExerciseDirective, ExerciseStartDirective
from sphinx_exercise.nodes import (
    exercise_enumerable_node,
    exercise_subtitle,
    is_exercise_node,
    solution_node,
)

# The element renderer of the notebook being read. myst-nb keeps it on the document only
# while it parses the notebook; Sphinx's translation transform runs just after, on the
# same page, which is when the glue roles of translated paragraphs need it.
_CURRENT: dict[str, Any] = {}


def _install_glue_fallback() -> None:
    """Make glue roles in translated paragraphs read the page's glue data."""
    import myst_nb.ext.glue.directives as glue_directives
    import myst_nb.ext.glue.roles as glue_roles
    import myst_nb.ext.glue.utils as glue_utils
    import myst_nb.sphinx_ as nb_sphinx

    if getattr(glue_utils, "_book_i18n_patched", False):
        return
    load_renderer = nb_sphinx.load_renderer
    retrieve = glue_utils.retrieve_glue_data

    def recording_load_renderer(name: str):
        cls = load_renderer(name)

        def create(*args: Any, **kwargs: Any):
            renderer = cls(*args, **kwargs)
            _CURRENT["renderer"] = renderer
            return renderer

        return create

    def retrieve_glue_data(document, key: str):
        if "nb_renderer" not in document:
            renderer = _CURRENT.get("renderer")
            env = getattr(document.settings, "env", None)
            main = getattr(getattr(renderer, "renderer", None), "document", None)
            # Only the page being read: its translated paragraphs share its settings.
            if (
                main is not None
                and env is not None
                and main.settings.env.docname == env.docname
            ):
                main["nb_renderer"] = renderer
                try:
                    return retrieve(main, key)
                finally:
                    del main["nb_renderer"]
        return retrieve(document, key)

    nb_sphinx.load_renderer = recording_load_renderer
    glue_roles.retrieve_glue_data = retrieve_glue_data
    glue_directives.retrieve_glue_data = retrieve_glue_data
    glue_utils._book_i18n_patched = True


# Top right of the article, above the title.
LINK_STYLE = "float: right; margin: 0 0 0.5rem 1rem; font-size: 0.9rem;"


class TranslateTocCaptions(SphinxTransform):
    """Translate the part captions of the table of contents.

    sphinx-external-toc inserts the toctrees from _toc.yml after Sphinx's translation
    transform has run, so their captions (which the gettext builder does extract, into
    intro.po) would stay English; this applies the page's catalogue to them.
    """

    default_priority = 150  # after InsertToctrees (100), before doctree-read (880)

    def apply(self, **kwargs: Any) -> None:
        """Replace each toctree caption by its msgstr, when there is one."""
        if not self.config.language or self.config.language == "en":
            return
        domain = docname_to_domain(self.env.docname, self.config.gettext_compact)
        dirs = [path.join(self.env.srcdir, d) for d in self.config.locale_dirs]
        catalogue, found = init_locale(dirs, self.config.language, domain)
        if not found:
            return
        for node in self.document.findall(addnodes.toctree):
            for message in node.extract_original_messages():
                translated = catalogue.gettext(message)
                if translated and translated != message:
                    node.apply_translated_message(message, translated)


def _other_edition(app: Sphinx) -> tuple[str, str, str]:
    """(root of the other edition relative to this one, its label, its language tag)."""
    if (app.config.language or "en").startswith("zh"):
        return "../", "English", "en"
    return "zh_CN/", "中文版", "zh-CN"


def add_language_link(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
    """Put a link to the same page in the other edition on the page."""
    root, label, lang = _other_edition(app)
    up = "../" * pagename.count("/")
    href = html.escape(f"{up}{root}{pagename}.html")
    context["metatags"] = (
        context.get("metatags", "")
        + f'\n<link rel="alternate" hreflang="{lang}" href="{href}">'
    )
    if "body" in context:
        context["body"] = (
            f'<p class="book-language-link" style="{LINK_STYLE}">'
            f'<a href="{href}" hreflang="{lang}" lang="{lang}">{label}</a></p>\n'
            + context["body"]
        )


class _TranslatableTitle:
    """Make the title argument of an exercise directive a gettext message."""

    def run(self) -> list[nodes.Node]:
        """sphinx-exercise's nodes, the title wrapped in a translatable inline."""
        result = super().run()  # type: ignore[misc]
        if not self.arguments:  # type: ignore[attr-defined]
            return result
        source, line = self.get_source_info()  # type: ignore[attr-defined]
        for node in result:
            for subtitle in node.findall(exercise_subtitle):
                # The msgid is the title as written (markup included); `source` is what
                # makes Sphinx extract and translate a node at all.
                inline = nodes.inline(
                    self.arguments[0],  # type: ignore[attr-defined]
                    "",
                    *subtitle.children,
                    translatable=True,
                )
                inline.source, inline.line = source, line
                subtitle.clear()
                subtitle += inline
        return result


class TranslatableExercise(_TranslatableTitle, ExerciseDirective):
    """```{exercise} Title```, with a translatable title."""


class TranslatableExerciseStart(_TranslatableTitle, ExerciseStartDirective):
    """```{exercise-start} Title```, with a translatable title."""


def _is_translatable_inline(node: nodes.Node) -> bool:
    return isinstance(node, nodes.inline) and "translatable" in node


def refresh_exercise_copies(app: Sphinx, doctree: nodes.document) -> None:
    """Give solutions the translated exercise titles.

    sphinx-exercise keeps a copy of every exercise in its registry, taken when the
    directive ran (before translation), and builds each solution's title from it.
    """
    registry = getattr(app.env, "sphinx_exercise_registry", {})
    for node in doctree.findall(is_exercise_node):
        entry = registry.get(node.get("label"))
        if entry is None or entry["docname"] != app.env.docname:
            continue
        copy = node.deepcopy()
        # The placeholder inlines go at the end of the read phase, after this event.
        for inline in list(copy.findall(_is_translatable_inline)):
            inline.replace_self(inline.children)
        entry["node"] = copy


class ChineseExerciseLabels(SphinxPostTransform):
    """Chinese exercise labels: 练习 3（标题）and 练习 3（标题）的解答.

    sphinx-exercise writes 练习 3 (标题) and 解答 练习 3 (标题), the English word order.
    """

    default_priority = 25  # after sphinx-exercise's title post-transforms (20-22)

    def run(self, **kwargs: Any) -> None:
        """Full-width brackets around exercise titles; solutions named after them."""
        if not (self.config.language or "").startswith("zh"):
            return
        for node in self.document.findall(is_exercise_node):
            if isinstance(node, exercise_enumerable_node) and node.children:
                _full_width_brackets(node.children[0])
        for node in self.document.findall(solution_node):
            title = node.children[0] if node.children else None
            if not isinstance(title, nodes.title) or len(title.children) != 2:
                continue
            label, link = title.children
            if not isinstance(label, nodes.Text) or not isinstance(
                link, nodes.reference
            ):
                continue
            _full_width_brackets(link)
            first = link.children[0] if link.children else None
            if isinstance(first, nodes.Text):
                link.replace(first, nodes.Text(first.lstrip()))
            # 解答 练习 3 -> 练习 3 的解答
            title.replace(label, nodes.Text(f"的{label.strip()}"))
            title.remove(link)
            title.insert(0, link)
            node["title"] = title.astext()


def _full_width_brackets(element: nodes.Element) -> None:
    """sphinx-exercise's " (" and ")" around a title, as Chinese brackets."""
    texts = [c for c in element.children if isinstance(c, nodes.Text)]
    opening = [t for t in texts if t == " ("]
    closing = [t for t in texts if t == ")"]
    if len(opening) == 1 and len(closing) == 1:
        element.replace(opening[0], nodes.Text("（"))
        element.replace(closing[-1], nodes.Text("）"))


def setup(app: Sphinx) -> dict[str, Any]:
    """Register glue fallback, caption translation, exercise titles, language link."""
    _install_glue_fallback()
    app.setup_extension("sphinx_exercise")
    app.add_directive("exercise", TranslatableExercise, override=True)
    app.add_directive("exercise-start", TranslatableExerciseStart, override=True)
    app.connect("doctree-read", refresh_exercise_copies)
    app.add_post_transform(ChineseExerciseLabels)
    # jieba 0.42.1 (Sphinx's Chinese word splitter for the search index) imports
    # pkg_resources, which prints a deprecation warning to stderr in every zh build.
    warnings.filterwarnings(
        "ignore", message="pkg_resources is deprecated", category=UserWarning
    )
    app.add_transform(TranslateTocCaptions)
    app.connect("html-page-context", add_language_link)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
