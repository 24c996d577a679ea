"""Generic evaluation through the training rollout: greedy accuracy, pass@k, mean@n and maj@n.

Every experiment evaluates with the same jitted `rl_jax.sampling.generate.generate` it trains
with, so eval numbers see the exact decoding (prompt layout, stop tokens, budget) of the rollout:

    hook = make_task_evaluator(task, tokenizer=tok, model_cfg=cfg, prompt_len=P,
                               max_new_tokens=N, batch_size=64)
    metrics = hook(params, key)      # {"eval/accuracy": ..., "eval/len_mean": ..., ...}

Prompts go through `generate` in chunks of `batch_size` prompts (x `num_samples` rows); the last
chunk is padded with copies of its last prompt, so one compiled program serves the whole set and
the padded rows are dropped before scoring. Chunk s (starting at prompt index s) samples with
`fold_in(key, s)`: results are reproducible for a fixed key and batch size (greedy results do not
depend on either).

Modes, chosen by the temperature:
  greedy (temperature == 0, num_samples == 1):
    {prefix}/accuracy        mean reward of the greedy completion
  sampled (temperature > 0, n = num_samples):
    {prefix}/mean@n          mean reward over all n samples (average-of-n accuracy)
    {prefix}/pass@k          unbiased pass@k (Chen et al. 2021) for each k in ks, k <= n
    {prefix}/maj@n           majority-vote accuracy (`scoring.majority_correct`), with answer_fn
  both:
    {prefix}/len_mean        mean response length in tokens (stop token included), from the rollout
    {prefix}/truncated_frac  fraction of samples that hit max_new_tokens without a stop token

A sample is *correct* iff its reward > `correct_threshold` (default 0.5: for the 0/1 rewards of
the bundled tasks any threshold in [0, 1) agrees; raise it for shaped rewards with a format
bonus).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import numpy as np

from rl_jax import sharding
from rl_jax.data.encoding import decode_responses, encode_prompts
from rl_jax.eval.scoring import majority_correct, majority_vote, mean_pass_at_k, pass_at_k
from rl_jax.models.config import ModelConfig
from rl_jax.sampling.generate import GenerateCfg, check_prompt_shape, generate
from rl_jax.types import SampleKnobs

__all__ = ["Samples", "generate_samples", "sample_completions", "evaluate_problems",
           "summarize", "make_task_evaluator", "pass_at_k", "mean_pass_at_k", "majority_vote",
           "majority_correct"]


@dataclasses.dataclass(frozen=True)
class Samples:
  """texts[p][j]: completion j of prompt p; lengths_PxN / truncated_PxN from the rollout."""
  texts: list[list[str]]
  lengths_PxN: np.ndarray
  truncated_PxN: np.ndarray


def _check_sampling(num_prompts: int, batch_size: int, num_samples: int,
                    temperature: float) -> None:
  if num_prompts == 0:
    raise ValueError("evaluation needs at least one prompt, got none")
  if not isinstance(batch_size, int) or batch_size < 1:
    raise ValueError(f"batch_size must be a positive int (prompts per rollout), got {batch_size!r}")
  if not isinstance(num_samples, int) or num_samples < 1:
    raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
  if temperature == 0 and num_samples > 1:
    raise ValueError(f"temperature 0 is greedy: num_samples={num_samples} would give identical "
                     "completions; set temperature > 0 for pass@k / maj@n, or num_samples=1")


def generate_samples(params, prompts: Sequence[str], *, tokenizer, model_cfg: ModelConfig,
                     prompt_len: int, max_new_tokens: int, key: jax.Array, batch_size: int,
                     num_samples: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                     stop_ids: Sequence[int] = (), mesh=None) -> Samples:
  """`num_samples` completions of every prompt, with their token lengths.

  Stops at EOS and any extra `stop_ids` (e.g. a chat end marker; match the training rollout).
  With `mesh`, prompt rows are split over its data and fsdp axes (params placed by the caller).
  """
  _check_sampling(len(prompts), batch_size, num_samples, temperature)
  gen_cfg = GenerateCfg(max_new_tokens=max_new_tokens, group_size=num_samples,
                        stop_ids=(tokenizer.eos_id, *stop_ids), pad_id=tokenizer.pad_id)
  check_prompt_shape(prompt_len, gen_cfg, model_cfg)
  knobs = SampleKnobs.create(temperature, top_p)
  prompts = list(prompts)

  def launch(start):
    chunk = prompts[start:start + batch_size]
    padded = chunk + [chunk[-1]] * (batch_size - len(chunk))
    tokens, valid = encode_prompts(tokenizer, padded, prompt_len)
    placed = sharding.shard_batch({"tokens": tokens, "valid": valid}, mesh)
    r = generate(params, placed["tokens"], placed["valid"], jax.random.fold_in(key, start),
                 knobs, model_cfg=model_cfg, cfg=gen_cfg)
    return len(chunk), dict(tokens=r.tokens_BxL, loss_mask=r.loss_mask_BxL,
                            lengths=r.response_len_B, truncated=r.truncated_B)

  texts, lengths, truncated = [], [], []
  starts = list(range(0, len(prompts), batch_size))
  pending = launch(starts[0])
  for i in range(len(starts)):
    n_real, out = pending
    if i + 1 < len(starts):
      pending = launch(starts[i + 1])  # dispatch the next chunk before blocking on this one
    host = sharding.to_host(out)
    rows = n_real * num_samples  # padded prompts' rows come last: drop them
    flat = decode_responses(tokenizer, host["tokens"][:rows], host["loss_mask"][:rows],
                            prompt_len, gen_cfg.stop_ids)
    texts += [flat[j:j + num_samples] for j in range(0, rows, num_samples)]
    lengths.append(host["lengths"][:rows].reshape(n_real, num_samples))
    truncated.append(host["truncated"][:rows].reshape(n_real, num_samples))
  return Samples(texts, np.concatenate(lengths).astype(np.int32),
                 np.concatenate(truncated).astype(bool))


def sample_completions(params, prompts: Sequence[str], *, tokenizer, model_cfg: ModelConfig,
                       prompt_len: int, max_new_tokens: int, key: jax.Array, batch_size: int,
                       num_samples: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                       stop_ids: Sequence[int] = (), mesh=None) -> list[list[str]]:
  """Per prompt, `num_samples` completion texts (greedy when temperature == 0); see
  `generate_samples`."""
  return generate_samples(params, prompts, tokenizer=tokenizer, model_cfg=model_cfg,
                          prompt_len=prompt_len, max_new_tokens=max_new_tokens, key=key,
                          batch_size=batch_size, num_samples=num_samples,
                          temperature=temperature, top_p=top_p, stop_ids=stop_ids,
                          mesh=mesh).texts


def _check_ks(ks: Sequence[int], num_samples: int) -> tuple[int, ...]:
  ks = tuple(ks)
  bad = [k for k in ks
         if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= num_samples]
  if bad:
    raise ValueError(f"ks={ks}: every k must be an int in [1, num_samples={num_samples}]; "
                     f"bad: {bad}")
  return ks


def summarize(rewards_PxN: np.ndarray, samples: Samples, *, sampled: bool, ks: Sequence[int] = (1,),
              answers: Sequence[Sequence[str | None]] | None = None,
              correct_threshold: float = 0.5, prefix: str = "eval") -> dict[str, float]:
  """The metrics of the module docstring from per-sample rewards (and answers, for maj@n)."""
  rewards = np.asarray(rewards_PxN, np.float64)
  num_prompts, n = rewards.shape
  out = {f"{prefix}/len_mean": float(samples.lengths_PxN.mean()),
         f"{prefix}/truncated_frac": float(samples.truncated_PxN.mean())}
  if not sampled:
    out[f"{prefix}/accuracy"] = float(rewards[:, 0].mean())
    return out
  correct = rewards > correct_threshold
  out[f"{prefix}/mean@{n}"] = float(rewards.mean())
  for k in _check_ks(ks, n):
    out[f"{prefix}/pass@{k}"] = mean_pass_at_k(n, correct.sum(axis=1), k)
  if answers is not None:
    out[f"{prefix}/maj@{n}"] = float(np.mean([majority_correct(a, c)
                                              for a, c in zip(answers, correct)]))
  return out


def _rewards(problems, texts, reward_fn) -> np.ndarray:
  out = np.asarray([[reward_fn(p, t) for t in row] for p, row in zip(problems, texts)],
                   np.float64)
  bad = np.argwhere(~np.isfinite(out))
  if bad.size:
    p, j = bad[0]
    raise ValueError(f"reward_fn returned {out[p, j]} for problem {p}, sample {j}: rewards "
                     "must be finite")
  return out


def evaluate_problems(params, problems: Sequence[Any], *, prompt_fn: Callable[[Any], str],
                      reward_fn: Callable[[Any, str], float],
                      answer_fn: Callable[[str], str | None] | None = None, tokenizer,
                      model_cfg: ModelConfig, prompt_len: int, max_new_tokens: int,
                      key: jax.Array, batch_size: int, num_samples: int = 1,
                      temperature: float = 0.0, top_p: float = 1.0, ks: Sequence[int] = (1,),
                      correct_threshold: float = 0.5, stop_ids: Sequence[int] = (), mesh=None,
                      prefix: str = "eval") -> dict[str, float]:
  """Samples every problem's prompt and scores it: the metrics of the module docstring.

  reward_fn(problem, completion) -> float; answer_fn(completion) -> answer string or None
  (enables maj@n in sampled mode).
  """
  _check_sampling(len(problems), batch_size, num_samples, temperature)
  _check_ks(ks, num_samples)
  samples = generate_samples(params, [prompt_fn(p) for p in problems], tokenizer=tokenizer,
                             model_cfg=model_cfg, prompt_len=prompt_len,
                             max_new_tokens=max_new_tokens, key=key, batch_size=batch_size,
                             num_samples=num_samples, temperature=temperature, top_p=top_p,
                             stop_ids=stop_ids, mesh=mesh)
  sampled = temperature > 0
  answers = ([[answer_fn(t) for t in row] for row in samples.texts]
             if answer_fn is not None and sampled else None)
  return summarize(_rewards(problems, samples.texts, reward_fn), samples, sampled=sampled, ks=ks,
                   answers=answers, correct_threshold=correct_threshold, prefix=prefix)


def make_task_evaluator(task, *, tokenizer, model_cfg: ModelConfig, prompt_len: int,
                        max_new_tokens: int, batch_size: int, num_samples: int = 1,
                        temperature: float = 0.0, top_p: float = 1.0, ks: Sequence[int] = (1,),
                        correct_threshold: float = 0.5, stop_ids: Sequence[int] = (),
                        mesh=None, prefix: str = "eval",
                        problems: Sequence[Any] | None = None
                        ) -> Callable[[Any, jax.Array], dict[str, float]]:
  """An eval hook `(params, key) -> metrics` over `task.eval` (or `problems`).

  `task` needs `.eval`, `.prompt_fn`, `.reward_fn`, and may have `.answer_fn` (for maj@n).
  Settings are checked here, so a bad eval config fails at setup rather than at the first eval.
  """
  missing = [a for a in ("eval", "prompt_fn", "reward_fn") if not hasattr(task, a)]
  if missing:
    raise ValueError(f"make_task_evaluator: task {type(task).__name__} lacks {missing}; expected "
                     "an object with .eval (problems), .prompt_fn and .reward_fn")
  problems = list(task.eval if problems is None else problems)
  _check_sampling(len(problems), batch_size, num_samples, temperature)
  _check_ks(ks, num_samples)
  SampleKnobs.create(temperature, top_p)  # validates the knobs
  check_prompt_shape(prompt_len, GenerateCfg(max_new_tokens=max_new_tokens), model_cfg)
  answer_fn = getattr(task, "answer_fn", None)

  def evaluate(params, key: jax.Array) -> dict[str, float]:
    return evaluate_problems(params, problems, prompt_fn=task.prompt_fn, reward_fn=task.reward_fn,
                             answer_fn=answer_fn, tokenizer=tokenizer, model_cfg=model_cfg,
                             prompt_len=prompt_len, max_new_tokens=max_new_tokens, key=key,
                             batch_size=batch_size, num_samples=num_samples,
                             temperature=temperature, top_p=top_p, ks=ks,
                             correct_threshold=correct_threshold, stop_ids=stop_ids, mesh=mesh,
                             prefix=prefix)

  return evaluate
