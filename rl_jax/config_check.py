"""Config-time validation of an `Experiment`: names and part kwargs against the registries, the
stage list, learning rates, model overrides: every error before any work is done."""
from __future__ import annotations

import dataclasses

from rl_jax import stages as stages_lib, tasks
from rl_jax.eval import hooks
from rl_jax.experiment import STAGE_KINDS, Experiment
from rl_jax.models.config import ModelConfig


def check(exp: Experiment) -> None:
  """Validates names and part kwargs against the registries (before any work is done)."""
  model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
  unknown = set(exp.model.overrides) - model_fields
  if unknown:
    raise ValueError(f"unknown config key(s) model.overrides.{sorted(unknown)}; valid ModelConfig "
                     f"fields: {sorted(model_fields)}")
  for kind in exp.stages:
    section = getattr(exp, kind, None)
    lr = getattr(section, "learning_rate", None)
    if lr is not None and section.steps > 0 and not lr > 0:
      raise ValueError(f"config {kind}.learning_rate is {lr!r} but the {kind} stage trains for "
                       f"{section.steps} steps: it would change nothing; set a positive "
                       f"learning rate, or {kind}.steps=0 to skip the stage")
  bad = [s for s in exp.stages if s not in STAGE_KINDS]
  if bad or len(set(exp.stages)) != len(exp.stages):
    raise ValueError(f"config stages must name each of {STAGE_KINDS} at most once, got "
                     f"{exp.stages}")
  for spec, where, registry in ((exp.task, "task", tasks.TASKS),
                                (exp.eval.evaluator, "eval.evaluator", hooks.EVALUATORS),
                                (exp.report, "report", hooks.REPORTS)):
    if where == "report" and not spec:
      continue
    kwargs = dict(spec)
    name = kwargs.pop("name", None)
    if name is None:
      raise ValueError(f"config {where} needs a 'name' (one of {registry.names()})")
    registry.check_kwargs(name, kwargs, where)
  stages_lib.check_plan(exp)
