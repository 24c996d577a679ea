"""One concept per module: no module of the package or of kernels/ is over 400 lines (a longer
one is split by concept, as rl_jax/stages/rl_async.py was out of rl_jax/stages/rl.py)."""
import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent
MAX_LINES = 400


def test_no_module_is_over_400_lines():
  files = sorted([*(REPO / "rl_jax").rglob("*.py"), *(REPO / "kernels").rglob("*.py")])
  assert len(files) > 50, files  # the walk found the packages
  sizes = {str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines())
           for p in files}
  assert max(sizes.values()) > 300  # the count reads whole files
  over = {name: n for name, n in sizes.items() if n > MAX_LINES}
  assert not over, f"modules over {MAX_LINES} lines (split them by concept): {over}"
