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

The student folder builds as a book of its own (``jupyter-book build
OUT_DIR``). Its layout is the teacher's ``book_dir`` flattened into
``OUT_DIR``, with the book's configuration beside the pages::

    OUT_DIR/
        _config.yml        the teacher's, retitled, execution off, paths rebased
        _toc.yml           the teacher's, with ``book/x`` entries rewritten to ``x``
        intro.md           Markdown pages (the solutions sentence rewritten)
        01_chapter.ipynb   student notebooks
        references.bib     bibliography, images and other resources
        part/...           sub-folders of ``book_dir`` are kept

Command line::

    python -m dfd_lite.teaching.course student-edition OUT_DIR [--book-dir book] [--force]
    python -m dfd_lite.teaching.course grade SUBMISSIONS_DIR --out grades.csv

(``grade`` is :mod:`dfd_lite.teaching.grade`.)
        [--config-dir DIR] [--force]

The teacher's files are only read. Malformed solution blocks or markers,
a non-empty ``OUT_DIR`` (unless forced) and configuration entries outside
``book_dir`` raise before anything is written.
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import sys
import warnings
from pathlib import Path

from . import grade

__all__ = ["StudentEditionError", "main", "make_student_edition", "student_notebook", "student_page"]

STUB = "raise NotImplementedError  # your code here"

# A directive fence (``` or :::) opening one of the solution directives.
_DIRECTIVE = re.compile(r"^[ \t]*(?:`{3,}|:{3,})[ \t]*\{(solution-start|solution-end|solution)\}",
                        re.MULTILINE)
