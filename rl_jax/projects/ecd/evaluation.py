"""ECD evaluation (IFEval / FollowBench style, docs/ecd.md): greedy responses to the held-out
instructions, each constraint checked exactly by `world.ConstraintChecker`.

  prompt-level strict accuracy  = mean over instructions of [every constraint satisfied]
  instruction-level accuracy    = satisfied constraints / all constraints (pooled)
  by level k (k constraints)    = the same two numbers on the level-k instructions

Evaluator "ecd" (config `eval.evaluator`): the metrics eval/accuracy (= prompt-level strict),
eval/instruction_acc, eval/strict_level{k}, eval/instruction_level{k}, and one record per
instruction (prompt, level, response, satisfied) in <workdir>/eval/<stage>.json for the report.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rl_jax.eval import generation
from rl_jax.eval.hooks import EVALUATORS, heldout_problems
from rl_jax.projects.ecd import world


def score(instructions: Sequence[world.Instruction], responses: Sequence[str]
          ) -> tuple[dict[str, float], list[dict[str, Any]]]:
  """Metrics and per-instruction records of `responses` to `instructions`."""
  checker = world.ConstraintChecker()
  records = [{"prompt": ins.render(), "level": ins.level, "response": text,
              "satisfied": [bool(x) for x in checker.check(ins, text)]}
             for ins, text in zip(instructions, responses)]
  return summarize(records), records


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, float]:
  """Prompt-level strict and instruction-level accuracy, overall and by level."""
  def two(rs):
    strict = float(np.mean([all(r["satisfied"]) for r in rs]))
    flat = [x for r in rs for x in r["satisfied"]]
    return strict, float(np.mean(flat)) if flat else 0.0
  out = {}
  out["eval/accuracy"], out["eval/instruction_acc"] = two(records)
  for k in sorted({r["level"] for r in records}):
    out[f"eval/strict_level{k}"], out[f"eval/instruction_level{k}"] = two(
        [r for r in records if r["level"] == k])
  return out


@EVALUATORS.register("ecd")
def ecd_evaluator(*, ctx, max_problems: int = 0):
  """Greedy decoding of the task's held-out instructions (max_problems > 0: the first N)."""
  instructions, batch_size = heldout_problems(ctx, max_problems, "ecd")
  prompts = [ctx.task.prompt_fn(i) for i in instructions]

  def evaluate(params, key, *, stage: str = "", kind: str = "", step: int = 0,
               final: bool = False):
    texts = generation.sample_completions(
        params, prompts, tokenizer=ctx.tokenizer, model_cfg=ctx.model_cfg,
        prompt_len=ctx.exp.prompt_len, max_new_tokens=ctx.exp.max_new_tokens, key=key,
        batch_size=batch_size, stop_ids=ctx.task.stop_ids, mesh=ctx.mesh)
    metrics, records = score(instructions, [t[0] for t in texts])
    return metrics, (records if final else None)

  return evaluate
