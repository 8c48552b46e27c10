"""Grade a class's notebooks: run each one, then run the official checks on its functions.

For every submitted notebook the grader

1. reads it (a malformed file gets a row saying so);
2. finds its assignment (the book notebook it is a copy of) from its file
   name, or else from the exercise functions it defines;
3. scans the student's code (AST) for calls to the library function an
   exercise asked them to write, directly or through their own helpers,
   and for code that changes a module's attributes (which could fake a
   check); either zeroes that exercise and is reported as a flag;
4. runs it top to bottom in a fresh kernel, in a scratch folder, with a
   per-notebook time limit; cells that fail are recorded and the run goes
   on, a notebook past its limit is interrupted, a kernel that dies is
   reported;
5. takes the exercise functions out of the kernel (``cloudpickle``) and
   runs the **official checks** of :mod:`dfd_lite.teaching.checks` on them
   in a separate Python process, on fresh random cases drawn from the
   run's seed, so a notebook that prints "passed" earns nothing by it and
   cannot change what the checks compare against. The capstone's solver
   is run on a freshly seeded noisy stack and graded on its depth RMSE.

The result is one row per student, notebook and exercise (:class:`Row`),
written to a CSV, and a short summary.

Command line::

    python -m dfd_lite.teaching.course grade SUBMISSIONS_DIR --out grades.csv

``SUBMISSIONS_DIR`` holds one notebook per student (``alice_capstone.ipynb``;
the student is the file name before the assignment's name) or one folder
per student (``alice/capstone.ipynb``).
"""

from __future__ import annotations

import ast
import csv
import json
import math
import os
import pickle
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

__all__ = ["Exercise", "ASSIGNMENTS", "Row", "code_cells", "notebook_definitions", "grade_notebook",
           "grade_folder", "write_csv", "summary", "main"]

@dataclass(frozen=True)
class Exercise:
    """One graded coding exercise of an assignment.

    Attributes
    ----------
    label : str
        The exercise's label in the book, e.g. ``"capstone-coc"``.
    function : str
        The name of the function the student writes.
    check : str
        The :mod:`dfd_lite.teaching.checks` function that grades it.
    points : int
    forbidden : tuple of str
        Names of library functions (or methods) the student's function must
        not call: the ones the exercise asks them to write.
    """

    label: str
    function: str
    check: str
    points: int
    forbidden: tuple = ()


_GOLDEN = ("golden_section_search", "golden_section_refine", "minimize_scalar", "golden",
           "brent", "fminbound")
_CAPSTONE = (
    Exercise("capstone-coc", "coc_radius_mine", "check_coc_radius", 10, ("coc_radius",)),
    Exercise("capstone-fista-step", "fista_step", "check_fista_step", 15,
             ("fista", "run_fista", "solve")),
    Exercise("capstone-fista-loop", "aif_mine", "check_aif_loop", 10,
             ("fista", "run_fista", "solve")),
    Exercise("capstone-grid", "grid_argmin_mine", "check_grid_argmin", 10,
             ("depth_step", "grid_search", "solve")),
    Exercise("capstone-golden", "golden_section_mine", "check_golden_section", 15, _GOLDEN),
    Exercise("capstone-dfd", "dfd_mine", "check_dfd_solver", 20,
             ("solve", "depth_step", "fista", "run_fista")),
)

#: The graded exercises of every assignment, keyed by the book notebook's file stem.
#: Chapter 11's exercise is a CUDA kernel, which cannot be taken out of a kernel
#: process and run elsewhere; it is checked in its notebook only.
ASSIGNMENTS = {
    "capstone": _CAPSTONE,
    "01_focal_stacks": (Exercise("ch1-dff", "depth_from_focus", "check_depth_from_focus", 10),),
    "02_thin_lens": (Exercise("ch2-coc-code", "coc_radius_mine", "check_coc_radius", 10,
                              ("coc_radius",)),),
    "03_forward_model": (
        Exercise("ch3-gauss-code", "gaussian_weights_mine", "check_gaussian_weights", 10,
                 ("gaussian_weights", "psf_weights", "gaussian")),
        Exercise("ch3-adjoint-code", "adjoint_mine", "check_adjoint", 10,
                 ("adjoint", "rmatvec")),
    ),
    "04_aif": (
        Exercise("ch4-fista-step", "fista_step", "check_fista_step", 10,
                 ("fista", "run_fista", "solve")),
        Exercise("ch4-power-iteration", "power_iteration", "check_power_iteration", 10,
                 ("lipschitz_constant", "eigsh", "svds", "eigvalsh", "eigh", "svd")),
    ),
    "05_depth": (
        Exercise("ch5-grid-argmin", "grid_argmin", "check_grid_argmin", 10,
                 ("depth_step", "grid_search")),
        Exercise("ch5-golden-code", "golden_section", "check_golden_section", 10, _GOLDEN),
    ),
    "06_alternating": (Exercise("ch6-metrics-code", "depth_metrics_mine",
                                "check_depth_metrics", 10, ("depth_metrics",)),),
    "08_real_scenes": (Exercise("ch8-confidence", "loss_confidence", "check_loss_confidence",
                                10),),
    "09_real_optics": (Exercise("ch9-rows", "disc_row_areas", "check_disc_row_areas", 10,
                                ("psf_weights", "disc_psf", "disc_weights")),),
    "07_noise": (Exercise("ch7-box-code", "box_average", "check_box_average", 10,
                          ("uniform_filter", "correlate", "convolve", "convolve2d",
                           "fftconvolve", "box_mean", "guided_mean")),),
}

