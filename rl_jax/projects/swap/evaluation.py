"""The SWAP study's evaluator: accuracy, length, necessary steps kept and importance AUROC.

Evaluator "swap" (config `eval.evaluator`), on the task's held-out problems:

  greedy decoding (one response per problem):
    eval/accuracy          exact-match accuracy
    eval/len_mean          mean response length in tokens (stop token included)
    eval/steps_mean        steps per response (the oracle's split); eval/redundant_mean the
                           redundant ones (restatements, repeats, digressions)
    eval/necessary_kept    fraction of each problem's necessary steps present, averaged
  `num_samples` sampled responses per problem (temperature `temperature`), scored by the
  evaluated policy's own step importance I_k = P_k - P_{k-1} (the one-pass probe of
  `rl_jax.algorithms.swap`, the splitter and trigger of rl.advantage):
    eval/importance_auroc  sklearn ROC AUC of I_k for necessary (1) vs redundant (0) steps
    eval/importance_necessary / eval/importance_redundant: mean I_k of each class
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np
from sklearn.metrics import roc_auc_score

from rl_jax.algorithms import swap
from rl_jax.eval import batches
from rl_jax.eval.hooks import EVALUATORS
from rl_jax.projects.swap import task as task_lib
from rl_jax.types import SampleKnobs


def step_importance_records(problems_per_row, texts, num_steps_B, answer_mask_BxKp1xA,
                            logp_BxKp1xA):
  """(importance I_k, necessary label) of every step the probe scored, labelled by the oracle.

  The oracle's steps and SWAP's splitter agree on this task (same delimiter and trigger); rows
  where their counts differ (steps merged past max_steps) are skipped."""
  p_BxKp1 = (np.asarray(logp_BxKp1xA) * np.asarray(answer_mask_BxKp1xA)).sum(-1)
  scores, labels = [], []
  for i, (problem, text) in enumerate(zip(problems_per_row, texts)):
    steps = task_lib.split(text)
    n = int(num_steps_B[i])
    if n != len(steps) or n == 0:
      continue
    scores += list(np.diff(p_BxKp1[i, :n + 1]))
    labels += task_lib.step_labels(problem, steps)
  return np.asarray(scores, np.float64), np.asarray(labels, bool)


def auroc(scores, labels) -> float:
  if labels.size == 0 or labels.all() or not labels.any():
    return float("nan")
  return float(roc_auc_score(labels, scores))


@EVALUATORS.register("swap")
def swap_evaluator(*, ctx, max_problems: int = 0, num_samples: int = 4,
                   temperature: float = 1.0):
  """Module docstring. max_problems > 0 keeps the first N held-out problems; num_samples
  responses per problem (at `temperature`) are scored for the importance AUROC (0 skips it)."""
  problems = list(ctx.task.eval)[:max_problems or None]
  spec = dict(ctx.exp.rl.advantage)
  if spec.get("name") != "swap":
    raise ValueError("eval.evaluator 'swap' reads the splitter and trigger of rl.advantage, "
                     f"which must be {{'name': 'swap', ...}}, got {spec.get('name')!r}")
  greedy_rollout = swap.SwapRollout(ctx, dataclasses.replace(ctx.exp.rl, group_size=1))
  sample_rollout = (swap.SwapRollout(ctx, dataclasses.replace(ctx.exp.rl,
                                                              group_size=num_samples))
                    if num_samples else None)
  batch = max(1, min(ctx.exp.eval.batch_size, len(problems)))
  greedy, sampled = SampleKnobs.create(0.0), SampleKnobs.create(temperature)

  def evaluate(params, key, *, stage: str = "", kind: str = "", step: int = 0,
               final: bool = False):
    acc, lens, kept, n_steps, n_red = [], [], [], [], []
    for chunk, _, out in batches.rollout_chunks(greedy_rollout, params, problems, key, greedy,
                                                batch):
      for p, text, n in zip(chunk, out.texts, out.rollout.response_len_B):
        labels = task_lib.step_labels(p, task_lib.split(text))
        acc.append(task_lib.reward(p, text))
        lens.append(float(n))
        kept.append(task_lib.necessary_kept(p, text))
        n_steps.append(len(labels))
        n_red.append(len(labels) - sum(labels))
    metrics = {"eval/accuracy": float(np.mean(acc)), "eval/len_mean": float(np.mean(lens)),
               "eval/necessary_kept": float(np.mean(kept)),
               "eval/steps_mean": float(np.mean(n_steps)),
               "eval/redundant_mean": float(np.mean(n_red))}
    if sample_rollout is not None:
      scores, labels = [], []
      for start, chunk, padded in batches.padded_chunks(problems, batch):
        out = sample_rollout(params, padded, jax.random.fold_in(key, 10**6 + start), sampled)
        rows = [p for p in padded for _ in range(num_samples)]
        keep = len(chunk) * num_samples
        ex = out.extras
        s, l = step_importance_records(rows[:keep], out.texts[:keep], ex["swap/num_steps"],
                                       ex[swap.EXTRA_AMASK], ex[swap.EXTRA_LOGP])
        scores.append(s)
        labels.append(l)
      s, l = np.concatenate(scores), np.concatenate(labels)
      metrics.update({"eval/importance_auroc": auroc(s, l),
                      "eval/importance_necessary": float(s[l].mean()) if l.any() else 0.0,
                      "eval/importance_redundant": float(s[~l].mean()) if (~l).any() else 0.0,
                      "eval/steps_scored": float(l.size)})
    return metrics, None

  return evaluate
