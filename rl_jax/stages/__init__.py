"""Stage kinds of the one training loop, and the run plan (which stages, from which params).

A run is the config's `stages` in order (`pretrain`, `sft`, `rl`, `preference`), each configured
by the section of the same name. A stage with 0 steps is skipped. `rl.sweep` (and
`preference.sweep`) expands the stage into one stage per combination of swept values, each
starting from the same params (the stage before the sweep); a supervised section's `then` adds
further stages of its kind right after it ("pretrain_seed": a second pretrain stage on another
corpus of the task, `pretrain.corpus`). Every stage kind is a function
registered in `STAGES`:

    run_stage(ctx: RunContext, spec: StageSpec, params, io: StageIO) -> params

and the loop (`rl_jax.loop`) owns what they share: checkpoints, metrics, eval hook, progress.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from rl_jax.registry import Registry

STAGES: Registry = Registry("stage kind")


@dataclasses.dataclass(frozen=True)
class StageSpec:
  """name: unique stage name (directory of its checkpoints, "stage" of its metrics);
  kind: registered stage kind; section: its config section (sweep values applied);
  start_from: name of the stage whose final params it starts from ("" = the initial params);
  overrides: the swept values of this stage ({} outside a sweep)."""
  name: str
  kind: str
  section: Any
  start_from: str = ""
  overrides: dict[str, Any] = dataclasses.field(default_factory=dict)


def plan(exp) -> list[StageSpec]:
  """The stages a config runs, in order (skipped 0-step stages left out)."""
  from rl_jax.stages import variants as variants_lib  # pylint: disable=g-import-not-at-top
  specs: list[StageSpec] = []
  previous = ""
  for kind in exp.stages:
    section = getattr(exp, kind, None)
    if getattr(section, "then", ()):  # a supervised stage and its `then` stages, in sequence
      for name, overrides, variant in variants_lib.then_stages(section, kind):
        if variant.steps > 0:
          specs.append(StageSpec(name, kind, variant, variant.start_from or previous, overrides))
          previous = name
      continue
    if section.steps == 0:
      continue
    start = section.start_from or previous
    variants = (variants_lib.sweep_variants(section, kind) if hasattr(section, "sweep")
                else [(kind, {}, section)])
    for name, overrides, variant in variants:
      specs.append(StageSpec(name, kind, variant, start, overrides))
    previous = variants[-1][0] if len(variants) == 1 else start
  names = [s.name for s in specs]
  for s in specs:
    if s.start_from and s.start_from not in names[:names.index(s.name)]:
      raise ValueError(f"config {s.kind}.start_from={s.start_from!r} names no earlier stage "
                       f"that trains; stages before it: {names[:names.index(s.name)]}")
  return specs


def check_plan(exp) -> None:
  """Validates the plan, every RL stage's part configs and every preference stage's section,
  before any work is done."""
  # Imported here: the stage modules import the model code.
  from rl_jax.stages import preference, rl  # pylint: disable=g-import-not-at-top
  for spec in plan(exp):
    if spec.kind == "rl":
      rl.check_section(spec.section, "rl", exp)
    elif spec.kind == "preference":
      preference.check_section(spec.section, spec.name)


def _register_builtin_kinds() -> None:
  # pylint: disable-next=g-import-not-at-top,unused-import
  from rl_jax.stages import preference, rl, supervised


_register_builtin_kinds()