# What the grader writes for problems that concern the whole notebook.
NOTEBOOK_ROW = "(notebook)"


@dataclass
class Row:
    """One line of the grade table."""

    student: str
    notebook: str
    assignment: str
    exercise: str
    function: str = ""
    passed: bool = False
    points: int = 0
    max_points: int = 0
    flag: str = ""
    message: str = ""
    rmse: float | None = None


# ---------------------------------------------------------------------------
# Reading a submission: assignment, student, and the AST scan
# ---------------------------------------------------------------------------

def code_cells(nb):
    """The code cells' sources, IPython magics and shell lines made ``pass`` (valid Python)."""
    sources = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        lines = []
        for line in cell.source.split("\n"):
            body = line.lstrip()
            if body.startswith(("%", "!")):  # keep the indentation: it may be an if's body
                line = line[:len(line) - len(body)] + "pass  # " + body
            lines.append(line)
        sources.append("\n".join(lines))
    return sources


def notebook_definitions(nb):
    """The sources of a notebook's imports and top-level functions, in order.

    Running them defines the notebook's functions without running any of its
    computations or plots (``bench/capstone.py``, the tests).
    """
    kept = []
    for tree in _parse(code_cells(nb)):
        kept += [ast.unparse(node) for node in tree.body
                 if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef))]
    return kept


def _parse(sources):
    """One module per cell; a cell that is not valid Python is skipped (it fails when run)."""
    trees = []
    for source in sources:
        try:
            trees.append(ast.parse(source))
        except SyntaxError:
            continue
    return trees


def _defined_functions(trees):
    """Top-level function definitions by name (the last definition wins, as when run)."""
    found = {}
    for tree in trees:
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found[node.name] = node
    return found


def _called_names(node):
    """Every name a function calls: ``f(...)`` gives ``f``, ``a.b.f(...)`` gives ``f``."""
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            if isinstance(func, ast.Name):
                names.add(func.id)
            elif isinstance(func, ast.Attribute):
                names.add(func.attr)
    return names


def _imported_aliases(trees):
    """``from x import a as b`` maps ``b`` to ``a``, so a renamed import is still found."""
    aliases = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    aliases[alias.asname or alias.name] = alias.name
    return aliases


def _module_names(trees):
    """Names bound to modules by ``import x`` / ``import x as y`` / ``from p import module``."""
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.update(a.asname or a.name for a in node.names
                             if a.name in ("checks", "teaching", "grade"))
    return names


def _tampering(trees):
    """Code that changes a module's attributes or imports the grader: it could fake a check."""
    modules = _module_names(trees)
    for tree in trees:
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                root = target
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(target, ast.Attribute) and isinstance(root, ast.Name) \
                        and root.id in modules:
                    return f"assigns to the module attribute {ast.unparse(target)}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id == "setattr":
                return "calls setattr()"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [getattr(node, "module", None) or ""] + [a.name for a in node.names]
                if any("teaching.grade" in n or n == "grade" for n in names):
                    return "imports the grader"
    return ""


def forbidden_calls(exercise: Exercise, functions, aliases):
    """The forbidden library functions ``exercise.function`` calls, itself or through helpers.

    Parameters
    ----------
    exercise : Exercise
    functions : dict of str to ast.FunctionDef
        The notebook's top-level functions.
    aliases : dict of str to str
        Imported names and what they stand for.

    Returns
    -------
    list of str, sorted
    """
    forbidden = set(exercise.forbidden)
    seen, todo, found = set(), [exercise.function], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        for called in _called_names(functions[name]):
            original = aliases.get(called, called)
            if original in forbidden or called in forbidden:
                found.add(original)
            if called in functions and called != exercise.function:
                todo.append(called)  # the student's own helper: follow it
    return sorted(found)


