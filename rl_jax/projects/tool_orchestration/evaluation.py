"""The evaluator of seed S4: greedy tool episodes on the held-out workflows, scored with every
reward the study compares, whatever reward the policy was trained on (docs/tool_orchestration.md).

Registered as evaluator "tool_orchestration". Metrics (means over the held-out workflows):
eval/success (full-workflow success: every step exactly right, in dependency order), eval/
turn_accuracy (steps exactly right), eval/graduated, eval/R_atomic, eval/R_orch,
eval/calls_per_episode, eval/malformed (episodes with a malformed call), and the error
breakdown of the calls that named a workflow function (SPEC 4(c): value errors dominate):
eval/err_name (calls to a function outside the workflow), eval/err_params (right function,
wrong parameter set or types), eval/err_values (right structure, wrong values). Records (one per
workflow: template, success, turn accuracy, graduated reward, calls) go to eval/<stage>.json.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from rl_jax.eval.hooks import EVALUATORS, greedy_records_evaluator, heldout_problems
from rl_jax.projects.tool_orchestration import reward as rw
from rl_jax.projects.tool_orchestration.scoring import ledger_calls
from rl_jax.projects.tool_orchestration.task import ground_truth


def call_errors(calls, steps) -> tuple[int, int, int]:
  """(name, params, values) error counts of an episode's calls against the ground truth."""
  name = params = values = 0
  for call in calls:
    gt = next((s for s in steps if isinstance(call, dict) and s.function == call.get("name")),
              None)
    if gt is None:
      name += 1
      continue
    _, structure, value = rw.ast_scores(call, gt)
    if structure < rw.STRUCTURE_SCORE - 1e-9:
      params += 1
    elif value == 0.0:
      values += 1
  return name, params, values


def episode_record(item, episode) -> dict:
  calls, pairs = ledger_calls(episode.ledger)
  steps = ground_truth(item)
  scores = rw.score(calls, pairs, steps, reward="graduated")
  err = call_errors(calls, steps)
  return {"template": item.template, "success": scores["success"],
          "turn_accuracy": scores["turn_accuracy"], "graduated": scores["reward"],
          "R_atomic": scores["R_atomic"], "R_orch": scores["R_orch"], "calls": len(calls),
          "malformed": float(episode.ledger.n_malformed > 0), "err_name": err[0],
          "err_params": err[1], "err_values": err[2]}


def summarize(records) -> dict[str, float]:
  mean = lambda k: float(np.mean([r[k] for r in records]))
  n_calls = max(1, sum(r["calls"] for r in records))
  out = {f"eval/{k}": mean(k) for k in ("success", "turn_accuracy", "graduated", "R_atomic",
                                        "R_orch", "malformed")}
  out["eval/calls_per_episode"] = mean("calls")
  for k in ("err_name", "err_params", "err_values"):
    out[f"eval/{k}"] = float(sum(r[k] for r in records)) / n_calls
  return out


@EVALUATORS.register("tool_orchestration")
def orchestration_evaluator(*, ctx, max_problems: int = 0):
  """Greedy episodes on the first `max_problems` held-out workflows (0 = all)."""
  from rl_jax.sampling.rollouts import ROLLOUTS  # pylint: disable=g-import-not-at-top
  problems, batch_size = heldout_problems(ctx, max_problems, "tool_orchestration", "workflows")
  section = dataclasses.replace(ctx.exp.rl, group_size=1, rollout=dataclasses.replace(
      ctx.exp.rl.rollout, native_rows=0))
  rollout = ROLLOUTS.get("tool")(ctx=ctx, section=section)

  def records_of(chunk, out):
    return [episode_record(p, e) for p, e in zip(chunk, out.episodes[:len(chunk)])]

  return greedy_records_evaluator(rollout, problems, batch_size, records_of, summarize)
