"""PUGC evaluation (docs/pugc.md): greedy responses to every (entity, attribute, template)
question, each scored by the oracle that knows the world (`world.oracle_score`).

Evaluator "pugc" (config `eval.evaluator`): metrics
  eval/accuracy      fraction of responses stating the asked attribute's true value only;
  eval/oracle_score  mean oracle score; eval/ugc_accuracy / eval/no_ugc_accuracy: accuracy on
                     the places with / without UGC posts; eval/words: mean response words;
  pairs/<judge>/*    the pair statistics of every preference stage run so far (`UgcPairs.stats`);
and one record per question (question, entity, attribute, ugc, response, words, score,
correct) in <workdir>/eval/<stage>.json, which the report pairs up across stages.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rl_jax.eval import generation
from rl_jax.eval.hooks import EVALUATORS, heldout_problems
from rl_jax.projects.pugc import world as world_lib


def score(world, questions: Sequence[world_lib.Question], responses: Sequence[str],
          ugc_entities=frozenset()) -> tuple[dict[str, float], list[dict[str, Any]]]:
  """Metrics and per-question records of `responses` to `questions`."""
  records = [{"question": q.text, "entity": q.entity, "attribute": q.attribute,
              "ugc": q.entity in ugc_entities, "response": text, "words": len(text.split()),
              "score": world_lib.oracle_score(world, q, text),
              "correct": world_lib.answers_correctly(world, q, text)}
             for q, text in zip(questions, responses, strict=True)]
  return summarize(records), records


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, float]:
  out = {"eval/accuracy": float(np.mean([r["correct"] for r in records])),
         "eval/oracle_score": float(np.mean([r["score"] for r in records])),
         "eval/words": float(np.mean([r["words"] for r in records]))}
  for key, flag in (("ugc", True), ("no_ugc", False)):
    sub = [r["correct"] for r in records if r["ugc"] == flag]
    if sub:
      out[f"eval/{key}_accuracy"] = float(np.mean(sub))
  return out


@EVALUATORS.register("pugc")
def pugc_evaluator(*, ctx, max_problems: int = 0):
  """Greedy decoding of the task's questions (max_problems > 0: the first N)."""
  questions, batch_size = heldout_problems(ctx, max_problems, "pugc", "questions")
  pairs = ctx.task.preference_pairs
  if not hasattr(pairs, "world"):
    raise ValueError(f"eval.evaluator 'pugc' needs task 'pugc_ugc', got {ctx.task.name!r}")
  prompts = [q.text for q in questions]

  def evaluate(params, key, *, stage: str = "", kind: str = "", step: int = 0,
               final: bool = False):
    texts = generation.sample_completions(
        params, prompts, tokenizer=ctx.tokenizer, model_cfg=ctx.model_cfg,
        prompt_len=ctx.exp.prompt_len, max_new_tokens=ctx.exp.max_new_tokens, key=key,
        batch_size=batch_size, stop_ids=ctx.task.stop_ids, mesh=ctx.mesh)
    metrics, records = score(pairs.world, questions, [t[0] for t in texts], pairs.ugc_entities)
    for judge, stats in pairs.stats.items():
      metrics.update({f"pairs/{judge}/{k}": v for k, v in stats.items()})
    return metrics, (records if final else None)

  return evaluate