def identify(path: Path, functions=()) -> str | None:
    """The assignment a notebook is a copy of: by file name, else by the functions it defines."""
    stem = path.stem.lower()
    by_name = [key for key in ASSIGNMENTS if key in stem]
    if by_name:
        return max(by_name, key=len)
    if not functions:
        return None
    overlap = {key: sum(ex.function in functions for ex in exercises)
               for key, exercises in ASSIGNMENTS.items()}
    best = max(overlap, key=lambda key: (overlap[key], len(ASSIGNMENTS[key])))
    return best if overlap[best] else None


def student_name(path: Path, root: Path, assignment: str | None) -> str:
    """``alice/capstone.ipynb`` -> ``alice``; ``alice_capstone.ipynb`` -> ``alice``."""
    rel = path.relative_to(root)
    if len(rel.parts) > 1:
        return rel.parts[0]
    stem = path.stem
    if assignment and assignment in stem.lower():
        cut = stem.lower().index(assignment)
        stem = (stem[:cut] + stem[cut + len(assignment):]).strip("_-. ")
    return stem or path.stem


# ---------------------------------------------------------------------------
# Running a notebook and taking its functions out
# ---------------------------------------------------------------------------

_EXTRACT = """
import cloudpickle as _grader_cloudpickle
_grader_functions = {{}}
for _grader_name in {names!r}:
    _grader_object = globals().get(_grader_name)
    if callable(_grader_object):
        try:
            _grader_functions[_grader_name] = _grader_cloudpickle.dumps(_grader_object)
        except Exception as _grader_error:
            _grader_functions[_grader_name] = repr(_grader_error)
with open({path!r}, "wb") as _grader_file:
    _grader_cloudpickle.dump(_grader_functions, _grader_file)
"""


def _first_error(cell):
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"[:300]
    return None


def run_notebook(nb, names, pickle_path: Path, *, timeout: float, workdir: Path):
    """Run ``nb`` in a fresh kernel, then pickle the functions ``names`` to ``pickle_path``.

    Returns
    -------
    list of str
        What went wrong while running, one line each (empty when every cell ran).
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    problems = []
    client = NotebookClient(nb, timeout=max(1, int(timeout)), kernel_name="python3",
                            allow_errors=True, interrupt_on_timeout=True,
                            resources={"metadata": {"path": str(workdir)}})
    deadline = time.monotonic() + timeout
    extract = nbformat.v4.new_code_cell(_EXTRACT.format(names=list(names),
                                                        path=str(pickle_path)))
    try:
        with client.setup_kernel(env=_kernel_env()):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    problems.append(f"timed out: stopped before cell {index} (limit "
                                    f"{timeout:g} s)")
                    break
                client.timeout = max(1, math.ceil(left))
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    problems.append(f"timed out in cell {index} (limit {timeout:g} s)")
                    break
                error = _first_error(cell)
                if error and "KeyboardInterrupt" in error:
                    problems.append(f"timed out in cell {index} (limit {timeout:g} s)")
                    break
                if error:
                    problems.append(f"cell {index} raised {error}")
            client.timeout = 60  # taking the functions out is quick
            nb.cells.append(extract)
            client.execute_cell(extract, len(nb.cells) - 1)
    except DeadKernelError as exc:
        problems.append(f"crashed: the kernel died ({str(exc).splitlines()[0][:200]})")
    except CellTimeoutError:
        problems.append("timed out while the grader took the functions out")
    except Exception as exc:  # noqa: BLE001 - whatever happens, the class's run goes on
        problems.append(f"crashed: {type(exc).__name__}: {str(exc)[:200]}")
    return problems


def _kernel_env():
    env = dict(os.environ)
    env.setdefault("MPLBACKEND", "Agg")
    return env


# ---------------------------------------------------------------------------
# Checking the functions in a separate process
# ---------------------------------------------------------------------------

def _check_one(exercise: Exercise, fn, seed: int) -> dict:
    """Run one exercise's check on fresh cases; the result as a JSON-able dict."""
    from . import checks

    result = getattr(checks, exercise.check)(fn, seed=seed, verbose=False)
    return {"passed": result.passed, "message": result.message, **result.measured}


