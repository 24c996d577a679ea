"""Greedy generations for a `Suite` and GSM8K's sampled metrics, through the training decoding.

    gens = suite_generations(params, suite, tokenizer=tok, model_cfg=cfg, key=key)
    report = suites.suite_report(suite, suites.score_suite(suite, gens))

Every task is decoded greedily (temperature 0) with `rl_jax.eval.generation.generate_samples`,
the same jitted `generate` the loop trains with, with its own output budget
(`BenchTask.max_new_tokens`). The prompt width of a task is its longest prompt rounded up to a
multiple of `prompt_multiple` (fewer compiled shapes across tasks).
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np

from rl_jax.eval import generation
from rl_jax.eval.scoring import majority_correct, mean_pass_at_k
from rl_jax.eval.suites import Suite


def prompt_width(tokenizer, prompts: Sequence[str], multiple: int, max_width: int,
                 where: str) -> int:
  longest = max(len(tokenizer.encode(p)) for p in prompts)
  width = -(-max(longest, 1) // multiple) * multiple
  if longest > max_width:
    raise ValueError(f"{where}: the longest prompt has {longest} tokens but the model's "
                     f"max_seq_len leaves {max_width} for the prompt")
  return min(width, max_width)


def suite_generations(params, suite: Suite, *, tokenizer, model_cfg, key: jax.Array,
                      batch_size: int = 16, prompt_multiple: int = 32,
                      stop_ids: Sequence[int] = (), mesh=None, prompt_len: int = 0
                      ) -> dict[str, list[str]]:
  """task -> greedy generation of each example; prompt_len > 0 fixes every task's prompt width
  (e.g. the training layout's, so the loop's compiled `generate` is reused)."""
  out = {}
  for i, (name, task) in enumerate(suite.tasks.items()):
    prompts = [ex.prompt for ex in task.examples]
    width = prompt_len or prompt_width(tokenizer, prompts, prompt_multiple,
                                       model_cfg.max_seq_len - task.max_new_tokens,
                                       f"task {name!r}")
    samples = generation.generate_samples(
        params, prompts, tokenizer=tokenizer, model_cfg=model_cfg, prompt_len=width,
        max_new_tokens=task.max_new_tokens, key=jax.random.fold_in(key, i),
        batch_size=min(batch_size, len(prompts)), stop_ids=stop_ids, mesh=mesh)
    out[name] = [row[0] for row in samples.texts]
  return out


def gsm8k_metrics(params, problems: Sequence[Any], *, tokenizer, model_cfg, key: jax.Array,
                  max_new_tokens: int = 256, batch_size: int = 16, num_samples: int = 1,
                  temperature: float = 0.6, top_p: float = 1.0, ks: Sequence[int] = (1,),
                  prompt_multiple: int = 32, stop_ids: Sequence[int] = (), mesh=None
                  ) -> dict[str, float]:
  """GSM8K: greedy accuracy; with num_samples = n > 1 also pass@k (unbiased, arXiv 2107.03374)
  for k in ks and majority@n (self-consistency, arXiv 2203.11171) over n samples at
  `temperature`. A completion is correct iff `math_answer.math_reward` is 1 (its last
  "#### x" / boxed / final number equals the reference answer)."""
  from rl_jax.rewards import math_answer  # pylint: disable=g-import-not-at-top
  from rl_jax.tokenizers import chat_template  # pylint: disable=g-import-not-at-top
  prompts = [chat_template([{"role": "user", "content": p.question}]) for p in problems]
  width = prompt_width(tokenizer, prompts, prompt_multiple,
                       model_cfg.max_seq_len - max_new_tokens, "gsm8k")
  common = dict(tokenizer=tokenizer, model_cfg=model_cfg, prompt_len=width,
                max_new_tokens=max_new_tokens, batch_size=min(batch_size, len(prompts)),
                stop_ids=stop_ids, mesh=mesh)
  greedy = generation.generate_samples(params, prompts, key=key, **common)
  correct = [math_answer.math_reward(row[0], p.answer) for p, row in zip(problems, greedy.texts)]
  out = {"gsm8k/accuracy": float(np.mean(correct)), "gsm8k/n": float(len(problems)),
         "gsm8k/len_mean": float(greedy.lengths_PxN.mean())}
  if num_samples > 1:
    sampled = generation.generate_samples(params, prompts, key=jax.random.fold_in(key, 1),
                                          num_samples=num_samples, temperature=temperature,
                                          top_p=top_p, **common)
    ok = np.asarray([[math_answer.math_reward(t, p.answer) > 0.5 for t in row]
                     for p, row in zip(problems, sampled.texts)])
    for k in ks:
      out[f"gsm8k/pass@{k}"] = mean_pass_at_k(num_samples, ok.sum(axis=1), int(k))
    answers = [[math_answer.extract_answer(t) for t in row] for row in sampled.texts]
    out[f"gsm8k/maj@{num_samples}"] = float(np.mean([majority_correct(a, c)
                                                     for a, c in zip(answers, ok)]))
  return out
