"""The grader: right grades and flags for correct, lazy, crashing, hanging and malformed work."""

import ast
import csv
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dfd_lite.teaching import checks, course, grade

IMPORTS = "import math\nimport numpy as np\nimport dfd_lite as dl\n"


def book_solution(notebook_name, function):
    """The source of ``function`` as the book's own notebook defines it (its solution)."""
    nb = nbformat.read(Path(__file__).parents[1] / "book" / notebook_name, as_version=4)
    return next(source for source in grade.notebook_definitions(nb)
                if source.startswith(f"def {function}("))


# Chapter 5's own solutions: a correct submission of that assignment.
GOLDEN = book_solution("05_depth.ipynb", "golden_section")
ARGMIN = book_solution("05_depth.ipynb", "grid_argmin")


def notebook(*sources):
    return new_notebook(cells=[new_markdown_cell("# Chapter 5, my answers")] +
                        [new_code_cell(s) for s in sources])


def write(path, nb):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def trees_of(*sources):
    return [ast.parse(s) for s in sources]


# ---------------------------------------------------------------------------
# The AST scan

def scan(source, exercise):
    trees = trees_of(source)
    return grade.forbidden_calls(exercise, grade._defined_functions(trees),
                                 grade._imported_aliases(trees))


COC = grade.ASSIGNMENTS["capstone"][0]
ADJOINT = grade.ASSIGNMENTS["03_forward_model"][1]


def test_forbidden_call_found_directly_through_an_alias_and_through_a_helper():
    assert scan("def coc_radius_mine(d, c):\n    return dl.coc_radius(d, c)", COC) == \
        ["coc_radius"]
    assert scan("from dfd_lite import coc_radius as radius\n"
                "def coc_radius_mine(d, c):\n    return radius(d, c)", COC) == ["coc_radius"]
    assert scan("def helper(d, c):\n    return dfd_lite.optics.coc_radius(d, c)\n"
                "def coc_radius_mine(d, c):\n    return helper(d, c) + 0", COC) == \
        ["coc_radius"]
    assert scan("def adjoint_mine(op, s):\n    return op.adjoint(s)", ADJOINT) == ["adjoint"]


def test_own_code_is_not_flagged():
    assert scan("def coc_radius_mine(d, c):\n    return np.maximum(abs(d - 1), c.min_radius)",
                COC) == []
    # calling the forbidden function elsewhere in the notebook (to compare) is fine
    assert scan("def coc_radius_mine(d, c):\n    return d * 2\n"
                "print(dl.coc_radius(1.0, cam))", COC) == []
    # a recursive helper does not loop forever
    assert scan("def coc_radius_mine(d, c):\n    return coc_radius_mine(d, c)", COC) == []


@pytest.mark.parametrize("source", [
    "import dfd_lite as dl\ndl.coc_radius = lambda d, c: d",
    "import dfd_lite.teaching.checks as checks\nchecks.check_coc_radius = print",
    "from dfd_lite.teaching import checks\nchecks.check_fista_step.__defaults__ = ()",
    "import numpy as np\nsetattr(np, 'argmin', np.argmax)",
    "from dfd_lite.teaching import grade",
])
def test_tampering_is_detected(source):
    assert grade._tampering(trees_of(source))


def test_ordinary_code_is_not_tampering():
    assert grade._tampering(trees_of(
        "import numpy as np\nimport dfd_lite as dl\nx = np.zeros(3)\nx[0] = 1\n"
        "cam = dl.Camera.nyuv2()\nclass A:\n    pass\na = A()\na.b = 2")) == ""


def test_assignment_and_student_from_the_file_name(tmp_path):
    assert grade.identify(tmp_path / "alice_capstone.ipynb") == "capstone"
    assert grade.identify(tmp_path / "05_depth-bob.ipynb") == "05_depth"
    assert grade.identify(tmp_path / "whatever.ipynb", {"grid_argmin": None}) == "05_depth"
    assert grade.identify(tmp_path / "whatever.ipynb", {"unrelated": None}) is None
    assert grade.student_name(tmp_path / "alice_capstone.ipynb", tmp_path, "capstone") == \
        "alice"
    assert grade.student_name(tmp_path / "bob" / "capstone.ipynb", tmp_path, "capstone") == "bob"


# ---------------------------------------------------------------------------
# A class: correct, lazy, crashing, hanging and malformed submissions