def _checker_process(argv):
    """``python -m dfd_lite.teaching.grade --check PICKLE ASSIGNMENT SEED OUT [SKIP...]``.

    Appends one JSON line per exercise to OUT as soon as it is graded, so a
    check that hangs loses only itself (the parent restarts after it).
    """
    import cloudpickle  # noqa: F401 - unpickling the functions needs it importable

    pickle_path, assignment, seed, out_path, *skip = argv
    with open(pickle_path, "rb") as handle:
        functions = pickle.load(handle)
    for exercise in ASSIGNMENTS[assignment]:
        if exercise.label in skip:
            continue
        blob = functions.get(exercise.function)
        if blob is None:
            outcome = {"passed": False, "message": f"{exercise.function} is not defined (or "
                                                   f"the cell defining it failed)"}
        elif isinstance(blob, str):
            outcome = {"passed": False, "message": f"{exercise.function} could not be taken "
                                                   f"out of the notebook: {blob}"}
        else:
            try:
                fn = pickle.loads(blob)
            except Exception as exc:  # noqa: BLE001
                outcome = {"passed": False, "message": f"could not load {exercise.function}: "
                                                       f"{type(exc).__name__}: {exc}"}
            else:
                outcome = _check_one(exercise, fn, int(seed))
        outcome["label"] = exercise.label
        with open(out_path, "a", encoding="utf-8") as out:
            out.write(json.dumps(outcome) + "\n")


def run_checks(pickle_path: Path, assignment: str, seed: int, *, timeout: float) -> dict:
    """Every exercise's check result by label; a check over ``timeout`` seconds fails alone."""
    results = {}
    labels = [ex.label for ex in ASSIGNMENTS[assignment]]
    out_path = pickle_path.with_suffix(".jsonl")
    while len(results) < len(labels):
        out_path.unlink(missing_ok=True)
        command = [sys.executable, "-m", "dfd_lite.teaching.grade", "--check",
                   str(pickle_path), assignment, str(seed), str(out_path), *results]
        try:
            finished = subprocess.run(command, timeout=timeout, capture_output=True, text=True,
                                      check=False, env=_kernel_env())
        except subprocess.TimeoutExpired:
            finished = None
        if out_path.exists():
            for line in out_path.read_text(encoding="utf-8").splitlines():
                outcome = json.loads(line)
                results[outcome.pop("label")] = outcome
        pending = [label for label in labels if label not in results]
        if pending and finished is None:
            results[pending[0]] = {"passed": False,
                                   "message": f"the check ran over {timeout:g} s (an endless "
                                              f"loop?)"}
        elif pending:  # the checker itself failed: report it on every exercise left
            reason = (finished.stderr.strip().splitlines() or ["no output"])[-1][:300]
            for label in pending:
                results[label] = {"passed": False, "message": f"the checker failed: {reason}"}
    return results


# ---------------------------------------------------------------------------
# Grading one notebook, a folder, and reporting
# ---------------------------------------------------------------------------

def grade_notebook(path, *, root=None, seed: int, timeout: float = 300.0,
                   check_timeout: float = 120.0):
    """Grade one submitted notebook.

    Parameters
    ----------
    path : str or Path
        The ``.ipynb`` file.
    root : str or Path, optional
        The submissions folder (names the student); default ``path``'s folder.
    seed : int
        Draws the checks' fresh cases and the capstone's noise.
    timeout : float
        Seconds the whole notebook may run.
    check_timeout : float
        Seconds the checks of one notebook may run.

    Returns
    -------
    list of Row
        One per exercise of its assignment, plus a ``"(notebook)"`` row when
        the notebook is malformed, of no known assignment, or had cells that
        failed, timed out or crashed.
    """
    import nbformat

    path = Path(path)
    root = Path(root) if root is not None else path.parent
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        assignment = identify(path)
        return [Row(student_name(path, root, assignment), path.name, assignment or "",
                    NOTEBOOK_ROW,
                    flag="malformed", message=f"not a readable notebook: "
                                              f"{type(exc).__name__}: {str(exc)[:200]}")]
    trees = _parse(code_cells(nb))
    functions = _defined_functions(trees)
    assignment = identify(path, functions)
    student = student_name(path, root, assignment)
    if assignment is None:
        return [Row(student, path.name, "", NOTEBOOK_ROW, flag="unknown assignment",
                    message="defines none of the graded functions and its name matches no "
                            "assignment")]
    exercises = ASSIGNMENTS[assignment]
    aliases = _imported_aliases(trees)
    tampering = _tampering(trees)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dfd_grade_") as scratch:
        scratch = Path(scratch)
        pickle_path = scratch / "functions.pkl"
        problems = run_notebook(nb, [ex.function for ex in exercises], pickle_path,
                                timeout=timeout, workdir=scratch)
        if problems:
            worst = next((p for p in problems if p.startswith(("crashed", "timed out"))), "")
            rows.append(Row(student, path.name, assignment, NOTEBOOK_ROW,
                            flag=worst.split(":")[0].split(" in ")[0] if worst else "cell errors",
                            message="; ".join(problems)[:1000]))
        results = run_checks(pickle_path, assignment, seed, timeout=check_timeout) \
            if pickle_path.exists() else {}
    for exercise in exercises:
        outcome = results.get(exercise.label,
                              {"passed": False, "message": "not graded: the notebook did not "
                                                           "finish (see its notebook row)"})
        flags = []
        calls = forbidden_calls(exercise, functions, aliases)
        if calls:
            flags.append(f"calls {', '.join(calls)}, which the exercise asks you to write")
        if tampering:
            flags.append(f"the notebook {tampering}")
        passed = bool(outcome["passed"]) and not flags
        rows.append(Row(student, path.name, assignment, exercise.label, exercise.function,
                        passed=passed, points=exercise.points if passed else 0,
                        max_points=exercise.points, flag="; ".join(flags),
                        message=outcome["message"], rmse=outcome.get("rmse")))
    return rows


