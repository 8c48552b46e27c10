"""Every figure in a chapter's text is numbered: a caption and a name in its cell's metadata.

MyST-NB wraps the image a code cell draws in a numbered figure when the
cell's metadata holds ``mystnb.figure.caption`` and ``.name``; the prose can
then cite it with ``{numref}``. Figures inside exercise solutions (between
``{solution-start}`` and ``{solution-end}``) fold away and need not be numbered.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def figure_cells(path):
    """``(index, source, metadata)`` of the code cells that draw a figure in the text."""
    in_solution = False
    for index, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            if "{solution-start}" in source:
                in_solution = True
            if "{solution-end}" in source:
                in_solution = False
        elif not in_solution and "plt.show()" in source:
            yield index, source, cell.get("metadata", {})


def name_prefix(path):
    """``fig-ch7-`` for ``07_noise.ipynb``, ``fig-capstone-`` for ``capstone.ipynb``."""
    number = re.match(r"(\d+)_", path.name)
    return f"fig-ch{int(number.group(1))}-" if number else f"fig-{path.stem}-"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_in_the_text_is_numbered(path):
    for index, source, metadata in figure_cells(path):
        where = f"{path.name}, cell {index}"
        figure = metadata.get("mystnb", {}).get("figure", {})
        assert len(figure.get("caption", "").split()) >= 5, f"{where}: no caption"
        assert re.fullmatch(re.escape(name_prefix(path)) + r"[a-z0-9]+(-[a-z0-9]+)*",
                            figure.get("name", "")), \
            f"{where}: name {figure.get('name')!r} should start with {name_prefix(path)!r}"
        # one image per numbered cell: a second would repeat the figure's name
        assert source.count("plt.show()") == 1, f"{where}: draws more than one figure"


def test_figure_names_are_unique_in_the_book():
    names = [metadata["mystnb"]["figure"]["name"] for path in NOTEBOOKS
             for _, _, metadata in figure_cells(path) if "mystnb" in metadata]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_numref_targets_exist():
    # a {numref} to a name no figure carries fails the strict build only at the
    # end of a long run; this says which one at once
    names = {metadata["mystnb"]["figure"]["name"] for path in NOTEBOOKS
             for _, _, metadata in figure_cells(path) if "mystnb" in metadata}
    for path in NOTEBOOKS:
        for target in re.findall(r"\{numref\}`(?:[^`<]*<)?(fig-[a-z0-9-]+)>?`",
                                 path.read_text(encoding="utf-8")):
            assert target in names, f"{path.name} cites {target}, which no figure carries"