@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("submissions")
    write(root / "alice_05_depth.ipynb",
          notebook(IMPORTS, ARGMIN, GOLDEN, 'print("check_golden_section: all cases passed.")'))
    # lazy: the library's golden section, argmax instead of argmin, and a fake "passed"
    write(root / "bob_05_depth.ipynb", notebook(
        IMPORTS + "from dfd_lite import golden_section_search as gs\n",
        "def grid_argmin(v, c):\n    return np.asarray(c)[np.argmax(v, axis=0)]",
        "def golden_section(f, lo, hi, tol):\n    return gs(f, lo, hi, xtol=tol)[0]",
        'print("check_grid_argmin: all 4 cases passed.")'))
    # crashes: a cell raises (the run goes on), then the kernel dies
    write(root / "carol" / "05_depth.ipynb", notebook(
        IMPORTS, ARGMIN, "1 / 0", GOLDEN, "import os\nos._exit(3)"))
    # hangs in its last cell: interrupted at the time limit, its functions still graded
    write(root / "dan_05_depth.ipynb", notebook(IMPORTS, ARGMIN, GOLDEN,
                                                "while True:\n    pass"))
    # right answers, but a check that never returns for one of them
    write(root / "erin_05_depth.ipynb", notebook(
        IMPORTS, ARGMIN, "def golden_section(f, lo, hi, tol):\n    while True:\n        pass"))
    (root / "frank_05_depth.ipynb").write_text("{ this is not a notebook", encoding="utf-8")
    (root / ".ipynb_checkpoints").mkdir()
    write(root / ".ipynb_checkpoints" / "alice_05_depth-checkpoint.ipynb", notebook("1/0"))
    rows, seed = grade.grade_folder(root, seed=11, timeout=25, check_timeout=25)
    return root, rows, seed


def rows_of(rows, student):
    return {row.exercise: row for row in rows if row.student == student}


def test_class_has_one_row_per_exercise_and_notebook_problem(graded_class):
    _, rows, seed = graded_class
    assert seed == 11
    assert {row.student for row in rows} == {"alice", "bob", "carol", "dan", "erin", "frank"}
    for student in ("alice", "bob", "dan", "erin"):
        assert {"ch5-grid-argmin", "ch5-golden-code"} <= set(rows_of(rows, student))


def test_correct_submission_gets_full_points(graded_class):
    mine = rows_of(graded_class[1], "alice")
    assert set(mine) == {"ch5-grid-argmin", "ch5-golden-code"}  # no notebook problem
    assert all(row.passed and row.points == row.max_points == 10 and not row.flag
               for row in mine.values())
    assert "cases passed" in mine["ch5-golden-code"].message


def test_lazy_submission_earns_nothing_and_is_flagged(graded_class):
    mine = rows_of(graded_class[1], "bob")
    argmin, golden = mine["ch5-grid-argmin"], mine["ch5-golden-code"]
    assert not argmin.passed and argmin.points == 0 and "LARGEST" in argmin.message
    # the library's search passes the check, but calling it is what the flag is for
    assert not golden.passed and golden.points == 0
    assert "golden_section_search" in golden.flag


def test_crashing_notebook_is_reported_and_what_ran_is_graded(graded_class):
    mine = rows_of(graded_class[1], "carol")
    problem = mine[grade.NOTEBOOK_ROW]
    assert problem.flag == "crashed"
    assert "ZeroDivisionError" in problem.message and "kernel died" in problem.message
    # the kernel died before the grader could take the functions out
    assert not mine["ch5-grid-argmin"].passed and "did not finish" in \
        mine["ch5-grid-argmin"].message


def test_hanging_notebook_is_interrupted_and_graded(graded_class):
    mine = rows_of(graded_class[1], "dan")
    assert mine[grade.NOTEBOOK_ROW].flag == "timed out"
    assert "cell 4" in mine[grade.NOTEBOOK_ROW].message
    assert mine["ch5-grid-argmin"].passed and mine["ch5-golden-code"].passed


def test_hanging_check_fails_alone(graded_class):
    mine = rows_of(graded_class[1], "erin")
    assert mine["ch5-grid-argmin"].passed
    assert not mine["ch5-golden-code"].passed
    assert "ran over" in mine["ch5-golden-code"].message


def test_malformed_file_gets_a_row(graded_class):
    mine = rows_of(graded_class[1], "frank")
    assert list(mine) == [grade.NOTEBOOK_ROW]
    assert mine[grade.NOTEBOOK_ROW].flag == "malformed"


