"""The projects' report figures: matplotlib's pyplot on the Agg backend, and saving a figure.

    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ...
    paths.append(figures.save(fig, os.path.join(workdir, "curves.png"), dpi=120))

Agg draws to files only (a run has no display); pyplot is imported on a report's first figure,
not when the report module is imported, so registering a report stays cheap.
"""
from __future__ import annotations


def pyplot():
  """matplotlib.pyplot, with the Agg backend selected."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def save(fig, path: str, *, dpi: int) -> str:
  """Lays `fig` out, writes it to `path` and closes it (pyplot holds every open figure until
  it is closed); returns `path`."""
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  plt.close(fig)
  return path
