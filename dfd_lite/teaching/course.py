"""Course tools: make the student edition of the book's notebooks.

The teacher's notebooks hold every exercise with its solution, folded in a
dropdown (sphinx-exercise). The student edition is a copy of them with the
solutions taken out:

* a gated solution - a markdown cell opening a ``{solution-start}``
  directive, the cells after it, and a markdown cell opening a
  ``{solution-end}`` directive - is removed, except code cells inside it
  that contain
  ``# BEGIN SOLUTION`` / ``# END SOLUTION`` markers: those are kept with the
  marked lines replaced by ``raise NotImplementedError  # your code here``;
* a markdown cell holding a whole ``{solution}`` directive is removed;
* marked regions in code cells outside solutions are replaced the same way;
* every output and execution count is cleared.

Command line::

    python -m dfd_lite.teaching.course student-edition OUT_DIR [--book-dir book]

The teacher's files are only read. Malformed solution blocks or markers
raise :class:`StudentEditionError` before anything is written.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import warnings
from pathlib import Path

__all__ = ["StudentEditionError", "student_notebook", "make_student_edition", "main"]

STUB = "raise NotImplementedError  # your code here"

# A directive fence (``` or :::) opening one of the solution directives.
_DIRECTIVE = re.compile(r"^[ \t]*(?:`{3,}|:{3,})[ \t]*\{(solution-start|solution-end|solution)\}",
                        re.MULTILINE)
_BEGIN = re.compile(r"^([ \t]*)#[ \t]*BEGIN SOLUTION[ \t]*$")
_END = re.compile(r"^[ \t]*#[ \t]*END SOLUTION[ \t]*$")
_SKIP_DIRS = {"_build", ".ipynb_checkpoints", ".pytest_cache"}


class StudentEditionError(ValueError):
    """A notebook's solution blocks or BEGIN/END SOLUTION markers are malformed."""


def _nbformat():
    try:
        import nbformat
    except ImportError:  # not a dependency of the solver itself
        raise ImportError("the student edition needs nbformat: pip install nbformat") from None
    return nbformat


def _directive(cell, where):
    """The solution directive that opens a markdown cell, or None.

    A directive anywhere but at the top of its cell is an error: the cell
    would mix solution and non-solution text, so it can't be removed whole.
    """
    source = cell.source
    found = [m for m in _DIRECTIVE.finditer(source)]
    if not found:
        return None
    first = found[0]
    if len(found) > 1 or source[:first.start()].strip():
        raise StudentEditionError(
            f"{where}: a {{{first.group(1)}}} directive must be the first thing in its own "
            f"markdown cell (found {len(found)} solution directive(s) in this cell)")
    return first.group(1)


def strip_markers(source: str, where: str = "code cell") -> str:
    """Replace each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` region by a stub.

    The region, markers included, becomes one line
    ``raise NotImplementedError  # your code here`` indented like the BEGIN
    marker; every other line is kept.

    Raises
    ------
    StudentEditionError
        On a BEGIN without END, an END without BEGIN, or nested BEGINs.
    """
    out, indent, begin_line = [], None, 0
    for number, line in enumerate(source.split("\n"), 1):
        begin = _BEGIN.match(line)
        if begin:
            if indent is not None:
                raise StudentEditionError(f"{where}, line {number}: '# BEGIN SOLUTION' inside "
                                          f"another one (opened on line {begin_line})")
            indent, begin_line = begin.group(1), number
        elif _END.match(line):
            if indent is None:
                raise StudentEditionError(
                    f"{where}, line {number}: '# END SOLUTION' without a '# BEGIN SOLUTION'")
            out.append(indent + STUB)
            indent = None
        elif indent is None:
            out.append(line)
    if indent is not None:
        raise StudentEditionError(f"{where}, line {begin_line}: '# BEGIN SOLUTION' has no "
                                  f"'# END SOLUTION'")
    return "\n".join(out)


def _has_markers(source):
    return any(_BEGIN.match(line) or _END.match(line) for line in source.split("\n"))


