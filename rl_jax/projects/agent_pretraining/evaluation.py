"""Evaluator "agent_pretraining": held-out losses per corpus source and call accuracy.

  eval/loss/<source>   token NLL on `rows_per_source` packed rows of fresh documents of the source
                       (drawn with a held-out rng, never a training draw);
  eval/agent_loss      token-weighted NLL over the agent sources' rows (docs, trajectories);
  eval/general_loss    the same over the other sources' rows (code, text);
  eval/call_accuracy   greedy calls on the task's held-out calls of docs-only APIs: exact match of
                       the last "call NAME ( ... )" (name, parameters in order, values);
  eval/schema_accuracy the same, API name and parameter names in order (values not checked);
  eval/name_accuracy   the same, API name only; eval/call_accuracy_seen: held-out argument values
                       of seen APIs (`seen_calls` of them; 0 = skip).

The mixing study fits its law to eval/agent_loss and eval/general_loss (docs/agent_pretraining.md).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax import logprobs as logprobs_lib
from rl_jax import sharding
from rl_jax.eval import generation
from rl_jax.eval.hooks import EVALUATORS
from rl_jax.projects.agent_pretraining import corpus as corpus_lib
from rl_jax.projects.agent_pretraining.task import build_world
from rl_jax.projects.agent_pretraining.world import call_correct

LOSS_SOURCES = ("api_docs", "trajectories", "code", "text")


@functools.partial(jax.jit, static_argnames=("cfg",))
def _nll_sums(params, tokens_BxL, valid_BxL, *, cfg):
  """(sum of token NLL, number of predicted tokens) per row: positions 1.. of each row."""
  logp_BxL = logprobs_lib.token_logprobs(params, tokens_BxL, valid_BxL, cfg=cfg)
  mask_BxL = valid_BxL.at[:, 0].set(False).astype(jnp.float32)
  return -jnp.sum(logp_BxL * mask_BxL, axis=1), jnp.sum(mask_BxL, axis=1)


def heldout_rows(universe, tok, names, rows: int, row_len: int, seed: int):
  """{source: (tokens, valid)} of fresh documents per source (numpy seed [seed, 83, i])."""
  out = {}
  for i, name in enumerate(names):
    src = corpus_lib.build_sources(universe, [name])
    mix = corpus_lib.Mixture(src, {name: 1.0}, lambda t: len(t.split()), calibration_docs=20)
    (tokens, valid, _), _, _ = corpus_lib.draw_rows(mix, tok.encode, tok.eos_id, rows, row_len,
                                                    np.random.default_rng([seed, 83, i]))
    out[name] = (tokens, valid)
  return out


@EVALUATORS.register("agent_pretraining")
def agent_pretraining_evaluator(*, ctx, rows_per_source: int = 16, call_accuracy: bool = True,
                                seen_calls: int = 0, loss_sources=LOSS_SOURCES):
  """rows_per_source: held-out rows per loss source; call_accuracy: greedy call evaluation (off
  in the mixing grid, which needs losses only); seen_calls: also score this many held-out calls
  of seen APIs; loss_sources: the sources with a held-out loss."""
  kw = dict(ctx.exp.task)
  if kw.get("name") != "agent_api":
    raise ValueError("eval.evaluator 'agent_pretraining' needs task 'agent_api', got "
                     f"{kw.get('name')!r}")
  universe, tok = build_world(kw.get("n_apis", 300), kw.get("docs_only", 60),
                              kw.get("world_seed", 0))
  sources = corpus_lib.build_sources(universe, list(loss_sources))
  rows = heldout_rows(universe, tok, list(loss_sources), rows_per_source,
                      kw.get("row_len", 64), ctx.seed)
  rng = np.random.default_rng([ctx.seed, 84])
  seen = [universe.draw_call(universe.seen, rng) for _ in range(seen_calls)]
  exp = ctx.exp

  def accuracy(params, key, calls):
    prompts = [ctx.task.prompt_fn(c) for c in calls]
    texts = generation.sample_completions(
        params, prompts, tokenizer=tok, model_cfg=ctx.model_cfg, prompt_len=exp.prompt_len,
        max_new_tokens=exp.max_new_tokens, key=key,
        batch_size=min(exp.eval.batch_size, len(calls)), mesh=ctx.mesh)
    scores = [call_correct(c, t[0]) for c, t in zip(calls, texts)]
    return np.asarray(scores, float), prompts, [t[0] for t in texts]

  def evaluate(params, key, *, stage: str = "", kind: str = "", step: int = 0,
               final: bool = False):
    metrics, agent, general = {}, [0.0, 0.0], [0.0, 0.0]
    for name, (tokens, valid) in rows.items():
      placed = sharding.shard_batch([jnp.asarray(tokens), jnp.asarray(valid)], ctx.mesh)
      s, n = (float(np.sum(x)) for x in sharding.to_host(
          _nll_sums(params, *placed, cfg=ctx.model_cfg)))
      metrics[f"eval/loss/{name}"] = s / n
      acc = agent if sources[name].agent else general
      acc[0], acc[1] = acc[0] + s, acc[1] + n
    if agent[1]:
      metrics["eval/agent_loss"] = agent[0] / agent[1]
    if general[1]:
      metrics["eval/general_loss"] = general[0] / general[1]
    records = None
    if call_accuracy:
      scores, prompts, texts = accuracy(params, key, list(ctx.task.eval))
      metrics["eval/call_accuracy"] = float(scores[:, 0].mean())
      metrics["eval/schema_accuracy"] = float(scores[:, 1].mean())
      metrics["eval/name_accuracy"] = float(scores[:, 2].mean())
      records = [{"prompt": p, "completion": t, "correct": bool(s[0]), "schema_correct": bool(s[1]),
                  "name_correct": bool(s[2])}
                 for p, t, s in zip(prompts, texts, scores)]
      if seen:
        seen_scores, _, _ = accuracy(params, jax.random.fold_in(key, 1), seen)
        metrics["eval/call_accuracy_seen"] = float(seen_scores[:, 0].mean())
    return metrics, records

  return evaluate
