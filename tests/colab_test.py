"""The notebooks in colab/ run against the current API: every code cell is executed in order, in
one namespace, from the colab/ folder, with the "parameters" cell overridden to the runlocal
shrink (RUNLOCAL = True, WORKDIR in tmp). Shell / magic lines (`%pip`, `!git`) are skipped: the
package is already installed where the tests run."""
from __future__ import annotations

import json
import os
import pathlib

import matplotlib
import pytest

COLAB = pathlib.Path(__file__).resolve().parents[1] / "colab"
NOTEBOOKS = sorted(p.name for p in COLAB.glob("*.ipynb"))


def _code_cells(nb: dict, name: str) -> list[tuple[list[str], str]]:
  assert nb.get("nbformat") == 4, f"{name}: expected nbformat 4, got {nb.get('nbformat')}"
  cells = []
  for i, cell in enumerate(nb["cells"]):
    assert cell["cell_type"] in ("code", "markdown"), f"{name}: cell {i}: {cell['cell_type']}"
    if cell["cell_type"] == "code":
      assert cell.get("outputs") == [], f"{name}: cell {i} was committed with outputs"
      lines = [l for l in "".join(cell["source"]).splitlines()
               if not l.lstrip().startswith(("%", "!"))]
      cells.append((cell["metadata"].get("tags", []), "\n".join(lines)))
  return cells


def test_there_are_notebooks():
  assert {"quickstart.ipynb", "translate_r1.ipynb"} <= set(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_runlocal_mode(name, tmp_path, monkeypatch):
  matplotlib.use("Agg")  # plt.show() is a no-op
  nb = json.loads((COLAB / name).read_text())
  cells = _code_cells(nb, name)
  params = [src for tags, src in cells if "parameters" in tags]
  assert len(params) == 1 and "RUNLOCAL = False" in params[0], (
      f"{name}: needs one cell tagged 'parameters' that sets RUNLOCAL = False")
  monkeypatch.chdir(COLAB)
  monkeypatch.syspath_prepend(str(COLAB.parent))
  ns: dict = {"__name__": "__main__"}
  for i, (tags, src) in enumerate(cells):
    exec(compile(src, f"{name}[code cell {i}]", "exec"), ns)  # pylint: disable=exec-used
    if "parameters" in tags:
      ns.update(RUNLOCAL=True, WORKDIR=str(tmp_path / "run"))
  assert os.listdir(tmp_path / "run"), f"{name}: wrote nothing into WORKDIR"
