#!/usr/bin/env python3
"""Browser check of the built book: open every page in headless Chromium.

The HTML build can succeed while a reader still sees a broken page: math that
MathJax never typeset (raw ``$x^2$`` in the text), an image that does not load,
or a notebook cell whose output is a Python traceback. This script serves the
built HTML directory on 127.0.0.1, opens every book page in headless Chromium
(driven by Playwright, pointed at the system Chromium), and exits with status 1
listing each page and problem.

Checks per page
---------------
* raw TeX left in the visible text after MathJax ran (``$...$``, ``$$``,
  ``\\[``, ``\\(``, ``\\begin{``), outside code blocks; and Sphinx math
  elements (``.math``) that hold no typeset ``mjx-container``;
* broken images: a local ``<img>`` whose ``naturalWidth`` is 0 after loading;
* Python errors in cell outputs: myst-nb's ``.output.traceback``, the
  ``output_error`` class, "Traceback (most recent call last)" in any cell
  output, and stderr outputs with a line that starts with an exception name;
* every chapter page (``book/0*.html``) shows at least one figure image that
  loaded (inside a cell output or a figure).

Offline MathJax
---------------
The pages load MathJax 3 from a CDN. The network is not used: every request to
a MathJax CDN URL is answered from a local copy of the npm package
``mathjax@3`` (installed with ``npm install --prefix CACHE mathjax@3`` on
first use, or given with ``--mathjax``), requests to the local server pass,
and every other request is aborted at once. The built book on disk is not
modified.

Usage
-----
    python tools/check_book.py [_build/html] [--screenshots DIR]

Exit status: 0 all pages pass, 1 problems found, 2 setup error (no Chromium,
no Playwright, no MathJax copy, bad directory).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_CHROMIUM = "/usr/bin/chromium"
# Flags the project's CI uses for Chromium; Playwright adds its own
# automation flags and --headless itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Top-level Sphinx pages that are not book content.
SKIP_PAGES = {"genindex.html", "search.html", "py-modindex.html"}
# A MathJax CDN URL: jsDelivr/unpkg ".../mathjax@3.2.2/es5/x.js" or cdnjs
# ".../mathjax/3.2.2/es5/x.js"; group 1 is the path inside the npm package.
MATHJAX_URL = re.compile(r"/mathjax(?:@[^/]*|/\d[^/]*)/(.*)$", re.IGNORECASE)
SCREENSHOT_PAGES = ("book/02_thin_lens.html", "book/06_alternating.html")
PAGE_TIMEOUT_MS = 30_000  # generous: a cold MathJax load on a slow 2-core runner
MATHJAX_TIMEOUT_MS = 30_000
MAX_EXAMPLES = 3  # raw-TeX / untypeset-math examples listed per page

# Runs in the page after the load event. Returns a dict of findings; all
# judgement about what counts as a problem stays in Python (pure, testable).
PAGE_PROBE_JS = r"""
async ([mathjaxTimeoutMs]) => {
  const out = {mathjax: "absent", untypeset: [], texSnippets: [], images: [],
               errors: [], stderr: [], figures: 0};
  // 1. Wait for MathJax's first typeset pass (startup.promise), if it loaded.
  const hasScript = [...document.scripts].some(s => /mathjax/i.test(s.src || ""));
  if (hasScript) {
    const t0 = Date.now();
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)
           && Date.now() - t0 < 3000) {
      await new Promise(r => setTimeout(r, 50));
    }
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      const timeout = new Promise(r => setTimeout(() => r("timeout"), mathjaxTimeoutMs));
      const done = MathJax.startup.promise.then(() => "typeset", e => "failed: " + e);
      out.mathjax = await Promise.race([done, timeout]);
    } else {
      out.mathjax = "not loaded";
    }
  }
  // 2. Math elements Sphinx emitted that MathJax did not replace.
  for (const el of document.querySelectorAll(".math")) {
    if (!el.querySelector("mjx-container")) {
      out.untypeset.push(el.textContent.trim().slice(0, 80));
    }
  }
  // 3. Raw TeX in text outside code, scripts and typeset math, grouped by
  //    the nearest block element so "$5 ... $6" in two paragraphs is not a pair.
  const SKIP = "pre, code, script, style, noscript, textarea, mjx-container, .highlight, .cell_input";
  const BLOCK = "p, li, dt, dd, td, th, h1, h2, h3, h4, h5, h6, figcaption, caption, blockquote, div, section, article, body";
  const groups = new Map();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const parent = n.parentElement;
    if (!parent || parent.closest(SKIP)) continue;
    const block = parent.closest(BLOCK);
    groups.set(block, (groups.get(block) || "") + n.nodeValue);
  }
  const TEX = /\$\$|\\\[|\\\(|\\begin\{|\$[^$\n]+\$/;
  for (const text of groups.values()) {
    const m = TEX.exec(text);
    if (m) {
      const start = Math.max(0, m.index - 30);
      out.texSnippets.push(text.slice(start, m.index + 50).replace(/\s+/g, " ").trim());
    }
  }
  // 4. Images: make lazy ones eager, wait for each to settle, then measure.
  const imgs = [...document.images];
  await Promise.all(imgs.map(img => {
    img.loading = "eager";
    if (img.complete) return Promise.resolve();
    return new Promise(r => {
      img.addEventListener("load", r, {once: true});
      img.addEventListener("error", r, {once: true});
      setTimeout(r, 10000);
    });
  }));
  for (const img of imgs) {
    const inFigure = !!img.closest(".cell_output, figure, .figure");
    out.images.push({src: img.currentSrc || img.src, attr: img.getAttribute("src") || "",
                     width: img.naturalWidth, inFigure: inFigure});
    if (inFigure && img.naturalWidth > 0) out.figures += 1;
  }
  // 5. Python errors rendered by myst-nb (and nbsphinx-style class names).
  const ERR = ".output.traceback, .output_error, .output-error, .cell_output .traceback";
  for (const el of document.querySelectorAll(ERR)) {
    out.errors.push(el.textContent.trim().slice(0, 200));
  }
  for (const el of document.querySelectorAll(".cell_output, .output")) {
    if (el.matches(ERR) || el.querySelector(ERR)) continue;
    if (el.textContent.includes("Traceback (most recent call last)")) {
      out.errors.push(el.textContent.trim().slice(0, 200));
    }
  }
  for (const el of document.querySelectorAll(".output.stderr, .output_stderr, .stderr")) {
    out.stderr.push(el.textContent);
  }
  return out;
}
"""

# A stderr line that starts with an exception name ("ValueError: ...",
# "numpy.linalg.LinAlgError", "Exception"), as printed for an uncaught error.
# Warnings ("RuntimeWarning: ...") and progress bars do not match.
_STDERR_ERROR = re.compile(r"^\s*(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception)\b", re.M)


def find_pages(root: Path) -> list[str]:
    """List the book's HTML pages under ``root`` as POSIX paths relative to it.

    Parameters
    ----------
    root : Path
        The built HTML directory.

    Returns
    -------
    list of str
        Sorted relative paths, e.g. ``["book/01_focal_stacks.html", ...]``.
        Skipped: anything under a directory starting with ``_`` or ``.``
        (``_static``, ``_sources``, ``_images``), Sphinx's index/search pages,
        and pure redirect stubs (Jupyter Book's root ``index.html``).
    """
    pages = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root)
        if any(part.startswith(("_", ".")) for part in rel.parts[:-1]):
            continue
        if rel.name in SKIP_PAGES and len(rel.parts) == 1:
            continue
        head = path.read_text(encoding="utf-8", errors="replace")[:2000].lower()
        if 'http-equiv="refresh"' in head and "<article" not in head:
            continue
        pages.append(rel.as_posix())
    return pages


def is_chapter(page: str) -> bool:
    """Whether a relative page path is a numbered chapter (``book/0*.html``)."""
    parts = page.split("/")
    return len(parts) == 2 and parts[0] == "book" and parts[1].startswith("0")


def problems_from_probe(page: str, probe: dict) -> list[str]:
    """Turn the raw findings of :data:`PAGE_PROBE_JS` into problem messages.

    Parameters
    ----------
    page : str
        Relative page path (decides whether the figure rule applies).
    probe : dict
        Findings returned by the in-page probe.

    Returns
    -------
    list of str
        One human-readable message per problem; empty if the page passes.
    """
    problems = []
    if probe["mathjax"] not in ("absent", "typeset"):
        problems.append(f"MathJax did not finish: {probe['mathjax']}")
    problems += _capped("math not typeset by MathJax", probe["untypeset"])
    problems += _capped("raw TeX in visible text", probe["texSnippets"])
    for img in probe["images"]:
        local = img["src"].startswith(("http://127.0.0.1", "data:", "file:"))
        if local and img["width"] == 0:
            problems.append(f"broken image: {img['attr'] or img['src']}")
    for text in probe["errors"]:
        problems.append(f"Python error output: {_first_line(text)!r}")
    for text in probe["stderr"]:
        match = _STDERR_ERROR.search(text)
        if match or "Traceback (most recent call last)" in text:
            line = _first_line(text[match.start():] if match else text)
            problems.append(f"error in stderr output: {line!r}")
    if is_chapter(page) and probe["figures"] == 0:
        problems.append("chapter page has no rendered figure image")
    return problems


def _capped(label: str, texts: list[str], limit: int = MAX_EXAMPLES) -> list[str]:
    """One message per example up to ``limit``, then a count of the rest.

    When MathJax fails to load every formula on a page is raw; a few examples
    and a count say that more clearly than hundreds of lines.
    """
    messages = [f"{label}: {text!r}" for text in texts[:limit]]
    if len(texts) > limit:
        messages.append(f"{label}: ... and {len(texts) - limit} more")
    return messages


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:160] if lines else ""


def external_images(probe: dict) -> list[str]:
    """Images served from another host: aborted offline, so not judged."""
    return [img["src"] for img in probe["images"]
            if not img["src"].startswith(("http://127.0.0.1", "data:", "file:"))]


def pages_need_mathjax(root: Path, pages: list[str]) -> bool:
    """Whether any page loads MathJax from a CDN (then a local copy is needed)."""
    for page in pages:
        text = (root / page).read_text(encoding="utf-8", errors="replace")
        for src in re.findall(r"<script[^>]+src=\"([^\"]+)\"", text):
            if MATHJAX_URL.search(urlsplit(src).path):
                return True
    return False


def default_cache() -> Path:
    """Cache directory for the npm MathJax copy (``$CHECK_BOOK_CACHE`` wins)."""
    env = os.environ.get("CHECK_BOOK_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "check_book"
    return base


def ensure_mathjax(mathjax: Path | None, cache: Path) -> Path:
    """Return the directory of a local ``mathjax@3`` npm package.

    Parameters
    ----------
    mathjax : Path or None
        A package directory given by the user (must contain ``es5/``).
    cache : Path
        npm prefix used when ``mathjax`` is None; the package is installed
        there with npm on first use (npm's registry is the only network use).

    Raises
    ------
    RuntimeError
        If the directory is not a MathJax package or npm is unavailable/fails.
    """
    if mathjax is not None:
        if not (mathjax / "es5").is_dir():
            raise RuntimeError(f"--mathjax {mathjax} is not a MathJax 3 package (no es5/ in it)")
        return mathjax
    package = cache / "node_modules" / "mathjax"
    if (package / "es5" / "tex-mml-chtml.js").is_file():
        return package
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("MathJax is not cached and npm is not installed; install npm or pass --mathjax DIR")
    cache.mkdir(parents=True, exist_ok=True)
    print(f"installing mathjax@3 into {cache} ...", flush=True)
    result = subprocess.run(
        [npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund", "--no-save", "mathjax@3"],
        capture_output=True, text=True,
    )
    if result.returncode != 0 or not (package / "es5").is_dir():
        raise RuntimeError(f"npm install mathjax@3 failed:\n{result.stdout}\n{result.stderr}")
    return package


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass  # one line per request would drown the report


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``root`` on 127.0.0.1 at a free port in a daemon thread."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def make_router(base_url: str, mathjax_dir: Path | None, blocked: list[str]):
    """Build the Playwright route handler for every request a page makes.

    Local server: passed through. MathJax CDN: answered from ``mathjax_dir``.
    Anything else: aborted immediately (the check must not use the network),
    and its URL recorded in ``blocked``.
    """
    def handle(route):
        url = route.request.url
        if url.startswith(base_url) or url.startswith("data:"):
            route.continue_()
            return
        parts = urlsplit(url)
        match = MATHJAX_URL.search(parts.path)
        if match and mathjax_dir is not None and parts.scheme in ("http", "https"):
            local = (mathjax_dir / match.group(1)).resolve()
            if local.is_file() and mathjax_dir.resolve() in local.parents:
                route.fulfill(path=str(local), headers={"Access-Control-Allow-Origin": "*"})
                return
        blocked.append(url)
        route.abort("blockedbyclient")
    return handle


def check_book(root: Path, *, screenshots: Path | None = None, chromium: str = DEFAULT_CHROMIUM,
               mathjax: Path | None = None, cache: Path | None = None,
               verbose: bool = True) -> dict[str, list[str]]:
    """Open every page of a built book and collect its problems.

    Parameters
    ----------
    root : Path
        Built HTML directory (e.g. ``_build/html``).
    screenshots : Path, optional
        Directory for full-page PNG screenshots of two pages.
    chromium : str
        Chromium executable.
    mathjax, cache : Path, optional
        Local MathJax package, or npm prefix to install/find it in.
    verbose : bool
        Print one progress line per page.

    Returns
    -------
    dict
        ``{relative page path: [problem, ...]}`` for every page checked.
    """
    from playwright.sync_api import sync_playwright  # imported late: --help works without it

    pages = find_pages(root)
    if not pages:
        raise RuntimeError(f"no HTML pages found under {root}")
    mathjax_dir = None
    if pages_need_mathjax(root, pages):
        mathjax_dir = ensure_mathjax(mathjax, cache or default_cache())

    shots: list[str] = []
    if screenshots is not None:
        chapters = [p for p in pages if is_chapter(p)]
        shots = [p for p in SCREENSHOT_PAGES if p in pages] or chapters[:2]
        if len(shots) < 2:
            shots = list(dict.fromkeys(shots + chapters))[:2]
        screenshots.mkdir(parents=True, exist_ok=True)

    server, base_url = serve(root)
    results: dict[str, list[str]] = {}
    blocked: list[str] = []
    js_error_pages: dict[str, list[str]] = {}
    profile = tempfile.mkdtemp(prefix="check_book_profile_")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 900}, service_workers="block",
            )
            try:
                context.route("**/*", make_router(base_url, mathjax_dir, blocked))
                page = context.new_page()
                js_errors: list[str] = []
                page.on("pageerror", lambda exc: js_errors.append(str(exc)))
                for rel in pages:
                    js_errors.clear()
                    try:
                        page.goto(base_url + rel, wait_until="load", timeout=PAGE_TIMEOUT_MS)
                        probe = page.evaluate(PAGE_PROBE_JS, [MATHJAX_TIMEOUT_MS])
                        problems = problems_from_probe(rel, probe)
                        for src in external_images(probe):
                            print(f"  note: {rel}: external image not checked offline: {src}")
                        if rel in shots:
                            out = screenshots / (rel.replace("/", "_")[:-5] + ".png")
                            page.screenshot(path=str(out), full_page=True)
                            print(f"  screenshot: {out}")
                    except Exception as exc:  # a page that cannot load is a problem, not a crash
                        problems = [f"page could not be checked: {type(exc).__name__}: {exc}"]
                    for err in js_errors:
                        js_error_pages.setdefault(err, []).append(rel)
                    results[rel] = problems
                    if verbose:
                        status = "ok" if not problems else f"{len(problems)} problem(s)"
                        print(f"{rel}: {status}", flush=True)
            finally:
                context.close()
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(profile, ignore_errors=True)
    if verbose:
        # Notes only: JavaScript errors and blocked requests do not fail the
        # check (e.g. Jupyter Book 1.x declares THEBE_JS_URL twice per page;
        # the widget manager and require.js come from CDNs that are blocked).
        for err, where in js_error_pages.items():
            print(f"  note: JavaScript error on {len(where)} page(s): {err}")
        for url in sorted(set(blocked)):
            print(f"  note: blocked request to another host: {url}")
    return results


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", nargs="?", default="_build/html", type=Path,
                        help="built HTML directory (default: _build/html)")
    parser.add_argument("--screenshots", type=Path, metavar="DIR",
                        help="save full-page PNG screenshots of two chapter pages here")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", DEFAULT_CHROMIUM),
                        help=f"Chromium executable (default: $CHROMIUM or {DEFAULT_CHROMIUM})")
    parser.add_argument("--mathjax", type=Path, metavar="DIR",
                        help="local mathjax@3 npm package directory (default: npm-installed into the cache)")
    parser.add_argument("--cache", type=Path, metavar="DIR",
                        help="npm prefix for the MathJax copy (default: $CHECK_BOOK_CACHE or ~/.cache/check_book)")
    args = parser.parse_args(argv)

    root = args.html_dir
    if not root.is_dir():
        print(f"error: html_dir {root} is not a directory (build the book first)", file=sys.stderr)
        return 2
    chromium = shutil.which(args.chromium) or (args.chromium if Path(args.chromium).is_file() else None)
    if chromium is None:
        print(f"error: Chromium not found at {args.chromium!r} (apt-get install -y chromium)", file=sys.stderr)
        return 2
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("error: the Python package 'playwright' is not installed (pip install playwright; "
              "do NOT run 'playwright install': the system Chromium is used)", file=sys.stderr)
        return 2
    try:
        results = check_book(root.resolve(), screenshots=args.screenshots, chromium=chromium,
                             mathjax=args.mathjax, cache=args.cache)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    failed = {page: probs for page, probs in results.items() if probs}
    print()
    if not failed:
        print(f"check_book: all {len(results)} pages OK")
        return 0
    print(f"check_book: {len(failed)} of {len(results)} pages have problems:")
    for page, probs in failed.items():
        for problem in probs:
            print(f"  {page}: {problem}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