_BEGIN = re.compile(r"^([ \t]*)#[ \t]*BEGIN SOLUTION[ \t]*$")
_END = re.compile(r"^[ \t]*#[ \t]*END SOLUTION[ \t]*$")
_SKIP_DIRS = {"_build", ".ipynb_checkpoints", ".pytest_cache"}
# The files of book_dir copied besides the notebooks: pages, the bibliography and
# images. A list rather than "everything else" because a book folder may also hold
# files that are not for students (helper scripts with answers, data dumps).
RESOURCE_SUFFIXES = frozenset({".md", ".bib", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"})
# The book's configuration files, in config_dir (the folder above book_dir).
_CONFIG, _TOC = "_config.yml", "_toc.yml"
# Keys of _toc.yml whose values are paths relative to config_dir.
_TOC_PATH_KEYS = ("root", "file", "glob")

# book/intro.md, Conventions: "solutions are folded away\n  under each exercise."
# Matched across any line break and indentation; the gap before "under" is reused
# so that the rewritten sentence keeps the page's line wrapping.
_FOLDED_AWAY = re.compile(r"solutions\s+are\s+folded\s+away(?P<gap>\s+)under\s+each\s+exercise\.")
_NOT_INCLUDED = r"solutions are not included in this edition\g<gap>(ask your teacher)."


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


def student_page(text: str) -> str:
    """The student edition of a Markdown page's text.

    The intro's sentence saying that "solutions are folded away under each
    exercise" becomes "solutions are not included in this edition (ask your
    teacher)". A page without that sentence is returned unchanged.
    """
    return _FOLDED_AWAY.sub(_NOT_INCLUDED, text)


def _sources(book_dir: Path):
    for path in sorted(book_dir.rglob("*")):
        rel = path.relative_to(book_dir)
        suffix = path.suffix.lower()
        if path.is_file() and (suffix == ".ipynb" or suffix in RESOURCE_SUFFIXES) and \
                not _SKIP_DIRS.intersection(rel.parts[:-1]):
            yield path, rel


def _yaml():
    try:
        import yaml
    except ImportError:  # installed with jupyter-book, not a dependency of the solver
        raise ImportError("the student edition's _config.yml and _toc.yml need PyYAML: "
                          "pip install pyyaml") from None
    return yaml


def _read_yaml(path: Path) -> dict:
    yaml = _yaml()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):  # bad file content, reported like any bad input
        raise ValueError(  # noqa: TRY004
            f"{path} must hold a YAML mapping, not {type(data).__name__}")
    return data


def _dump_yaml(data: dict, source: Path) -> str:
    header = (f"# The student edition of the teacher's {source.name}, written by\n"
              f"# python -m dfd_lite.teaching.course student-edition: edit the teacher's file\n"
              f"# and make the edition again rather than editing this one.\n")
    return header + _yaml().safe_dump(data, sort_keys=False, allow_unicode=True)


def _rebaser(config_dir: Path, book_dir: Path):
    """A function turning a config path (relative to ``config_dir``) into one relative to
    ``book_dir``, which is the student folder's root; paths outside ``book_dir`` raise."""
    book_abs = book_dir.resolve()

    def rebase(entry: str, where: str) -> str:
        target = (config_dir / entry).resolve()
        try:
            return target.relative_to(book_abs).as_posix()
        except ValueError:
            raise ValueError(f"{where}: {entry!r} is outside book_dir {str(book_dir)!r}, and "
                             f"the student edition holds only book_dir's files") from None
    return rebase


def _student_toc(node, rebase, where):
    """The toc with every page path (``root``, ``file``, ``glob``) rebased; urls are kept."""
    if isinstance(node, dict):
        return {key: rebase(value, where) if key in _TOC_PATH_KEYS and isinstance(value, str)
                else _student_toc(value, rebase, where) for key, value in node.items()}
    if isinstance(node, list):
        return [_student_toc(item, rebase, where) for item in node]
    return node


def _student_config(config: dict, rebase, where) -> dict:
    """The teacher's ``_config.yml`` data made fit for the student folder (a new dict)."""
    config = copy.deepcopy(config)
    title = config.get("title")
    config["title"] = f"{title} (student edition)" if title else "Student edition"
    # Execution off: the student notebooks hold `raise NotImplementedError` stubs,
    # which would fail a build that runs them (the teacher's book runs with
    # allow_errors false), and a build should not need the solver's data or a GPU.
    # The pages are shown as they are, without outputs - which is what students get.
    execute = config.get("execute")
    config["execute"] = {**(execute if isinstance(execute, dict) else {}),
                         "execute_notebooks": "off"}
    # Figures numbered from cell metadata (myst-nb's `figure`) exist only in executed
    # outputs, which the student edition clears: the text's references to them
    # cannot resolve there, and would fail a strict build. The teacher's strict
    # build still checks every reference.
    sphinx = config.get("sphinx") if isinstance(config.get("sphinx"), dict) else {}
    sphinx_config = sphinx.get("config") if isinstance(sphinx.get("config"), dict) else {}
    suppressed = list(sphinx_config.get("suppress_warnings") or [])
    sphinx_config["suppress_warnings"] = suppressed + [w for w in ("ref.ref", "ref.numref")
                                                       if w not in suppressed]
    config["sphinx"] = {**sphinx, "config": sphinx_config}
    bibfiles = config.get("bibtex_bibfiles")
    if isinstance(bibfiles, str):
        bibfiles = [bibfiles]
    if bibfiles:
        config["bibtex_bibfiles"] = [rebase(path, where) for path in bibfiles]
    html = config.get("html") if isinstance(config.get("html"), dict) else {}
    for parent, key in ((config, "logo"), (html, "favicon")):
        if isinstance(parent.get(key), str) and parent[key]:
            parent[key] = rebase(parent[key], where)
    # The repository and launch links would lead to the teacher's notebooks, solutions
    # included, at paths that no longer match the student folder: drop them.
    config.pop("repository", None)
    config.pop("launch_buttons", None)
    for key in ("use_repository_button", "use_issues_button", "use_edit_page_button"):
        if key in html:
            html[key] = False
    return config


def _book_files(book_dir: Path, config_dir: Path):
    """``{name: text}`` of the student ``_config.yml`` and ``_toc.yml``; missing ones are
    skipped (a folder of notebooks need not be a book)."""
    rebase, files = _rebaser(config_dir, book_dir), {}
    config_path, toc_path = config_dir / _CONFIG, config_dir / _TOC
    if config_path.is_file():
        config = _student_config(_read_yaml(config_path), rebase, str(config_path))
        files[_CONFIG] = _dump_yaml(config, config_path)
    if toc_path.is_file():
        toc = _student_toc(_read_yaml(toc_path), rebase, str(toc_path))
        files[_TOC] = _dump_yaml(toc, toc_path)
    return files


def _check_out_dir(book_dir: Path, out_dir: Path, config_dir: Path, force: bool):
    """Refuse an ``out_dir`` where writing could touch the teacher's files or the
    student's work."""
    book_abs, out_abs = book_dir.resolve(), out_dir.resolve()
    if out_abs == book_abs or book_abs in out_abs.parents:
        raise ValueError(f"out_dir {str(out_dir)!r} must be outside book_dir "
                         f"{str(book_dir)!r}: the teacher's notebooks must not be overwritten")
    # A folder above book_dir (config_dir, usually) would receive the student
    # _config.yml and _toc.yml in place of the teacher's.
    if out_abs in book_abs.parents or out_abs == config_dir.resolve():
        raise ValueError(f"out_dir {str(out_dir)!r} must not hold book_dir {str(book_dir)!r} "
                         f"or the book's configuration {str(config_dir)!r}: the teacher's "
                         f"{_CONFIG} and {_TOC} must not be overwritten")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {str(out_dir)!r} is not a folder")
    # A student edition already there may hold a student's answers.
    if not force and out_dir.is_dir() and any(out_dir.iterdir()):
        raise ValueError(f"out_dir {str(out_dir)!r} is not empty; pass force=True "
                         f"(command line: --force) to overwrite the files there")


def make_student_edition(book_dir, out_dir, *, force: bool = False, config_dir=None):
    """Write the student edition of the book in ``book_dir`` to ``out_dir``.

    Notebooks (``.ipynb``) are converted with :func:`student_notebook`;
    Markdown pages (``.md``) go through :func:`student_page`; the
    bibliography, images and the other ``RESOURCE_SUFFIXES`` files are
    copied. Sub-folders are kept; ``_build`` and checkpoint folders are
    skipped. The book's ``_config.yml`` and ``_toc.yml`` in ``config_dir``
    are written to ``out_dir`` with their paths made relative to it, the
    title marked "(student edition)", notebook execution off and the links
    to the teacher's repository removed, so that ``jupyter-book build
    out_dir`` builds the student book. Everything is converted and checked
    before anything is written, so an error leaves ``out_dir`` untouched.

    Parameters
    ----------
    book_dir : str or Path
        The folder with the teacher's notebooks (e.g. ``book``).
    out_dir : str or Path
        Where to write; created if needed. Must be empty unless ``force``,
        and must not be ``book_dir``, inside it, or above it.
    force : bool
        Write into a non-empty ``out_dir``, overwriting files of the same
        names; other files there are left as they are.
    config_dir : str or Path, optional
        The folder with the book's ``_config.yml`` and ``_toc.yml``, whose
        paths are relative to it (default: the folder above ``book_dir``).
        A missing file is skipped.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    StudentEditionError
        On malformed solution blocks or markers in a notebook.
    ValueError
        On a missing ``book_dir``, an ``out_dir`` that is refused (see
        above), or a configuration path outside ``book_dir``.
    """
    nbformat = _nbformat()
    book_dir, out_dir = Path(book_dir), Path(out_dir)
    if not book_dir.is_dir():
        raise ValueError(f"book_dir {str(book_dir)!r} is not a folder")
    # resolve() first: the parent of a relative "." is "." itself
    config_dir = book_dir.resolve().parent if config_dir is None else Path(config_dir)
    _check_out_dir(book_dir, out_dir, config_dir, force)
    todo = []  # (path relative to out_dir, notebook | text | file to copy)
    for path, rel in _sources(book_dir):
        if path.suffix.lower() == ".ipynb":
            nb = student_notebook(nbformat.read(path, as_version=4), str(path))
            nbformat.validate(nb)
            todo.append((rel, nb))
        elif path.suffix.lower() == ".md":
            text = path.read_bytes().decode("utf-8")  # bytes: line endings are kept
            if _DIRECTIVE.search(text):
                warnings.warn(f"{path} has solution directives; Markdown pages are copied "
                              f"with them, so the student edition shows them", stacklevel=2)
            todo.append((rel, student_page(text)))
        else:
            todo.append((rel, path))
    todo += [(Path(name), text) for name, text in _book_files(book_dir, config_dir).items()]
    written = []
    for rel, item in todo:
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        # A new file, never writing through a link left in a forced out_dir.
        target.unlink(missing_ok=True)
        if isinstance(item, Path):
            shutil.copyfile(item, target)
        elif isinstance(item, str):
            target.write_bytes(item.encode("utf-8"))
        else:
            nbformat.write(item, target)
        written.append(target)
    return written


def main(argv=None):
    """Command-line entry point; returns the exit status (2 for bad input)."""
    parser = argparse.ArgumentParser(prog="python -m dfd_lite.teaching.course",
                                     description="Course tools for the dfd_lite book.")
    sub = parser.add_subparsers(dest="command", required=True)
    se = sub.add_parser("student-edition",
                        help="copy the book without its solutions, ready to build")
    se.add_argument("out_dir", help="folder to write the student edition to")
    se.add_argument("--book-dir", default="book",
                    help="folder with the teacher's notebooks (default: book)")
    se.add_argument("--config-dir", default=None,
                    help="folder with the book's _config.yml and _toc.yml "
                         "(default: the folder above --book-dir)")
    se.add_argument("--force", action="store_true",
                    help="write into a non-empty OUT_DIR, overwriting its files")
    gr = sub.add_parser("grade", help="run the students' notebooks and grade them with the "
                                      "official checks on fresh cases")
    grade.add_arguments(gr)
    args = parser.parse_args(argv)
    if args.command == "grade":
        return grade.run_grade(args)
    try:
        written = make_student_edition(args.book_dir, args.out_dir, force=args.force,
                                       config_dir=args.config_dir)
    except (StudentEditionError, ValueError) as exc:
        # one line, like argparse's own errors (which also exit with 2)
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    notebooks = sum(p.suffix == ".ipynb" for p in written)
    print(f"wrote {notebooks} student notebooks and {len(written) - notebooks} other files "
          f"to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
