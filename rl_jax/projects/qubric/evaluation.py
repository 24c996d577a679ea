"""The evaluator of QUBRIC (docs/qubric.md), registered as "qubric": greedy answers to the
held-out problems (new entities, every scenario's rewritten query), scored against the world.

Metrics (means over the held-out problems): eval/recall (key-point recall of the scenario: the
study's metric, an ArenaHard analogue, docs/qubric.md), eval/precision (stated key points / stated
statements), eval/wrong (fraction of statements that are false or about attributes the entity
does not have), eval/statements (statements per answer). Records (scenario, recall, answer) go to
eval/<stage>.json.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from rl_jax.eval.hooks import EVALUATORS, greedy_records_evaluator, heldout_problems
from rl_jax.projects.qubric import world


def answer_record(problem, text: str) -> dict:
  entity, scenario = problem.item.entity, problem.item.scenario
  stated = world.parse_statements(text)
  points = set(world.key_points(entity, scenario))
  hits = sum(world.statement(a, v) in points for a, v in stated)
  wrong = sum(entity.value(a) != v for a, v in stated)
  return {"scenario": scenario, "recall": world.key_point_recall(entity, scenario, text),
          "precision": hits / len(stated) if stated else 0.0,
          "wrong": wrong / len(stated) if stated else 0.0, "statements": len(stated),
          "answer": text}


def summarize(records) -> dict[str, float]:
  return {f"eval/{k}": float(np.mean([r[k] for r in records]))
          for k in ("recall", "precision", "wrong", "statements")}


@EVALUATORS.register("qubric")
def qubric_evaluator(*, ctx, max_problems: int = 0):
  """Greedy answers on the first `max_problems` held-out problems (0 = all)."""
  from rl_jax.sampling.rollouts import ROLLOUTS  # pylint: disable=g-import-not-at-top
  problems, batch_size = heldout_problems(ctx, max_problems, "qubric")
  rollout = ROLLOUTS.get("generate")(ctx=ctx, section=dataclasses.replace(ctx.exp.rl,
                                                                          group_size=1))

  def records_of(chunk, out):
    return [answer_record(p, t) for p, t in zip(chunk, out.texts[:len(chunk)])]

  return greedy_records_evaluator(rollout, problems, batch_size, records_of, summarize)