def student_notebook(nb, name: str = "notebook"):
    """The student edition of one notebook (a new object; ``nb`` is not changed).

    Parameters
    ----------
    nb : nbformat.NotebookNode
        The teacher's notebook (nbformat 4).
    name : str
        Used in error messages.

    Returns
    -------
    nbformat.NotebookNode
    """
    nbformat = _nbformat()
    nb = nbformat.from_dict(nb)  # a deep copy: the teacher's object stays as it was
    cells, open_at = [], None  # open_at: index of the cell that opened a gated solution
    for index, cell in enumerate(nb.cells):
        where = f"{name}, cell {index}"
        kind = _directive(cell, where) if cell.cell_type == "markdown" else None
        if kind == "solution-start":
            if open_at is not None:
                raise StudentEditionError(f"{where}: solution-start inside the solution "
                                          f"opened at cell {open_at} (nested solutions)")
            open_at = index
            continue
        if kind == "solution-end":
            if open_at is None:
                raise StudentEditionError(f"{where}: solution-end without a solution-start")
            open_at = None
            continue
        if kind == "solution":
            if open_at is not None:
                raise StudentEditionError(f"{where}: a {{solution}} inside the solution "
                                          f"opened at cell {open_at}")
            continue
        if cell.cell_type == "code":
            if open_at is not None and not _has_markers(cell.source):
                continue  # solution code with nothing for the student to fill in
            cell.source = strip_markers(cell.source, where)
            cell.outputs = []
            cell.execution_count = None
        elif open_at is not None:
            continue  # markdown or raw cell of a solution
        cells.append(cell)
    if open_at is not None:
        raise StudentEditionError(f"{name}, cell {open_at}: solution-start without a "
                                  f"solution-end")
    nb.cells = cells
    return nb


def _sources(book_dir: Path):
    for path in sorted(book_dir.rglob("*")):
        rel = path.relative_to(book_dir)
        if path.is_file() and path.suffix in (".ipynb", ".md") and \
                not _SKIP_DIRS.intersection(rel.parts[:-1]):
            yield path, rel


def make_student_edition(book_dir, out_dir):
    """Write the student edition of every notebook in ``book_dir`` to ``out_dir``.

    Notebooks (``.ipynb``) are converted with :func:`student_notebook`;
    Markdown pages (``.md``) are copied as they are. Sub-folders are kept;
    ``_build`` and checkpoint folders are skipped. Every notebook is
    converted before anything is written, so a malformed one leaves
    ``out_dir`` untouched.

    Parameters
    ----------
    book_dir : str or Path
        The folder with the teacher's notebooks (e.g. ``book``).
    out_dir : str or Path
        Where to write; created if needed. Must not be ``book_dir`` or inside it.

    Returns
    -------
    list of Path
        The files written.
    """
    nbformat = _nbformat()
    book_dir, out_dir = Path(book_dir), Path(out_dir)
    if not book_dir.is_dir():
        raise ValueError(f"book_dir {str(book_dir)!r} is not a folder")
    book_abs, out_abs = book_dir.resolve(), out_dir.resolve()
    if out_abs == book_abs or book_abs in out_abs.parents:
        raise ValueError(f"out_dir {str(out_dir)!r} must be outside book_dir "
                         f"{str(book_dir)!r}: the teacher's notebooks must not be overwritten")
    todo = []
    for path, rel in _sources(book_dir):
        if path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            todo.append((rel, student_notebook(nb, str(path))))
        else:
            if _DIRECTIVE.search(path.read_text(encoding="utf-8")):
                warnings.warn(f"{path} has solution directives; Markdown pages are copied "
                              f"unchanged, so the student edition shows them", stacklevel=2)
            todo.append((rel, path))
    written = []
    for rel, item in todo:
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(item, Path):
            shutil.copyfile(item, target)
        else:
            nbformat.validate(item)
            nbformat.write(item, target)
        written.append(target)
    return written


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m dfd_lite.teaching.course",
                                     description="Course tools for the dfd_lite book.")
    sub = parser.add_subparsers(dest="command", required=True)
    se = sub.add_parser("student-edition",
                        help="copy the book's notebooks without their solutions")
    se.add_argument("out_dir", help="folder to write the student notebooks to")
    se.add_argument("--book-dir", default="book",
                    help="folder with the teacher's notebooks (default: book)")
    args = parser.parse_args(argv)
    try:
        written = make_student_edition(args.book_dir, args.out_dir)
    except (StudentEditionError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    notebooks = sum(p.suffix == ".ipynb" for p in written)
    print(f"wrote {notebooks} student notebooks and {len(written) - notebooks} other pages "
          f"to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
