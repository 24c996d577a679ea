"""The core never imports a project: rl_jax/projects/ plugs in through registries and
`config.imports` (a string given to importlib), never through an import statement."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "rl_jax"


def _project_imports(source: str) -> list[str]:
  """Modules of rl_jax.projects that `source` imports (Import / ImportFrom, relative ones
  resolved only when they are spelt with the package name)."""
  found = []
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    else:
      continue
    found += [n for n in names if n == "rl_jax.projects" or n.startswith("rl_jax.projects.")]
  return found


def test_the_checker_finds_project_imports():
  for source in ("import rl_jax.projects.translate_r1",
                 "from rl_jax.projects import translate_r1",
                 "from rl_jax import projects",
                 "def f():\n  from rl_jax.projects.x import y\n"):
    assert _project_imports(source), source
  for source in ("import importlib\nimportlib.import_module('rl_jax.projects.translate_r1')",
                 "from rl_jax import loop", "imports = ('rl_jax.projects.translate_r1',)"):
    assert not _project_imports(source), source


def test_no_core_module_imports_a_project():
  files = [p for p in sorted(ROOT.rglob("*.py")) if "projects" not in p.relative_to(ROOT).parts]
  assert len(files) > 30, files  # the walk found the package
  bad = {str(p.relative_to(ROOT.parent)): names for p in files
         if (names := _project_imports(p.read_text(encoding="utf-8")))}
  assert not bad, f"core modules import rl_jax.projects: {bad}"


def test_relative_imports_stay_inside_their_package():
  # A relative import could reach rl_jax.projects without naming it: the core uses none.
  files = [p for p in ROOT.rglob("*.py") if "projects" not in p.relative_to(ROOT).parts]
  relative = [str(p) for p in files
              if any(isinstance(n, ast.ImportFrom) and n.level
                     for n in ast.walk(ast.parse(p.read_text(encoding="utf-8"))))]
  if relative:
    pytest.fail(f"relative imports in core modules (spell rl_jax.*): {relative}")
