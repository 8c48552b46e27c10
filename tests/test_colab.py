"""What Colab does with the book: install the pinned release, then run the first cells.

Colab runs a notebook in a fresh Python where ``google.colab`` is importable
and nothing of this repository is present. The test builds a wheel from this
checkout, makes a fresh virtual environment, points pip at the wheel only
(no index: what Colab would fetch from PyPI is this wheel), and runs each
notebook's first code cells in IPython there with a stand-in ``google.colab``
module, so the install cell's ``%pip install "dfd-lite==VERSION"`` really
runs. The environment borrows the test environment's third-party packages
(a ``.pth`` file), not ``dfd_lite``, which must come from the wheel.
"""

import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# the pinned release, with an extra where a chapter needs one ("dfd-lite[cluster]==...")
INSTALL = re.compile(r'%pip install -q "dfd-lite(?:\[[a-z]+\])?==([^"]+)"')


def code_cells(path):
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_install_cell_pins_the_books_version(path):
    first = code_cells(path)[0]
    assert 'if "google.colab" in sys.modules' in first, "the install cell runs only in Colab"
    assert INSTALL.findall(first) == [VERSION], first


def test_gpu_chapter_pins_numba_cuda_as_requirements_does():
    spec = next(line.split("#")[0].strip() for line in
                (ROOT / "requirements.txt").read_text().splitlines()
                if line.startswith("numba-cuda"))
    source = "\n".join(code_cells(ROOT / "book" / "11_gpu.ipynb"))
    pins = re.findall(r'%pip install -q "numba-cuda\[cu12\]([^"]*)"', source)
    assert pins == [spec.removeprefix("numba-cuda")], pins
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["cuda"]
    assert spec in extras


@pytest.fixture(scope="module")
def colab_python(tmp_path_factory):
    """A fresh venv's Python with a wheel of this checkout on pip's only "index"."""
    work = tmp_path_factory.mktemp("colab")
    wheels = work / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(wheels), str(ROOT)], check=True)
    assert [w.name for w in wheels.glob("*.whl")], "no wheel was built"
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    python = work / "venv" / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True,
                          text=True).stdout.strip()
    # Third-party packages from the test environment; dfd_lite itself is not among
    # them (it is installed editable, from this checkout, which is not on this path).
    (Path(site) / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # pip sees the borrowed packages (and the test environment's editable dfd_lite
    # metadata) as installed: ignore them and install the wheel alone.
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels),
               PIP_IGNORE_INSTALLED="1", PIP_NO_DEPS="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", MPLBACKEND="Agg",
               NUMBA_ENABLE_CUDASIM="1", PYTHONPATH="")
    probe = subprocess.run([str(python), "-c", "import dfd_lite"], cwd=work, env=env,
                           capture_output=True, text=True)
    assert probe.returncode != 0, "dfd_lite must not be importable before the install cell"
    return python, env, work


RUNNER = textwrap.dedent('''
    import json, sys, types
    from IPython.core.interactiveshell import InteractiveShell

    sys.modules["google"] = types.ModuleType("google")
    sys.modules["google.colab"] = types.ModuleType("google.colab")  # what Colab provides
    shell = InteractiveShell.instance()
    for source in json.load(open(sys.argv[1])):
        result = shell.run_cell(source)
        if not result.success:
            sys.exit(f"cell failed: {source[:80]!r}: {result.error_in_exec or result.error_before_exec!r}")
    import dfd_lite
    print(dfd_lite.__version__, dfd_lite.__file__)
''')


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cells_run_as_in_colab(path, colab_python):
    python, env, work = colab_python
    cells = work / f"{path.stem}.json"
    cells.write_text(json.dumps(code_cells(path)[:2]))  # the install cell and the imports
    runner = work / "runner.py"
    runner.write_text(RUNNER)
    done = subprocess.run([str(python), str(runner), str(cells)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    version, imported_from = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert version == VERSION
    assert imported_from.startswith(str(work / "venv")), imported_from


def test_package_version_is_the_books():
    import dfd_lite

    assert dfd_lite.__version__ == VERSION


# ---------------------------------------------------------------------------
# On a Colab GPU runtime: backend="auto" uses CUDA only with the tested target

def test_auto_backend_needs_a_real_gpu_and_the_tested_numba_cuda():
    from dfd_lite.engines import auto_backend

    real = dict(gpu=True, simulated=False, psf="gaussian")
    assert auto_backend(**real, numba_cuda="0.30.2") == "cuda"
    assert auto_backend(**real, numba_cuda="0.30.0") == "cuda"
    assert auto_backend(**real, numba_cuda=None) == "cpu"       # Numba's built-in target
    assert auto_backend(**real, numba_cuda="0.31.0") == "cpu"   # not tested yet
    assert auto_backend(**real, numba_cuda="0.29.9") == "cpu"
    assert auto_backend(**real, numba_cuda="dev") == "cpu"
    assert auto_backend(gpu=False, simulated=False, psf="gaussian", numba_cuda="0.30.2") == "cpu"
    assert auto_backend(gpu=True, simulated=True, psf="gaussian", numba_cuda="0.30.2") == "cpu"
    assert auto_backend(gpu=True, simulated=False, psf="disc", numba_cuda="0.30.2") == "cpu"


def test_tested_numba_cuda_is_what_requirements_pin():
    from dfd_lite.engines import TESTED_NUMBA_CUDA

    (low_major, low_minor), (high_major, high_minor) = TESTED_NUMBA_CUDA
    spec = f"numba-cuda>={low_major}.{low_minor},<{high_major}.{high_minor}"
    assert spec in (ROOT / "requirements.txt").read_text()
    assert spec in (ROOT / "pyproject.toml").read_text()


def test_auto_resolves_to_the_cpu_here():
    # this machine: no GPU, or the simulator switched on by conftest.py
    from dfd_lite.engines import resolve

    assert resolve("auto").name == "cpu"
