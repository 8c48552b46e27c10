"""The student edition: solutions out, stubs in, outputs cleared, teacher's files untouched."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from dfd_lite.teaching.course import (
    STUB,
    StudentEditionError,
    make_student_edition,
    strip_markers,
    student_notebook,
    student_page,
)

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"

MARKED = '''from dfd_lite.teaching.checks import check_thing


def plus_one(a):
    """Add one."""
    # BEGIN SOLUTION
    secret_sum = a + 1
    return secret_sum
    # END SOLUTION


check_thing(plus_one)'''


def code_with_output(source, count=3):
    cell = new_code_cell(source, execution_count=count)
    cell.outputs = [new_output("stream", name="stdout", text="some output\n")]
    return cell


def teacher_notebook():
    cells = [
        new_markdown_cell("# A chapter"),
        code_with_output("import numpy as np", 1),
        new_markdown_cell("```{exercise}\n:label: t-deriv\n\nDerive it.\n```"),
        new_markdown_cell("```{solution} t-deriv\n:class: dropdown\n\nSECRET derivation text.\n```"),
        new_markdown_cell("```{exercise}\n:label: t-code\n\nWrite plus_one.\n```"),
        new_markdown_cell("```{solution-start} t-code\n:class: dropdown\n```"),
        new_markdown_cell("SECRET explanation of the solution."),
        code_with_output(MARKED, 4),
        code_with_output("secret_extra_plot = 1", 5),
        new_markdown_cell("```{solution-end}\n```"),
        code_with_output("print('after the exercises')", 6),
        code_with_output("# BEGIN SOLUTION\nsecret_top_level = 2\n# END SOLUTION\nprint('kept')", 7),
    ]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.validate(nb)
    return nb


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def all_source(nb):
    return "\n".join(cell.source for cell in nb.cells)


# ---------------------------------------------------------------------------
# one notebook

def test_student_notebook_removes_solutions_and_keeps_stubs():
    teacher = teacher_notebook()
    before = nbformat.writes(teacher)
    student = student_notebook(teacher, "t.ipynb")
    assert nbformat.writes(teacher) == before  # the input object is not changed
    nbformat.validate(student)

    text = all_source(student)
    for secret in ("SECRET", "secret_sum", "secret_extra_plot", "secret_top_level",
                   "solution-start", "solution-end", "{solution}", "BEGIN SOLUTION",
                   "END SOLUTION"):
        assert secret not in text, secret
    kinds = [c.cell_type for c in student.cells]
    assert kinds == ["markdown", "code", "markdown", "markdown", "code", "code", "code"]
    # the statements stay
    assert "Derive it." in text and "Write plus_one." in text

    marked = student.cells[4].source
    assert marked == ('from dfd_lite.teaching.checks import check_thing\n\n\ndef plus_one(a):\n'
                      '    """Add one."""\n    ' + STUB + '\n\n\ncheck_thing(plus_one)')
    assert student.cells[6].source == STUB + "\nprint('kept')"
    for cell in student.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_stub_is_valid_python_that_raises():
    source = strip_markers(MARKED.replace("from dfd_lite.teaching.checks import check_thing", "")
                           .replace("check_thing(plus_one)", ""))
    namespace = {}
    exec(compile(source, "<stub>", "exec"), namespace)  # noqa: S102 - our own stub
    with pytest.raises(NotImplementedError):
        namespace["plus_one"](1)


def test_strip_markers_keeps_indentation_of_begin_marker():
    src = "def f():\n    if True:\n        # BEGIN SOLUTION\n        x = 1\n        # END SOLUTION\n    return x"
    assert strip_markers(src) == f"def f():\n    if True:\n        {STUB}\n    return x"


def test_marker_cells_outside_solutions_are_stubbed_too():
    nb = new_notebook(cells=[new_code_cell("a = 1\n# BEGIN SOLUTION\nb = 2\n# END SOLUTION")])
    assert student_notebook(nb).cells[0].source == "a = 1\n" + STUB


def test_colon_fence_directives_are_recognised():
    nb = new_notebook(cells=[
        new_markdown_cell(":::{solution-start} x\n:class: dropdown\n:::"),
        new_markdown_cell("hidden"),
        new_markdown_cell(":::{solution-end}\n:::"),
        new_markdown_cell(":::{solution} y\nalso hidden\n:::"),
        new_markdown_cell("visible"),
    ])
    assert [c.source for c in student_notebook(nb).cells] == ["visible"]


MALFORMED = {
    "start without end": [new_markdown_cell("```{solution-start} a\n```"),
                          new_code_cell("x = 1")],
    "end without start": [new_markdown_cell("```{solution-end}\n```")],
    "nested starts": [new_markdown_cell("```{solution-start} a\n```"),
                      new_markdown_cell("```{solution-start} b\n```"),
                      new_markdown_cell("```{solution-end}\n```"),
                      new_markdown_cell("```{solution-end}\n```")],
    "solution inside a gated solution": [new_markdown_cell("```{solution-start} a\n```"),
                                         new_markdown_cell("```{solution} b\ntext\n```"),
                                         new_markdown_cell("```{solution-end}\n```")],
    "directive not first in its cell": [
        new_markdown_cell("Some prose.\n\n```{solution} a\n:class: dropdown\ntext\n```")],
    "BEGIN without END": [new_code_cell("# BEGIN SOLUTION\nx = 1")],
    "END without BEGIN": [new_code_cell("x = 1\n# END SOLUTION")],
    "nested BEGIN": [new_code_cell("# BEGIN SOLUTION\n# BEGIN SOLUTION\nx = 1\n"
                                   "# END SOLUTION\n# END SOLUTION")],
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_blocks_raise(name):
    with pytest.raises(StudentEditionError, match="cell 0|cell 1"):
        student_notebook(new_notebook(cells=MALFORMED[name]), "bad.ipynb")


# ---------------------------------------------------------------------------
# a book folder

@pytest.fixture()
def book(tmp_path):
    folder = tmp_path / "book"
    (folder / "part").mkdir(parents=True)
    nbformat.write(teacher_notebook(), folder / "01_chapter.ipynb")
    nbformat.write(teacher_notebook(), folder / "part" / "02_chapter.ipynb")
    (folder / "intro.md").write_text("# Intro\n\nHello.\n")
    (folder / "_build").mkdir()
    nbformat.write(teacher_notebook(), folder / "_build" / "skipped.ipynb")
    return folder


def test_make_student_edition_writes_every_page(book, tmp_path):
    hashes = {p: digest(p) for p in book.rglob("*") if p.is_file()}
    out = tmp_path / "student"
    written = make_student_edition(book, out)
    assert sorted(p.relative_to(out).as_posix() for p in written) == [
        "01_chapter.ipynb", "intro.md", "part/02_chapter.ipynb"]
    assert (out / "intro.md").read_text() == "# Intro\n\nHello.\n"
    for path in written:
        if path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            nbformat.validate(nb)
            assert "SECRET" not in all_source(nb)
    assert hashes == {p: digest(p) for p in book.rglob("*") if p.is_file()}


def test_malformed_notebook_writes_nothing(book, tmp_path):
    bad = teacher_notebook()
    del bad.cells[9]  # the solution-end
    nbformat.write(bad, book / "99_bad.ipynb")
    out = tmp_path / "student"
    with pytest.raises(StudentEditionError, match="99_bad.ipynb.*without a solution-end"):
        make_student_edition(book, out)
    assert not out.exists()


def test_out_dir_inside_book_dir_is_refused(book):
    with pytest.raises(ValueError, match="outside book_dir"):
        make_student_edition(book, book / "student")
    with pytest.raises(ValueError, match="outside book_dir"):
        make_student_edition(book, book)


def test_missing_book_dir(tmp_path):
    with pytest.raises(ValueError, match="book_dir"):
        make_student_edition(tmp_path / "nope", tmp_path / "out")


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "dfd_lite.teaching.course", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, check=False)


def assert_one_line_error(proc, *words):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    for word in words:
        assert word in proc.stderr


def test_cli(book, tmp_path):
    out = tmp_path / "cli_out"
    proc = run_cli("student-edition", out, "--book-dir", book, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 2 student notebooks and 1 other files" in proc.stdout
    assert (out / "part" / "02_chapter.ipynb").is_file()


def test_cli_default_book_dir_and_error_status(book, tmp_path):
    # default --book-dir is ./book
    proc = run_cli("student-edition", "out", cwd=book.parent)
    assert proc.returncode == 0, proc.stderr
    assert (book.parent / "out" / "01_chapter.ipynb").is_file()
    nbformat.write(new_notebook(cells=[new_code_cell("# BEGIN SOLUTION")]), book / "bad.ipynb")
    proc = run_cli("student-edition", "out2", cwd=book.parent)
    assert_one_line_error(proc, "BEGIN SOLUTION")
    assert not (book.parent / "out2").exists()


def test_cli_refuses_non_empty_out_dir_unless_forced(book, tmp_path):
    out = tmp_path / "out"
    assert run_cli("student-edition", out, "--book-dir", book, cwd=tmp_path).returncode == 0
    (out / "intro.md").write_text("a student's notes\n")
    proc = run_cli("student-edition", out, "--book-dir", book, cwd=tmp_path)
    assert_one_line_error(proc, "not empty", "--force")
    assert (out / "intro.md").read_text() == "a student's notes\n"
    proc = run_cli("student-edition", out, "--book-dir", book, "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out / "intro.md").read_text() == "# Intro\n\nHello.\n"


def test_cli_missing_book_dir_is_a_one_line_error(tmp_path):
    assert_one_line_error(run_cli("student-edition", "out", "--book-dir", "nope", cwd=tmp_path),
                          "nope")


# ---------------------------------------------------------------------------
# overwriting

def test_non_empty_out_dir_is_refused_and_nothing_written(book, tmp_path):
    out = tmp_path / "student"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"'.*student' is not empty; pass force=True"):
        make_student_edition(book, out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["sub", "sub/mine.txt"]


def test_empty_out_dir_is_fine(book, tmp_path):
    (tmp_path / "student").mkdir()
    assert len(make_student_edition(book, tmp_path / "student")) == 3


def test_force_overwrites_and_keeps_other_files(book, tmp_path):
    out = tmp_path / "student"
    make_student_edition(book, out)
    (out / "01_chapter.ipynb").write_text("{}")
    (out / "answers.py").write_text("mine")
    written = make_student_edition(book, out, force=True)
    assert out / "01_chapter.ipynb" in written
    nbformat.validate(nbformat.read(out / "01_chapter.ipynb", as_version=4))
    assert (out / "answers.py").read_text() == "mine"


def test_out_file_is_refused(book, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        make_student_edition(book, tmp_path / "file", force=True)


def test_out_dir_holding_the_book_is_refused_even_when_forced(course):
    hashes = {p: digest(p) for p in course.rglob("*") if p.is_file()}
    for out in (course, course.parent):
        with pytest.raises(ValueError, match="must not hold book_dir"):
            make_student_edition(course / "book", out, force=True)
    assert hashes == {p: digest(p) for p in course.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------
# the student folder is a book

INTRO = """# Intro

