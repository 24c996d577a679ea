"""The mixing study: one run of the one loop per (agent ratio, width) grid point, the law fit,
then the configured stage I / II / SFT run at the fitted ratio (docs/agent_pretraining.md).

    python -m rl_jax.projects.agent_pretraining.study --config=configs/agent_pretraining_tiny.py \
        --workdir=runs/s8_study

A driver rather than `rl.sweep`: the grid varies the model's width, and a run builds its model
once (a sweep varies the numbers of one stage on one model). Every point is
`rl_jax.main.run(grid_point(config, p, d, seed), <dir>)`, stage I only for
`mixing.grid_steps` steps (the same token budget at every point), with the evaluator's held-out
losses, once per seed of `mixing.seeds` (<workdir>/grid/p=<p>_d=<d>_s=<seed>; the law is fitted to
the mean over seeds); a point whose summary.json exists is not run again (a rerun resumes the
grid, and grids of different seeds can run in separate processes). Outputs:
<workdir>/grid.json (the points), <workdir>/stages/ (the stage I/II/SFT run at p*), and the
report "agent_pretraining" over <workdir> (report.md, results.json, PNG plots).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

import jax

from rl_jax import experiment
from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config




def with_width(config, width: int):
  """The config with model width `width` (head_dim width / 4, intermediate 3 width)."""
  c = config.copy_and_resolve_references()
  if width % 4:
    raise ValueError(f"config mixing.widths: {width} is not a multiple of 4 (4 heads)")
  c.model.overrides.hidden_size, c.model.overrides.head_dim = width, width // 4
  c.model.overrides.intermediate_size = 3 * width
  return c


def grid_point(config, ratio: float, width: int, seed: int | None = None):
  """One grid point (module docstring): stage I only, agent share `ratio`, width `width`,
  `mixing.grid_steps` steps, held-out losses only (no call generation), no report; `seed`
  (default: the config's) seeds the initial parameters and the batches."""
  c = with_width(config, width)
  if seed is not None:
    c.seed = int(seed)
  c.task.agent_ratio = float(ratio)
  c.stages = ("pretrain",)
  c.pretrain.steps, c.pretrain.then = c.mixing.grid_steps, ()
  evaluator = dict(c.eval.evaluator)
  evaluator["call_accuracy"] = False
  c.eval.evaluator = evaluator
  c.report = {}
  return c


def non_embedding_params(config, vocab_size: int) -> int:
  """N of the law: parameters outside the embedding and the output head, from shapes only."""
  ov = {k: v for k, v in config.model.overrides.to_dict().items() if v is not None}
  cfg = get_model_config(config.model.name, vocab_size=vocab_size, **ov)
  shapes = jax.eval_shape(lambda: qwen3.init_params(cfg, jax.random.key(0)))
  return int(sum(math.prod(x.shape) for path, x in jax.tree_util.tree_leaves_with_path(shapes)
                 if not any(getattr(k, "key", "") in ("embed", "lm_head") for k in path)))


def point_dir(workdir: str, ratio: float, width: int, seed: int) -> str:
  return os.path.join(workdir, "grid", f"p={ratio:g}_d={width}_s={seed}")


def grid_seeds(config) -> tuple[int, ...]:
  """`mixing.seeds`, or the config's own seed when that is empty."""
  return tuple(int(s) for s in config.mixing.seeds) or (int(config.seed),)


def read_wall(out: str) -> float:
  path = os.path.join(out, "wall.json")
  if not os.path.exists(path):
    return float("nan")
  with open(path) as f:
    return float(json.load(f)["wall_s"])


def run_grid(config, workdir: str, *, show_progress: bool = False) -> list[dict]:
  """Runs (or reads back) every grid point of every seed (`grid_seeds`); returns and writes
  <workdir>/grid.json records (ratio, width, seed, n_params, agent_loss, general_loss,
  per-source losses, wall seconds)."""
  # Imported here: rl_jax.main imports the loop.
  from rl_jax import main as main_lib  # pylint: disable=g-import-not-at-top
  # pylint: disable-next=g-import-not-at-top
  from rl_jax.projects.agent_pretraining.task import build_world
  m = config.mixing
  _, tok = build_world(config.task.n_apis, config.task.docs_only, config.task.world_seed)
  records = []
  for seed in grid_seeds(config):
    for width in m.widths:
      for ratio in m.ratios:
        records.append(_run_point(config, workdir, ratio, width, seed, tok.vocab_size,
                                  main_lib.run, show_progress))
  with open(os.path.join(workdir, "grid.json"), "w") as f:
    json.dump({"mixing": experiment.to_json_dict(m.to_dict()), "points": records}, f, indent=1)
  return records


def _run_point(config, workdir, ratio, width, seed, vocab_size, run, show_progress) -> dict:
  """Runs one grid point unless its summary.json exists; returns its record."""
  out = point_dir(workdir, ratio, width, seed)
  path = os.path.join(out, "summary.json")
  if not os.path.exists(path):
    point = grid_point(config, ratio, width, seed)
    print(f"[mixing] p={ratio:g} d={width} seed={seed} -> {out}", flush=True)
    start = time.perf_counter()
    run(point, out, show_progress=show_progress)
    with open(os.path.join(out, "wall.json"), "w") as f:
      json.dump({"wall_s": time.perf_counter() - start}, f)
  with open(path) as f:
    summary = json.load(f)
  ev = summary["eval"]["pretrain"]
  return dict(
      ratio=float(ratio), width=int(width), seed=int(seed),
      n_params=non_embedding_params(with_width(config, width), vocab_size),
      agent_loss=ev["eval/agent_loss"], general_loss=ev["eval/general_loss"],
      losses={k.split("/")[-1]: v for k, v in ev.items() if k.startswith("eval/loss/")},
      wall_s=read_wall(out))


def run_study(config, workdir: str, *, show_progress: bool = False) -> dict:
  """Grid, fit, stage run at p* (if `mixing.run_stages`), report. Returns the report's
  results (results.json)."""
  # pylint: disable-next=g-import-not-at-top
  from rl_jax import main as main_lib
  from rl_jax.projects.agent_pretraining import report  # pylint: disable=g-import-not-at-top
  os.makedirs(workdir, exist_ok=True)
  records = run_grid(config, workdir, show_progress=show_progress)
  analysis = report.analyse_grid(records, config.mixing)
  if config.mixing.run_stages:
    staged = config.copy_and_resolve_references()
    staged.task.agent_ratio = round(analysis["p_star"], 3)
    staged.report = {}
    out = os.path.join(workdir, "stages")
    if not os.path.exists(os.path.join(out, "summary.json")):
      print(f"[mixing] stages at p* = {staged.task.agent_ratio} -> {out}", flush=True)
      main_lib.run(staged, out, show_progress=show_progress)
  return report.agent_pretraining_report(workdir)


def main(argv) -> None:
  """`--config=FILE[:ARG] --workdir=W`, with `--config.x=y` overrides: the flags of rl_jax.main
  (imported for them, so the two parse the same way)."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from rl_jax import main as main_lib  # pylint: disable=g-import-not-at-top

  def study(args):
    if len(args) > 1:
      raise app.UsageError(f"unexpected arguments: {args[1:]}")
    if not main_lib._WORKDIR.value:  # pylint: disable=protected-access
      raise app.UsageError("--workdir is required (the study folder)")
    results = run_study(main_lib._CONFIG.value,  # pylint: disable=protected-access
                        main_lib._WORKDIR.value)  # pylint: disable=protected-access
    print(json.dumps({k: v for k, v in results.items() if k != "points"}, indent=1))

  app.run(study, argv=argv, flags_parser=main_lib.parse_flags)


if __name__ == "__main__":
  main(sys.argv)
