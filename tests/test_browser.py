"""The built book in headless Chromium as a reader sees it, and the draw-a-digit page.

Uses the book already built at _build/html (or $MNIST_CNN_BOOK_HTML), both editions:
English at its root, Chinese under zh_CN/ (every check runs on the pages of both);
`make test` builds them first. Without a build (or without Chromium / Playwright) the
tests skip, unless $CI is set, where they fail. Only 127.0.0.1 is contacted (see
browser_support.py).
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest
from browser_support import (
    CHROMIUM_ARGS,
    book_html_dir,
    book_pages,
    chromium_path,
    full_page_screenshots,
    mathjax_dir,
    route_requests,
    screenshot_dir,
    serve,
)

HTML = book_html_dir()
DRAW_PAGE = "chapters/14_draw_a_digit.html"
ZH = "zh_CN/"
# The Chinese pages are built from the same notebooks with the same theme, so every
# English page is checked and, to keep CI short, a sample of Chinese pages that covers
# each kind of content: the front page, search, animations (1, 3), math (6), exercises
# and solutions (10, 12), wide tables (11), the draw-a-digit page, the newest chapter
# and the glossary.
ZH_SAMPLE = {
    "intro.html",
    "search.html",
    "glossary.html",
    "chapters/01_convolution.html",
    "chapters/03_convolution_computation.html",
    "chapters/06_fully_connected.html",
    "chapters/10_write_it_yourself.html",
    "chapters/11_train_and_inspect.html",
    "chapters/12_overfitting.html",
    DRAW_PAGE,
    "chapters/15_harder_images.html",
}
PAGES = [
    p
    for p in book_pages(HTML)
    if not p.startswith(ZH) or p.removeprefix(ZH) in ZH_SAMPLE
]  # English pages, then zh_CN/... Chinese ones
# What the draw-a-digit panel says, by edition (chapters/_static/draw_digit.js).
PANEL_TEXT = {
    "": {"clear": "Clear", "status": "Model: ", "verdict": "The network reads a "},
    ZH: {"clear": "清除", "status": "模型：", "verdict": "网络认为这是 "},
}
VIEWPORT = {"width": 1280, "height": 800}
# Every visible <pre> whose content is wider than its box, with the lines that do not
# fit: how many columns fit is measured with a run of the box's own monospace
# characters.
WIDE_CODE_JS = """() => {
    document.querySelectorAll('details').forEach(d => { d.open = true; });
    return [...document.querySelectorAll('pre')]
        .filter(p => p.clientWidth > 0 && p.scrollWidth > p.clientWidth)
        .map(p => {
            const s = getComputedStyle(p), probe = document.createElement('span');
            probe.textContent = '0'.repeat(100);
            p.appendChild(probe);
            const char = probe.getBoundingClientRect().width / 100;
            probe.remove();
            const inner = p.clientWidth - parseFloat(s.paddingLeft)
                - parseFloat(s.paddingRight);
            const fit = Math.floor(inner / char);
            const lines = p.textContent.split('\\n')
                .map((text, i) => ({line: i + 1, cols: text.length, text}))
                .filter(l => l.cols > fit);
            return {box: p.clientWidth, scroll: p.scrollWidth, fit, lines};
        });
}"""
MODEL_FILE = HTML / "_static" / "mnist_cnn_model.js"
# Console errors that come from the book's toolchain, not from our pages; each is exact
# and explained, so that any other error still fails the test.
KNOWN_TOOLCHAIN_ERRORS = {
    # sphinx-thebe 0.3 with Sphinx 7.4 writes its inline `const THEBE_JS_URL = ...`
    # script twice into every page; the second copy is a SyntaxError. Thebe itself is
    # not used by the book.
    "uncaught: Identifier 'THEBE_JS_URL' has already been declared",
    # pydata-sphinx-theme reads an empty theme mode from a fresh browser profile's
    # localStorage, logs this, and falls back to "auto" (every first visit to any
    # pydata-themed site).
    "console error: Got invalid theme mode: . Resetting to auto.",
}


def _missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (HTML / "intro.html").is_file():
        return f"no built book at {HTML} (run `make book`, or set MNIST_CNN_BOOK_HTML)"
    if chromium_path() is None:
        return "Chromium is not installed (apt-get install chromium chromium-driver)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return (
            "the playwright package is not installed (pip install -r requirements.txt)"
        )
    if mathjax_dir() is None:
        return "the local MathJax copy (django-static-mathjax) is not installed"
    return None


@pytest.fixture(scope="module")
def browser_session():
    """(browser context, base URL, blocked external requests), shared by the module."""
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with serve(HTML) as base_url, sync_playwright() as pw:
        # Playwright gives every launch a fresh, empty profile (--user-data-dir).
        browser = pw.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        # The window the book is checked at: code boxes must not scroll at this size.
        # Reduced motion: the theme's CSS transitions off, so an element Playwright
        # must click or photograph is never caught mid-transition on a loaded machine
        # (once, in CI, the Chinese draw panel never became "stable" for 15 s).
        context = browser.new_context(viewport=VIEWPORT, reduced_motion="reduce")
        context.set_default_timeout(15_000)
        blocked: list[str] = []
        route_requests(context, base_url, blocked)
        try:
            yield context, base_url, blocked
        finally:
            context.close()
            browser.close()


def open_page(session, path: str):
    """Open `path`; returns (page, errors): console errors and failed loads."""
    context, base_url, _ = session
    page = context.new_page()
    errors: list[str] = []

    def record(message: str) -> None:
        if message not in KNOWN_TOOLCHAIN_ERRORS:
            errors.append(message)

    page.on(
        "console",
        lambda msg: (
            record(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )
    page.on("pageerror", lambda err: record(f"uncaught: {err}"))
    page.on(
        "response",
        lambda r: record(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
    )
    page.on(
        "requestfailed",
        lambda r: record(f"request failed (only 127.0.0.1 is reachable): {r.url}"),
    )
    page.goto(base_url + path, wait_until="load")
    return page, errors


def test_book_is_built():
    """The build exists and has pages: fails in CI if not, skips elsewhere."""
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    assert "intro.html" in PAGES and "search.html" in PAGES, PAGES
    if os.environ.get("CI"):
        assert ZH + "intro.html" in PAGES and ZH + "search.html" in PAGES, PAGES


# Every page of the book: errors, images, math, animations, solutions, and a screenshot.
@pytest.mark.parametrize("path", PAGES)
def test_page(browser_session, path):
    page, errors = open_page(browser_session, path)
    try:
        # Math: wait for MathJax, then every math element must hold typeset output.
        n_math = page.locator(".math").count()
        if n_math:
            page.wait_for_function(
                "window.MathJax && MathJax.startup && MathJax.startup.promise"
            )
            page.evaluate("MathJax.startup.promise")
            untyped = page.evaluate("""() => [...document.querySelectorAll('.math')]
                .filter(e => !e.querySelector('mjx-container'))
                .map(e => e.textContent.slice(0, 60))""")
            assert not untyped, f"{path}: math not typeset: {untyped[:3]}"
        visible = page.inner_text("body")
        assert "$$" not in visible, f"{path}: raw $$ left in the visible text"

        # Images: force lazy ones to load, then every <img> must have pixels.
        broken = page.evaluate("""async () => {
            const imgs = [...document.images];
            imgs.forEach(i => { i.loading = 'eager'; });
            await Promise.all(imgs.map(i => i.decode().catch(() => null)));
            return imgs.filter(i => !(i.complete && i.naturalWidth > 0))
                .map(i => i.src);
        }""")
        assert not broken, f"{path}: images that did not load: {broken}"

        # Animations (matplotlib jshtml): pressing Play must move the frame slider.
        animations = page.locator("div.animation")
        for i in range(animations.count()):
            anim = animations.nth(i)
            anim.scroll_into_view_if_needed()
            slider = anim.locator("input.anim-slider")
            anim.locator("button[title='First frame']").click()
            start = slider.input_value()
            anim.locator("button[title='Play']").click()
            handle = slider.element_handle()
            page.wait_for_function(
                "([s, v]) => s.value !== v", arg=[handle, start], timeout=5_000
            )
            anim.locator("button[title='Pause']").click()
            assert anim.locator("img").first.evaluate("i => i.naturalWidth") > 0

        # Exercise solutions: hidden until their title is clicked.
        solutions = page.locator("div.solution.dropdown")
        for i in range(solutions.count()):
            solution = solutions.nth(i)
            body = solution.locator("section").first
            assert not body.is_visible(), (
                f"{path}: solution {i + 1} is visible before a click"
            )
            # The chevron button sphinx-togglebutton adds to the title (the title's link
            # text navigates to the exercise instead of toggling).
            solution.locator("button.toggle-button").first.click()
            body.wait_for(state="visible", timeout=5_000)

        # Code fits the page: no code box (cell, output, literal block) scrolls sideways
        # at 1280x800, solutions and other dropdowns opened.
        wide = page.evaluate(WIDE_CODE_JS)
        report = []
        for k, box in enumerate(wide, 1):
            report.append(
                f"  code box {k}: {box['scroll']} px of content in {box['box']} px "
                f"({box['fit']} columns fit)"
            )
            report += [
                f"    line {x['line']} ({x['cols']} columns): {x['text'][:120]}"
                for x in box["lines"][:10]
            ]
        assert not wide, (
            f"{path}: {len(wide)} code boxes scroll horizontally at "
            f"{VIEWPORT['width']}x{VIEWPORT['height']}:\n" + "\n".join(report)
        )

        if path in ("search.html", ZH + "search.html"):
            # The Chinese edition's index is segmented with jieba: 卷积 is a word.
            word = "卷积" if path.startswith(ZH) else "convolution"
            page.goto(page.url.split("?")[0] + "?q=" + word, wait_until="load")
            page.wait_for_selector("#search-results ul.search li a", timeout=15_000)
            links = page.locator("#search-results ul.search li a").evaluate_all(
                "links => links.map(a => a.getAttribute('href'))"
            )
            assert any("01_convolution" in link for link in links), (
                f"search for {word!r} did not find the convolution chapter: {links}"
            )

        screenshot_dir().mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=str(screenshot_dir() / (path.replace("/", "__")[:-5] + ".png")),
            full_page=full_page_screenshots(),
        )
        assert not errors, f"{path}: {errors}"
    finally:
        page.close()


def test_no_external_requests(browser_session):
    """No page so far asked for anything but 127.0.0.1 (and the local MathJax)."""
    page, _ = open_page(browser_session, "intro.html")
    page.close()
    _, _, blocked = browser_session
    assert not blocked, (
        f"pages asked for external addresses: {sorted(set(blocked))[:10]}"
    )


# ---------- Draw a digit ----------


@pytest.fixture(scope="module", params=["", ZH], ids=["en", "zh_CN"])
def edition(request) -> str:
    """The edition under test: "" (English, the root) or "zh_CN/"."""
    return request.param


@pytest.fixture(scope="module")
def draw_page(browser_session, edition):
    """The draw-a-digit page of one edition, loaded, with its model ready."""
    path = edition + DRAW_PAGE
    if path not in PAGES:
        if edition and not os.environ.get("CI"):
            pytest.skip(f"no Chinese edition at {HTML / ZH} (run `make book`)")
        pytest.fail(f"{path} is not in the built book at {HTML}")
    page, errors = open_page(browser_session, path)
    page.wait_for_selector(".dd-panel.dd-ready, .dd-panel.dd-broken")
    assert page.evaluate("window.mnistCnn.error") is None, page.evaluate(
        "window.mnistCnn.error"
    )
    yield page, errors
    assert not errors, errors
    page.close()


def test_draw_panel_speaks_the_page_language(draw_page, edition):
    """The panel's button, status and verdict are in the edition's language."""
    page, _ = draw_page
    text = PANEL_TEXT[edition]
    assert page.locator(".dd-clear").inner_text() == text["clear"]
    assert page.locator(".dd-status").inner_text().startswith(text["status"])
    page.locator(".dd-clear").click()
    _stroke(page, STROKES["1"][0])
    page.wait_for_function(
        "document.querySelector('.dd-panel').dataset.prediction !== ''"
    )
    assert page.locator(".dd-verdict").inner_text().startswith(text["verdict"])
    page.locator(".dd-clear").click()


@pytest.fixture(scope="module")
def web_model():
    """The model the page runs, rebuilt in Python from the exported file."""
    from mnist_cnn.export import load_web

    return load_web(MODEL_FILE)


@pytest.fixture(scope="module")
def test_digits():
    import mnist_cnn

    (_, _), (x_test, y_test) = mnist_cnn.load_data()
    return x_test[:100], y_test[:100]


def test_js_forward_matches_predict(draw_page, web_model, test_digits):
    import mnist_cnn

    page, _ = draw_page
    x, y = test_digits
    pixels = (x.astype(np.float32) / 255.0).reshape(len(x), 784)
    js = np.array(
        page.evaluate(
            "imgs => imgs.map(im => window.mnistCnn.predict(im))", pixels.tolist()
        )
    )
    expected = mnist_cnn.predict(web_model, x)
    assert js.shape == (100, 10)
    np.testing.assert_allclose(js, expected, atol=1e-4, rtol=0)
    # And it is the trained model: nearly all of these test digits are read correctly.
    assert (js.argmax(1) == y).mean() >= 0.95


def test_js_preprocess_matches_python(draw_page, test_digits):
    """Digits enlarged, moved on a 280x280 page: the same 28x28 as preprocess_image."""
    from PIL import Image

    import mnist_cnn

    page, _ = draw_page
    x, _ = test_digits
    for k, (size, top, left) in enumerate(
        [(200, 30, 50), (97, 150, 10), (140, 0, 140)]
    ):
        big = (
            np.asarray(
                Image.fromarray(x[k]).resize((size, size), Image.BILINEAR), np.float32
            )
            / 255
        )
        grey = np.zeros((280, 280), np.float32)
        grey[top : top + size, left : left + size] = big[: 280 - top, : 280 - left]
        if k == 2:
            grey = 1.0 - grey  # dark ink on light paper: both must invert it
        js = page.evaluate(
            "g => Array.from(window.mnistCnn.preprocess(g, 280, 280).image)",
            grey.ravel().tolist(),
        )
        np.testing.assert_allclose(
            np.array(js).reshape(28, 28),
            mnist_cnn.preprocess_image(grey),
            atol=1e-5,
            rtol=0,
        )


def _stroke(page, points):
    """Drag the mouse through `points` (canvas coordinates, 0..280), button held."""
    box = page.locator(".dd-canvas").bounding_box()
    sx, sy = box["width"] / 280, box["height"] / 280
    page.mouse.move(box["x"] + points[0][0] * sx, box["y"] + points[0][1] * sy)
    page.mouse.down()
    for px, py in points[1:]:
        page.mouse.move(box["x"] + px * sx, box["y"] + py * sy, steps=4)
    page.mouse.up()


def _line(a, b, n=12):
    return [
        (a[0] + (b[0] - a[0]) * t / n, a[1] + (b[1] - a[1]) * t / n)
        for t in range(n + 1)
    ]


STROKES = {
    "1": [_line((145, 40), (135, 240))],
    "7": [_line((75, 50), (205, 50)) + _line((205, 50), (120, 245))[1:]],
    "0": [
        [
            (
                140 + 60 * math.sin(2 * math.pi * t / 40),
                140 - 95 * math.cos(2 * math.pi * t / 40),
            )
            for t in range(42)
        ]
    ],
}


@pytest.mark.parametrize("digit", sorted(STROKES))
def test_drawn_digit_is_classified(draw_page, edition, web_model, digit):
    import mnist_cnn

    page, _ = draw_page
    page.locator(".dd-clear").click()
    page.locator(".dd-canvas").scroll_into_view_if_needed()
    for stroke in STROKES[digit]:
        _stroke(page, stroke)
    page.wait_for_function(
        "document.querySelector('.dd-panel').dataset.prediction !== ''"
    )
    screenshot_dir().mkdir(parents=True, exist_ok=True)
    page.locator(".dd-panel").screenshot(
        path=str(
            screenshot_dir() / f"{edition.replace('/', '__')}draw_a_digit_{digit}.png"
        )
    )
    assert page.locator(".dd-panel").get_attribute("data-prediction") == digit
    # The bars show what Python computes from the very same canvas pixels.
    grey = np.array(
        page.evaluate("""() => {
        const c = document.querySelector('.dd-canvas'), d = c.getContext('2d')
            .getImageData(0, 0, c.width, c.height).data, g = [];
        for (let i = 0; i < d.length; i += 4)
            g.push((0.299 * d[i] + 0.587 * d[i+1] + 0.114 * d[i+2]) / 255);
        return g; }"""),
        np.float32,
    ).reshape(280, 280)
    expected = mnist_cnn.predict(web_model, mnist_cnn.preprocess_image(grey))
    bars = np.array(
        [
            float(v)
            for v in page.locator(".dd-bar-row").evaluate_all(
                "rows => rows.map(r => r.dataset.probability)"
            )
        ]
    )
    np.testing.assert_allclose(bars, expected, atol=1e-4, rtol=0)
    assert int(np.argmax(expected)) == int(digit)


def test_clear_resets_the_bars(draw_page):
    page, _ = draw_page
    _stroke(page, STROKES["1"][0])
    page.wait_for_function(
        "document.querySelector('.dd-panel').dataset.prediction !== ''"
    )
    widths = page.locator(".dd-bar").evaluate_all(
        "bars => bars.map(b => parseFloat(b.style.width))"
    )
    assert max(widths) > 0
    page.locator(".dd-clear").click()
    widths = page.locator(".dd-bar").evaluate_all(
        "bars => bars.map(b => parseFloat(b.style.width))"
    )
    assert widths == [0.0] * 10
    assert page.locator(".dd-panel").get_attribute("data-prediction") == ""
    blank = page.evaluate("""() => { const c = document.querySelector('.dd-canvas');
        return c.getContext('2d').getImageData(0, 0, c.width, c.height).data
            .every((v, i) => i % 4 === 3 || v === 0); }""")
    assert blank, "the canvas still has ink after Clear"
    # The first layer's feature maps show one map per filter of the exported model.
    assert page.locator(".dd-map").count() == page.evaluate(
        "window.mnistCnn.model.layers.find(l => l.type === 'conv').kernel.shape[3]"
    )


def test_draw_page_is_light(draw_page, edition):
    """The page's own files (HTML, script, style, exported model) stay under 1 MB."""
    own = [
        HTML / edition / DRAW_PAGE,
        HTML / edition / "_static" / "mnist_cnn_model.js",
        HTML / edition / "_static" / "draw_digit.js",
        HTML / edition / "_static" / "draw_digit.css",
    ]
    total = sum(p.stat().st_size for p in own)
    assert total < 1_000_000, f"{total / 1e6:.2f} MB"
    html = (HTML / edition / DRAW_PAGE).read_text()
    assert re.search(r'src="\.\./_static/mnist_cnn_model\.js"', html)