def test_csv_and_summary(graded_class, tmp_path):
    _, rows, seed = graded_class
    out = tmp_path / "grades.csv"
    grade.write_csv(rows, out, seed=seed)
    with open(out, newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(rows)
    assert {"student", "exercise", "passed", "points", "flag", "message", "rmse", "seed"} <= \
        set(table[0])
    alice = [r for r in table if r["student"] == "alice"]
    assert sum(int(r["points"]) for r in alice) == 20
    text = grade.summary(rows, seed=seed)
    assert "alice" in text and "20 / 20 points" in text and "seed 11" in text
    assert "bob" in text and "0 / 20 points" in text and "golden_section_search" in text


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert course.main(["grade", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a folder" in err
    assert course.main(["grade", str(tmp_path)]) == 2
    assert "no notebooks" in capsys.readouterr().err
    assert course.main(["grade", str(tmp_path), "--timeout", "0"]) == 2
    assert "--timeout" in capsys.readouterr().err


def test_teachers_rubric_gives_the_graders_points():
    # book/teaching.md's rubric table must award what the grader awards
    text = (Path(__file__).parents[1] / "book" / "teaching.md").read_text(encoding="utf-8")
    for exercise in grade.ASSIGNMENTS["capstone"]:
        line = next(row for row in text.splitlines() if f"`{exercise.label}`" in row)
        assert f"| {exercise.points} | grader |" in line, line
    graded_by_hand = [row for row in text.splitlines() if row.endswith("| you |")]
    written = sum(int(row.split("|")[3]) for row in graded_by_hand)
    coded = sum(ex.points for ex in grade.ASSIGNMENTS["capstone"])
    assert f"**{coded + written}**" in text


# ---------------------------------------------------------------------------
# The capstone: a correct submission and the lazy one

def capstone_function_cells():
    """The teacher's capstone reduced to its imports and functions (no computation)."""
    nb = nbformat.read(Path(__file__).parents[1] / "book" / "capstone.ipynb", as_version=4)
    return grade.notebook_definitions(nb)


LAZY_CAPSTONE = {
    "coc_radius_mine": "def coc_radius_mine(depth, camera):\n"
                       "    return dl.coc_radius(depth, camera)",
    "fista_step": "def fista_step(op, stack, x, y, t, step, bounds=(0.0, 1.0)):\n"
                  "    raise NotImplementedError  # your code here",
    "aif_mine": "def aif_mine(op, stack, num_iters, x0):\n"
                "    return dl.fista(op, stack, num_iters=num_iters, x0=x0).aif",
    "grid_argmin_mine": "def grid_argmin_mine(loss_volume, candidates):\n"
                        "    return np.asarray(candidates)[np.argmax(loss_volume, axis=0)]",
    "golden_section_mine": "def golden_section_mine(f, lo, hi, tol):\n"
                           "    return (lo + hi) / 2",
    "dfd_mine": "def dfd_mine(stack, camera, candidates, K, *, num_epochs=4, aif_num_iters=40,"
                " window=3):\n"
                "    r = dl.solve(stack, camera, num_epochs=num_epochs,"
                " aif_num_iters=aif_num_iters, kernel_size=K)\n"
                "    return r.depth, r.aif",
}


@pytest.fixture(scope="module")
def graded_capstones(tmp_path_factory):
    root = tmp_path_factory.mktemp("capstones")
    cells = capstone_function_cells()
    write(root / "ada_capstone.ipynb", notebook(*cells))
    lazy = []
    for source in cells:
        name = ast.parse(source).body[0]
        lazy.append(LAZY_CAPSTONE.get(getattr(name, "name", None), source))
    lazy.append('print("target reached: RMSE 0.607 m")')
    write(root / "lazy_capstone.ipynb", notebook(*lazy))
    rows, _ = grade.grade_folder(root, seed=2026, timeout=120, check_timeout=180)
    return rows


def test_correct_capstone_gets_every_point_and_its_rmse(graded_capstones):
    mine = rows_of(graded_capstones, "ada")
    assert set(mine) == {ex.label for ex in grade.ASSIGNMENTS["capstone"]}
    failed = {label: row.message for label, row in mine.items() if not row.passed}
    assert not failed
    assert sum(row.points for row in mine.values()) == \
        sum(ex.points for ex in grade.ASSIGNMENTS["capstone"])
    solver = mine["capstone-dfd"]
    assert solver.rmse is not None and solver.rmse < 0.7 and "freshly seeded" in solver.message


def test_lazy_capstone_gets_nothing(graded_capstones):
    mine = rows_of(graded_capstones, "lazy")
    assert sum(row.points for row in mine.values()) == 0, {k: r.message for k, r in mine.items()}
    assert "coc_radius" in mine["capstone-coc"].flag
    assert "not implemented" in mine["capstone-fista-step"].message
    assert "fista" in mine["capstone-fista-loop"].flag
    assert "LARGEST" in mine["capstone-grid"].message
    assert "z: expected" in mine["capstone-golden"].message
    assert "solve" in mine["capstone-dfd"].flag


def test_capstone_notebook_uses_the_graders_problem():
    # the grader re-runs dfd_mine on checks.capstone_problem: the notebook must set up the same
    from dfd_lite.teaching.checks import CAPSTONE

    nb = nbformat.read(Path(__file__).parents[1] / "book" / "capstone.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert f"dl.synthetic_scene({CAPSTONE['shape']})" in code
    assert f"K = {CAPSTONE['kernel_size']}\n" in code
    assert f"noise_std={CAPSTONE['noise_std']}, seed=0" in code
    assert (f"dl.depth_candidates({CAPSTONE['depth_range']}, "
            f"num_depths={CAPSTONE['num_depths']})") in code
    assert f"**{CAPSTONE['target_rmse']} m**" in text


@pytest.mark.parametrize("assignment", sorted(grade.ASSIGNMENTS))
def test_the_books_own_solutions_define_every_graded_function_and_are_not_flagged(assignment):
    path = Path(__file__).parents[1] / "book" / f"{assignment}.ipynb"
    nb = nbformat.read(path, as_version=4)
    trees = grade._parse(grade.code_cells(nb))
    functions = grade._defined_functions(trees)
    aliases = grade._imported_aliases(trees)
    assert grade.identify(path, functions) == assignment
    assert grade._tampering(trees) == ""
    for exercise in grade.ASSIGNMENTS[assignment]:
        assert exercise.function in functions, exercise
        assert grade.forbidden_calls(exercise, functions, aliases) == [], exercise
        assert callable(getattr(checks, exercise.check))