def grade_folder(folder, *, seed: int | None = None, timeout: float = 300.0,
                 check_timeout: float = 120.0, progress=None):
    """Grade every ``.ipynb`` under ``folder`` (checkpoint folders skipped).

    Returns
    -------
    (list of Row, int)
        The rows and the seed used (drawn at random when ``seed`` is None).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"submissions folder {str(folder)!r} is not a folder")
    seed = secrets.randbelow(2 ** 31) if seed is None else int(seed)
    paths = [p for p in sorted(folder.rglob("*.ipynb"))
             if ".ipynb_checkpoints" not in p.relative_to(folder).parts]
    rows = []
    for number, path in enumerate(paths, 1):
        if progress is not None:
            progress(f"[{number}/{len(paths)}] {path.relative_to(folder)}")
        rows.extend(grade_notebook(path, root=folder, seed=seed, timeout=timeout,
                                   check_timeout=check_timeout))
    return rows, seed


def write_csv(rows, out, *, seed: int):
    """Write the rows to ``out`` (CSV, one header line), with the seed in a column."""
    names = [f.name for f in fields(Row)] + ["seed"]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for row in rows:
            record = asdict(row)
            record["rmse"] = "" if row.rmse is None else f"{row.rmse:.4f}"
            writer.writerow({**record, "seed": seed})
    partial.replace(out)  # never a half-written grade table


def summary(rows, *, seed: int) -> str:
    """Points per student and notebook, and the flags, as a few lines of text."""
    totals = {}
    for row in rows:
        key = (row.student, row.notebook)
        got, full, notes = totals.get(key, (0, 0, []))
        if row.flag:
            notes = notes + [f"{row.exercise}: {row.flag}"]
        totals[key] = (got + row.points, full + row.max_points, notes)
    lines = [f"graded {len(totals)} notebook(s), seed {seed}"]
    for (student, notebook), (got, full, notes) in sorted(totals.items()):
        lines.append(f"  {student:<20} {notebook:<28} {got} / {full} points")
        lines.extend(f"      flag: {note}" for note in notes)
    return "\n".join(lines)


def add_arguments(parser):
    """The ``grade`` command's options (shared with ``dfd_lite.teaching.course``)."""
    parser.add_argument("submissions", help="folder with the students' notebooks")
    parser.add_argument("--out", default="grades.csv", help="CSV to write (default grades.csv)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds each notebook may run (default 300)")
    parser.add_argument("--check-timeout", type=float, default=120.0,
                        help="seconds the checks of one notebook may run (default 120)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the fresh check cases (default: random, reported)")


def run_grade(args) -> int:
    """Run the ``grade`` command from parsed arguments; returns the exit status."""
    if args.timeout <= 0 or args.check_timeout <= 0:
        print("error: --timeout and --check-timeout must be positive seconds", file=sys.stderr)
        return 2
    try:
        rows, seed = grade_folder(args.submissions, seed=args.seed, timeout=args.timeout,
                                  check_timeout=args.check_timeout,
                                  progress=lambda text: print(text, file=sys.stderr,
                                                              flush=True))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print(f"error: no notebooks (.ipynb) under {args.submissions}", file=sys.stderr)
        return 2
    write_csv(rows, args.out, seed=seed)
    print(summary(rows, seed=seed))
    print(f"wrote {len(rows)} rows to {args.out}")
    return 0


def main(argv=None) -> int:
    """``python -m dfd_lite.teaching.grade SUBMISSIONS [--out grades.csv] ...``."""
    import argparse

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--check"]:  # the grader's own checker process
        _checker_process(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m dfd_lite.teaching.grade",
                                     description="Grade the students' notebooks.")
    add_arguments(parser)
    return run_grade(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
