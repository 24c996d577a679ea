"""rl_jax.eval.figures: a report figure is written as a PNG and closed (pyplot keeps none)."""
from rl_jax.eval import figures


def test_save_writes_and_closes(tmp_path):
  plt = figures.pyplot()
  fig, ax = plt.subplots(figsize=(2, 2))
  ax.plot([0, 1], [1, 0])
  path = str(tmp_path / "line.png")
  assert figures.save(fig, path, dpi=50) == path
  assert (tmp_path / "line.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert fig.number not in plt.get_fignums()
