"""Helpers for tests/test_browser.py: find the built book, serve it, start Chromium.

The browser never reaches any address but the local server: every other request is
aborted and recorded, except MathJax, which Sphinx loads from its CDN and which is
answered from the local copy in the `django-static-mathjax` package (MathJax 3.2.2), so
math typesets offline.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
# Chromium's features that call home are off: the network is closed, tests stay local.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def book_html_dir() -> Path:
    """The built book: $MNIST_CNN_BOOK_HTML, else _build/html (built by `make book`)."""
    return Path(
        os.environ.get("MNIST_CNN_BOOK_HTML", REPO / "_build" / "html")
    ).resolve()


def screenshot_dir() -> Path:
    """Where page screenshots go: _build/screenshots beside the html folder (for CI)."""
    return book_html_dir().parent / "screenshots"


def full_page_screenshots() -> bool:
    """Whole-page screenshots if $BOOK_SCREENSHOTS is "full"; else the first screen.

    A whole chapter is a tall image that takes Chromium a second or two to render and
    encode, about a minute over every page of a CI run; the checks never look at it.
    """
    return os.environ.get("BOOK_SCREENSHOTS", "").lower() == "full"


def chromium_path() -> str | None:
    """The system Chromium (Debian's package), or None."""
    return (
        os.environ.get("CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


def book_pages(root: Path) -> list[str]:
    """Every HTML page of the built book, as paths relative to `root`.

    index.html is left out: it only redirects.
    """
    if not root.is_dir():
        return []
    skip = {"_static", "_sources", "_images", "_downloads"}
    pages = [
        p.relative_to(root).as_posix()
        for p in root.rglob("*.html")
        if not skip & set(p.relative_to(root).parts) and p.name != "index.html"
    ]
    return sorted(pages)


def mathjax_dir() -> Path | None:
    """The es5 folder of the local MathJax 3 copy, or None when it is missing."""
    try:
        import mathjax  # the django-static-mathjax package
    except ImportError:
        return None
    path = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    return path if (path / "tex-mml-chtml.js").is_file() else None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass  # keep pytest's output clean


@contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve `root` on 127.0.0.1 at a free port in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def route_requests(context, base_url: str, blocked: list[str]) -> None:
    """Let local requests through, answer MathJax locally, abort and record the rest."""
    local = urlsplit(base_url).netloc
    es5 = mathjax_dir()

    def handle(route):
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or parts.netloc == local:
            route.continue_()
            return
        if es5 is not None and "/mathjax@3/es5/" in parts.path:
            file = es5 / parts.path.split("/mathjax@3/es5/", 1)[1]
            if file.is_file():
                route.fulfill(path=str(file))
                return
        blocked.append(url)
        route.abort()

    context.route("**/*", handle)
