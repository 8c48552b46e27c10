"""The student edition: solutions out, stubs in, outputs cleared, teacher's files untouched."""

import hashlib
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from dfd_lite.teaching.course import (STUB, StudentEditionError, make_student_edition, strip_markers,
                             student_notebook)

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
    exec(compile(source, "<stub>", "exec"), namespace)
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


def test_cli(book, tmp_path):
    out = tmp_path / "cli_out"
    proc = subprocess.run([sys.executable, "-m", "dfd_lite.teaching.course", "student-edition", str(out),
                           "--book-dir", str(book)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 2 student notebooks and 1 other pages" in proc.stdout
    assert (out / "part" / "02_chapter.ipynb").is_file()


def test_cli_default_book_dir_and_error_status(book, tmp_path):
    # default --book-dir is ./book
    proc = subprocess.run([sys.executable, "-m", "dfd_lite.teaching.course", "student-edition", "out"],
                          capture_output=True, text=True, cwd=book.parent)
    assert proc.returncode == 0, proc.stderr
    assert (book.parent / "out" / "01_chapter.ipynb").is_file()
    nbformat.write(new_notebook(cells=[new_code_cell("# BEGIN SOLUTION")]), book / "bad.ipynb")
    proc = subprocess.run([sys.executable, "-m", "dfd_lite.teaching.course", "student-edition", "out2"],
                          capture_output=True, text=True, cwd=book.parent)
    assert proc.returncode == 1
    assert "error:" in proc.stderr and "BEGIN SOLUTION" in proc.stderr


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
    written = make_student_edition(BOOK, tmp_path / "student")
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
