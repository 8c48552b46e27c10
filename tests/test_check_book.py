"""Tests for tools/check_book.py: the browser check must be able to fail.

A tiny fake "built book" is written to tmp_path: one good chapter, and one
chapter each with untypeset TeX, a broken image and a Python traceback
output. The browser test needs Chromium (CI installs it with apt) and is
skipped without it; the page-list and message tests run everywhere.
"""

import importlib.util
import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "check_book.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("check_book", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_book = _load_tool()


def _chromium():
    path = os.environ.get("CHROMIUM", check_book.DEFAULT_CHROMIUM)
    return shutil.which(path) or (path if Path(path).is_file() else None)


def _png(width=4, height=3):
    """A valid grey RGB PNG, built by hand so the test needs no imaging library."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _page(title, body):
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><article><h1>{title}</h1>{body}</article></body></html>")


FIGURE = '<div class="cell_output docutils container"><img alt="fig" src="../_images/fig.png"></div>'


def _fake_book(root: Path) -> None:
    (root / "book").mkdir(parents=True)
    (root / "_images").mkdir()
    (root / "_static").mkdir()
    (root / "_images" / "fig.png").write_bytes(_png())
    pages = {
        # Clean: TeX-like text only inside code, a harmless warning on stderr,
        # a lone dollar sign in prose, an external image (blocked, not judged).
        "book/01_good.html": _page("Good", FIGURE + (
            '<div class="cell_input"><pre>plt.xlabel(r"$\\sigma$ [px]")</pre></div>'
            '<div class="output stderr"><pre>RuntimeWarning: divide by zero</pre></div>'
            "<p>A lens costs $5 in this toy example.</p>"
            '<img alt="badge" src="https://example.invalid/badge.png">')),
        "book/02_rawmath.html": _page("Raw math", FIGURE + (
            "<p>The loss is $x^2$ here.</p>"
            '<p><span class="math notranslate nohighlight">\\(y\\)</span></p>')),
        "book/03_broken.html": _page("Broken", (
            '<figure><img alt="missing" src="../_images/missing.png"></figure>')),
        "book/04_error.html": _page("Error", FIGURE + (
            '<div class="cell_output docutils container">'
            '<div class="output traceback highlight-ipythontb notranslate"><pre>'
            "ValueError                                Traceback (most recent call last)\n"
            "Cell In[3], line 1\n----&gt; 1 raise ValueError('boom')\n"
            "ValueError: boom</pre></div></div>")),
        "book/05_stderr.html": _page("Stderr", FIGURE + (
            '<div class="output stderr"><pre>numpy.linalg.LinAlgError: Singular matrix</pre></div>')),
        # Not book pages: would fail if they were (wrongly) checked.
        "genindex.html": _page("Index", "<p>$z$ raw</p>"),
        "_static/widget.html": _page("Static", "<p>$z$ raw</p>"),
        "index.html": '<meta http-equiv="Refresh" content="0; url=book/01_good.html" />',
    }
    for rel, html in pages.items():
        (root / rel).write_text(html, encoding="utf-8")


def test_find_pages_skips_non_book_pages(tmp_path):
    _fake_book(tmp_path)
    assert check_book.find_pages(tmp_path) == [
        "book/01_good.html", "book/02_rawmath.html", "book/03_broken.html",
        "book/04_error.html", "book/05_stderr.html",
    ]


def test_stderr_rule_flags_errors_not_warnings():
    probe = {"mathjax": "absent", "untypeset": [], "texSnippets": [], "images": [],
             "errors": [], "figures": 1,
             "stderr": ["RuntimeWarning: divide by zero\n", "100%|####| 5/5 epochs\n"]}
    assert check_book.problems_from_probe("book/01_x.html", probe) == []
    probe["stderr"].append("warning first\nKeyError: 'depth'\n")
    assert check_book.problems_from_probe("book/01_x.html", probe) == [
        "error in stderr output: \"KeyError: 'depth'\""]
    probe["figures"] = 0
    assert "chapter page has no rendered figure image" in check_book.problems_from_probe(
        "book/01_x.html", probe)
    assert check_book.problems_from_probe("book/api.html", probe)[-1].startswith("error in stderr")


@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed (apt-get install -y chromium)")
def test_checker_reports_each_problem(tmp_path, capsys):
    root = tmp_path / "html"
    _fake_book(root)
    shots = tmp_path / "shots"

    status = check_book.main([str(root), "--screenshots", str(shots), "--chromium", _chromium()])
    out = capsys.readouterr().out

    assert status == 1, out
    problems = {}
    for line in out.splitlines():
        if line.startswith("  book/"):
            page, message = line.strip().split(": ", 1)
            problems.setdefault(page, []).append(message)
    assert "book/01_good.html" not in problems, out
    raw = problems["book/02_rawmath.html"]
    assert any(m.startswith("raw TeX in visible text") and "$x^2$" in m for m in raw), out
    assert any(m.startswith("math not typeset by MathJax") for m in raw), out
    broken = problems["book/03_broken.html"]
    assert "broken image: ../_images/missing.png" in broken, out
    assert "chapter page has no rendered figure image" in broken, out
    assert any(m.startswith("Python error output") and "Traceback" in m
               for m in problems["book/04_error.html"]), out
    assert problems["book/05_stderr.html"] == [
        "error in stderr output: 'numpy.linalg.LinAlgError: Singular matrix'"], out
    assert set(problems) == {"book/02_rawmath.html", "book/03_broken.html",
                             "book/04_error.html", "book/05_stderr.html"}, out
    # No 02_thin_lens/06_alternating here: the first two chapters are shot.
    assert sorted(p.name for p in shots.glob("*.png")) == ["book_01_good.png", "book_02_rawmath.png"]
    assert all((shots / name).read_bytes().startswith(b"\x89PNG") for name in
               ["book_01_good.png", "book_02_rawmath.png"])