See {cite}`lam2015` and {doc}`01_chapter`.

- Coding exercises come with a checker that
  tests your function; solutions are folded away
  under each exercise.
"""

CONFIG = {
    "title": "A tiny course",
    "only_build_toc_files": True,
    "execute": {"execute_notebooks": "force", "allow_errors": False},
    "bibtex_bibfiles": ["book/references.bib"],
    "repository": {"url": "https://example.org/teacher", "path_to_book": "", "branch": "main"},
    "html": {"use_repository_button": True},
    "sphinx": {"extra_extensions": ["sphinx_exercise"]},
}

TOC = {
    "format": "jb-book",
    "root": "book/intro",
    "parts": [{"caption": "Chapters", "chapters": [
        {"file": "book/01_chapter", "sections": [{"file": "book/part/02_chapter"}]},
        {"file": "book/bibliography"},
        {"url": "https://example.org", "title": "A link"},
    ]}],
}

BIB = """@article{lam2015,
  author = {Lam, Siu Kwan and Pitrou, Antoine and Seibert, Stanley},
  title = {Numba: a {LLVM}-based {Python} {JIT} compiler},
  journal = {Proceedings of the Second Workshop on the LLVM Compiler Infrastructure in HPC},
  year = {2015}
}
"""


@pytest.fixture()
def course(book, tmp_path):
    """``book`` moved into ``tmp_path/course``, beside the book's ``_config.yml`` and
    ``_toc.yml``, with an intro, a bibliography and an image."""
    root = tmp_path / "course"
    root.mkdir()
    book = Path(shutil.move(book, root / "book"))
    shutil.rmtree(book / "_build")
    # the second chapter's exercise labels must differ from the first's for Sphinx
    second = teacher_notebook()
    for cell in second.cells:
        cell.source = cell.source.replace("t-deriv", "u-deriv").replace("t-code", "u-code")
    nbformat.write(second, book / "part" / "02_chapter.ipynb")
    (root / "_config.yml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    (root / "_toc.yml").write_text(yaml.safe_dump(TOC, sort_keys=False))
    (book / "intro.md").write_text(INTRO)
    (book / "bibliography.md").write_text("# Bibliography\n\n```{bibliography}\n```\n")
    (book / "references.bib").write_text(BIB)
    (book / "part" / "figure.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (book / "helper.py").write_text("ANSWER = 42\n")  # not a page: stays with the teacher
    return root


def toc_files(toc):
    """Every ``root``/``file`` path in a toc."""
    if isinstance(toc, dict):
        return [v for k, v in toc.items() if k in ("root", "file")] + \
            [f for v in toc.values() for f in toc_files(v)]
    if isinstance(toc, list):
        return [f for v in toc for f in toc_files(v)]
    return []


def assert_toc_resolves(out):
    toc = yaml.safe_load((out / "_toc.yml").read_text())
    files = toc_files(toc)
    assert files
    for entry in files:
        assert not entry.startswith("book/"), entry
        matches = [out / entry] + [out / (entry + ext) for ext in (".ipynb", ".md")]
        assert any(m.is_file() for m in matches), f"toc entry {entry!r} has no file in {out}"
    return toc


def test_student_folder_is_a_book(course, tmp_path):
    hashes = {p: digest(p) for p in course.rglob("*") if p.is_file()}
    out = tmp_path / "student"
    written = make_student_edition(course / "book", out)
    assert hashes == {p: digest(p) for p in course.rglob("*") if p.is_file()}
    assert sorted(p.relative_to(out).as_posix() for p in written) == [
        "01_chapter.ipynb", "_config.yml", "_toc.yml", "bibliography.md", "intro.md",
        "part/02_chapter.ipynb", "part/figure.png", "references.bib"]
    assert (out / "references.bib").read_text() == BIB
    assert (out / "part" / "figure.png").read_bytes() == (course / "book/part/figure.png").read_bytes()

    config = yaml.safe_load((out / "_config.yml").read_text())
    assert config["title"] == "A tiny course (student edition)"
    assert config["execute"] == {"execute_notebooks": "off", "allow_errors": False}
    assert config["bibtex_bibfiles"] == ["references.bib"]
    assert all((out / bib).is_file() for bib in config["bibtex_bibfiles"])
    assert "repository" not in config and config["html"]["use_repository_button"] is False
    # the teacher's Sphinx settings are kept; references to figures that exist only in
    # executed outputs are not warned about (the student pages have no outputs)
    sphinx_config = dict(config["sphinx"]["config"])
    assert {"ref.ref", "ref.numref"} <= set(sphinx_config.pop("suppress_warnings"))
    teacher = dict(CONFIG["sphinx"].get("config", {}))
    teacher.pop("suppress_warnings", None)
    assert sphinx_config == teacher
    assert {k: v for k, v in config["sphinx"].items() if k != "config"} == \
        {k: v for k, v in CONFIG["sphinx"].items() if k != "config"}

    toc = assert_toc_resolves(out)
    assert toc["root"] == "intro"
    assert toc["parts"][0]["chapters"][0]["sections"] == [{"file": "part/02_chapter"}]
    assert toc["parts"][0]["chapters"][2] == TOC["parts"][0]["chapters"][2]  # urls are kept

    intro = (out / "intro.md").read_text()
    assert "folded away" not in intro
    assert intro == INTRO.replace("solutions are folded away\n  under each exercise.",
                                  "solutions are not included in this edition\n  "
                                  "(ask your teacher).")


def test_config_dir_option_and_missing_config_files(course, tmp_path):
    elsewhere = course / "config"
    elsewhere.mkdir()
    # toc paths are relative to the folder that holds the toc
    toc = (course / "_toc.yml").read_text().replace("book/", "../book/")
    (elsewhere / "_toc.yml").write_text(toc)
    (course / "_toc.yml").unlink()
    # the default config_dir now has only _config.yml: the toc is skipped without error
    written = make_student_edition(course / "book", tmp_path / "a")
    assert {p.name for p in written} >= {"_config.yml"} and "_toc.yml" not in {p.name for p in written}
    written = make_student_edition(course / "book", tmp_path / "b", config_dir=elsewhere)
    assert "_toc.yml" in {p.name for p in written} and "_config.yml" not in {p.name for p in written}
    assert_toc_resolves(tmp_path / "b")


def test_toc_entry_outside_book_dir_writes_nothing(course, tmp_path):
    toc = yaml.safe_load((course / "_toc.yml").read_text())
    toc["parts"][0]["chapters"].append({"file": "README"})
    (course / "_toc.yml").write_text(yaml.safe_dump(toc))
    with pytest.raises(ValueError, match="'README' is outside book_dir"):
        make_student_edition(course / "book", tmp_path / "student")
    assert not (tmp_path / "student").exists()


def test_bad_yaml_is_a_value_error(course, tmp_path):
    (course / "_config.yml").write_text("title: [unclosed\n")
    with pytest.raises(ValueError, match="_config.yml is not valid YAML"):
        make_student_edition(course / "book", tmp_path / "student")
    assert_one_line_error(run_cli("student-edition", tmp_path / "cli", cwd=course),
                          "not valid YAML")


@pytest.mark.parametrize("text", [
    "solutions are folded away\n  under each exercise.",
    "solutions are folded away under each exercise.",
    "solutions are folded\n   away\tunder each exercise.",
])
def test_student_page_rewrites_the_solutions_sentence(text):
    page = f"Checkers help; {text} More text.\n"
    student = student_page(page)
    assert "folded" not in student
    assert "solutions are not included in this edition" in student
    assert "(ask your teacher)." in student
    assert student.startswith("Checkers help; ") and student.endswith(" More text.\n")


def test_student_page_without_the_sentence_is_unchanged():
    for page in ("# Intro\n\nHello.\n", "solutions are folded away elsewhere.\n", ""):
        assert student_page(page) == page


def jupyter_book():
    here = Path(sys.executable).with_name("jupyter-book")
    return str(here) if here.is_file() else shutil.which("jupyter-book")


# A real build rather than only toc/config validation: it is the one check that
# the rebased toc, the bibliography path and execution "off" work together, and
# a two-page book with execution off builds in a few seconds.
@pytest.mark.skipif(jupyter_book() is None, reason="jupyter-book is not installed")
def test_jupyter_book_builds_the_student_edition(course, tmp_path):
    out = tmp_path / "student"
    make_student_edition(course / "book", out)
    proc = subprocess.run([jupyter_book(), "build", str(out), "--warningiserror"],
                          capture_output=True, text=True, timeout=120, check=False,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    html = out / "_build" / "html"
    pages = {p.relative_to(html).as_posix() for p in html.rglob("*.html")}
    assert {"intro.html", "01_chapter.html", "part/02_chapter.html", "bibliography.html"} <= pages
    text = "".join(p.read_text(encoding="utf-8") for p in html.rglob("*.html"))
    assert "A tiny course (student edition)" in text
    assert "Numba" in (html / "bibliography.html").read_text(encoding="utf-8")
    assert "SECRET" not in text and "secret_sum" not in text
    # the stub is there (syntax highlighting splits the line into spans)
    assert "NotImplementedError" in (html / "01_chapter.html").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------
# the real book

def solution_and_other_lines(nb):
    """Split a teacher's notebook into solution lines and every other line (stripped)."""
    secret, public = set(), set()
    inside = False
    for cell in nb.cells:
        head = cell.source.lstrip()
        is_md = cell.cell_type == "markdown"
        if is_md and ("{solution-start}" in head.split("\n")[0]):
            inside = True
            continue
        if is_md and "{solution-end}" in head.split("\n")[0]:
            inside = False
            continue
        has_markers = "# BEGIN SOLUTION" in cell.source
        # markdown in a solution is removed whole; so is solution code without markers
        whole_cell_secret = (is_md and (inside or "{solution}" in head.split("\n")[0])) or \
            (inside and cell.cell_type == "code" and not has_markers)
        in_markers = False
        for line in cell.source.split("\n"):
            text = line.strip()
            if cell.cell_type == "code" and text.startswith("# BEGIN SOLUTION"):
                in_markers = True
                continue
            if cell.cell_type == "code" and text.startswith("# END SOLUTION"):
                in_markers = False
                continue
            if not text:
                continue
            if whole_cell_secret or in_markers:
                secret.add(text)
            else:
                public.add(text)
    return secret, public


