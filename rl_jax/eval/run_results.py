"""A finished run's results, read back from its workdir for the projects' reports.

The loop writes (docs/architecture.md, "Outputs in the workdir"):

  config.json        "stage_plan": the stages in run order (name, kind, section, ...)
  summary.json       "eval": stage name -> that stage's final eval metrics
  metrics.jsonl      one record a step, each with its "stage"
  eval/<stage>.json  the evaluator's records of a stage ({"records": ..., ...})

    for result in run_results.finished_stages(workdir):
      row = result.row(result.name, ("accuracy",))
      if result.training:
        row["reward_first"], row["reward_last"] = run_results.quarter_means(
            result.training, "reward/mean")

One reader for every report, so all of them agree on what a stage's results are: the final
evaluation of the stage, its RL step records (those that carry TRAINING_KEY), and its saved eval
records, in the order of the stage plan.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Sequence

import numpy as np

from rl_jax import metrics as metrics_lib

# A metric every RL step's record carries; SFT steps and records without a rollout do not.
TRAINING_KEY = "reward/mean"


def _read_json(workdir: str, name: str) -> dict[str, Any]:
  with open(os.path.join(workdir, name), encoding="utf-8") as f:
    return json.load(f)


def stage_plan(workdir: str) -> list[dict[str, Any]]:
  """config.json's stage plan: one dict a stage (name, kind, section, ...), in run order."""
  return _read_json(workdir, "config.json")["stage_plan"]


def final_evals(workdir: str, *, required: bool = True) -> dict[str, dict[str, float]]:
  """summary.json's "eval": stage name -> final eval metrics. required=False: {} where the run
  wrote no summary.json or it has no "eval" (e.g. a run still training, or one without an
  evaluator)."""
  if not required:
    if not os.path.exists(os.path.join(workdir, "summary.json")):
      return {}
    return _read_json(workdir, "summary.json").get("eval", {})
  return _read_json(workdir, "summary.json")["eval"]


def metric_records(workdir: str) -> list[dict[str, Any]]:
  """Every record of metrics.jsonl, in the order written."""
  return metrics_lib.read_metrics(os.path.join(workdir, "metrics.jsonl"))


def saved_evals(workdir: str) -> dict[str, dict[str, Any]]:
  """Stage name -> its eval/<stage>.json, for the stages of the plan that wrote one (an evaluator
  that returned records at the stage's end), in the order of the plan."""
  out = {}
  for stage in stage_plan(workdir):
    path = os.path.join(workdir, "eval", f"{stage['name']}.json")
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        out[stage["name"]] = json.load(f)
  return out


@dataclasses.dataclass(frozen=True)
class StageResult:
  """One stage of a finished run: its plan entry, final eval metrics and RL step records."""
  stage: dict[str, Any]
  final: dict[str, float]
  training: list[dict[str, Any]]

  @property
  def name(self) -> str:
    return self.stage["name"]

  @property
  def kind(self) -> str:
    return self.stage["kind"]

  def row(self, policy: str, columns: Sequence[str]) -> dict[str, Any]:
    """A report row: policy label, stage name and kind, and the final eval/<column> of each
    column (None where the evaluator did not report it)."""
    row = {"policy": policy, "stage": self.name, "kind": self.kind}
    row.update({c: self.final.get(f"eval/{c}") for c in columns})
    return row


def finished_stages(workdir: str) -> list[StageResult]:
  """The stages of the plan with a final evaluation in summary.json, in plan order, each with
  its RL step records (TRAINING_KEY present) from metrics.jsonl; raises if there is none."""
  finals = final_evals(workdir)
  records = metric_records(workdir)
  out = [StageResult(stage, finals[stage["name"]],
                     [r for r in records if r.get("stage") == stage["name"] and TRAINING_KEY in r])
         for stage in stage_plan(workdir) if stage["name"] in finals]
  if not out:
    raise ValueError(f"{workdir}: summary.json has no final evaluation of any stage")
  return out


def quarter_means(records: Sequence[dict[str, Any]], key: str) -> tuple[float, float]:
  """Mean of `key` over the first and over the last quarter of `records` (at least one record
  each): where training started and where it ended, less noisy than single steps."""
  q = max(1, len(records) // 4)
  return (float(np.mean([r[key] for r in records[:q]])),
          float(np.mean([r[key] for r in records[-q:]])))
