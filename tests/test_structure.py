"""The package's shape: no import cycles, the teaching tools and the GPU
kept out of ``import dfd_lite``, the user's NumPy left alone."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np

PACKAGE = Path(__file__).resolve().parents[1] / "dfd_lite"


def _module_name(path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path):
    """The dfd_lite modules a module imports at import time (top level only)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.parse(path.read_text()).body:   # top level: not lazy imports
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("dfd_lite")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("dfd_lite"):
                found.add(mod)
                found |= {f"{mod}.{a.name}" for a in node.names}
    return found


def _find_cycle(graph):
    """A list of modules forming a cycle in ``graph`` (module -> imports), or None."""
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return None
        if state.get(m) == "open":
            return path[path.index(m):] + [m]
        state[m] = "open"
        for i in sorted(graph[m]):
            cycle = visit(i, path + [m])
            if cycle:
                return cycle
        state[m] = "done"
        return None

    for m in sorted(graph):
        cycle = visit(m, [])
        if cycle:
            return cycle
    return None


def test_no_import_cycles_between_dfd_lite_modules():
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}
    # a package imports its submodules; a submodule importing its own
    # package's __init__ is how Python resolves relative imports: not a cycle
    for m in graph:
        graph[m] = {i for i in graph[m] if not m.startswith(i + ".")}
    assert "dfd_lite.solve" in graph and "dfd_lite.engines.cuda.blur" in graph
    assert graph["dfd_lite.solve"] >= {"dfd_lite.depth", "dfd_lite.aif", "dfd_lite.engines"}
    assert _find_cycle(graph) is None, " -> ".join(_find_cycle(graph))


def test_the_cycle_check_can_fail():
    # what main had before: blur and depth imported cuda, which imported them back
    graph = {"dfd_lite.blur": {"dfd_lite.cuda"}, "dfd_lite.depth": {"dfd_lite.blur"},
             "dfd_lite.cuda": {"dfd_lite.depth"}}
    assert _find_cycle(graph) == ["dfd_lite.blur", "dfd_lite.cuda", "dfd_lite.depth",
                                  "dfd_lite.blur"]


def test_every_module_imports_on_its_own():
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        if ".engines.cuda" in name:
            continue  # needs a CUDA target; tests/test_cuda.py imports it
        subprocess.run([sys.executable, "-c", f"import {name}"], check=True)


def test_import_leaves_numpy_and_cuda_alone():
    # NumPy imports some submodules lazily: new modules may appear, but no
    # attribute may be added or replaced (main once assigned np.row_stack).
    code = ("import sys, types, numpy as np; before = dict(vars(np)); import dfd_lite as dl; "
            "dl.grid_search(np.ones((8, 8)), np.ones((5, 8, 8)), dl.Camera.nyuv2(), [1.0, 2.0],"
            " kernel_size=5, backend='cpu'); "
            "changed = [k for k, v in before.items() if vars(np).get(k) is not v]; "
            "added = [k for k in vars(np) if k not in before "
            "and not isinstance(vars(np)[k], types.ModuleType)]; "
            "assert not changed and not added, (changed, added); "
            "assert 'numba.cuda' not in sys.modules and 'dfd_lite.engines.cuda' not in sys.modules;"
            " assert 'dfd_lite.teaching' not in sys.modules")
    env_free = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert env_free.returncode == 0, env_free.stderr
    assert np.__name__ == "numpy"