REAL_NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))


@pytest.mark.skipif(not REAL_NOTEBOOKS, reason="the book has no notebooks yet")
def test_real_book_student_edition(tmp_path):
    hashes = {p: digest(p) for p in BOOK.rglob("*") if p.is_file()}
    out = tmp_path / "student"
    written = make_student_edition(BOOK, out)
    assert hashes == {p: digest(p) for p in BOOK.rglob("*") if p.is_file()}
    names = {p.name for p in written}
    assert {p.name for p in REAL_NOTEBOOKS} <= names
    for teacher_path in REAL_NOTEBOOKS:
        teacher = nbformat.read(teacher_path, as_version=4)
        student = nbformat.read(tmp_path / "student" / teacher_path.name, as_version=4)
        nbformat.validate(student)
        secret, public = solution_and_other_lines(teacher)
        # solution text that appears nowhere else in the teacher's notebook must be gone
        student_lines = {line.strip() for line in all_source(student).split("\n")}
        leaked = (secret - public) & student_lines
        assert not leaked, f"{teacher_path.name}: solution lines in the student edition: {leaked}"
        for cell in student.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None

    # a book of its own: configuration, resolvable toc, bibliography
    assert {"_config.yml", "_toc.yml", "references.bib", "intro.md"} <= names
    config = yaml.safe_load((out / "_config.yml").read_text())
    assert config["title"].endswith(" (student edition)")
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["bibtex_bibfiles"] and all((out / b).is_file() for b in config["bibtex_bibfiles"])
    toc = assert_toc_resolves(out)
    assert {p.stem for p in REAL_NOTEBOOKS} <= set(toc_files(toc))
    # the intro no longer promises solutions under each exercise
    intro = " ".join((out / "intro.md").read_text().split())
    assert "folded away" not in intro
    assert "solutions are not included in this edition (ask your teacher)." in intro


def test_capstone_has_stubs_for_every_coding_exercise():
    path = BOOK / "capstone.ipynb"
    if not path.exists():
        pytest.skip("no capstone yet")
    student = student_notebook(nbformat.read(path, as_version=4), path.name)
    text = all_source(student)
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    for name in ("def coc_radius_mine", "def fista_step", "def aif_mine", "def grid_argmin_mine",
                 "def golden_section_mine", "def dfd_mine"):
        assert name in text, name
    assert code.count(STUB) == 6
    assert "check_coc_radius(coc_radius_mine)" in text
