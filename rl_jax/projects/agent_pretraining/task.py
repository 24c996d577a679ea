"""Task "agent_api": the API universe's corpora, call demonstrations and held-out calls.

  pretrain (default corpus): packed rows of the `mixture` (token shares, `corpus.Mixture`), or,
     with `agent_ratio` >= 0, the mixture rescaled to agent share p (the mixing study's knob);
  pretrain (corpus=NAME, e.g. the `pretrain.then` stage "seed"): packed rows of `corpora[NAME]`,
     drawn from a fixed pool of `pool_docs` documents (Stage II's "10k seed trajectories");
  sft: `sft_examples` call demonstrations of seen APIs (prompt: the task; completion: the
     recalled doc and the call);
  eval: `eval_calls` calls of docs-only APIs (reward: exact call match).

Hephaestus, arXiv 2502.06589; docs/agent_pretraining.md.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from rl_jax.projects.agent_pretraining import corpus as corpus_lib
from rl_jax.projects.agent_pretraining.world import ApiUniverse, call_correct, word_tokenizer
from rl_jax.tasks import TASKS, TaskData

DEFAULT_MIXTURE = {"api_docs": 0.18, "trajectories": 0.18, "code": 0.32, "text": 0.32}


def build_world(n_apis: int, docs_only: int, world_seed: int):
  universe = ApiUniverse(n_apis=n_apis, docs_only=docs_only, seed=world_seed)
  return universe, word_tokenizer(universe.vocabulary())


def mixture_weights(universe, mixture: Mapping[str, float], agent_ratio: float):
  """(sources, normalised token shares) of the default corpus."""
  weights = corpus_lib.check_weights(dict(mixture), "task.mixture")
  sources = corpus_lib.build_sources(universe, list(weights))
  if agent_ratio >= 0:
    weights = corpus_lib.with_agent_ratio(weights, sources, agent_ratio)
  return sources, weights


@TASKS.register("agent_api")
def agent_api_task(*, seed: int, n_apis: int = 300, docs_only: int = 60, world_seed: int = 0,
                   mixture: Mapping[str, float] | None = None, agent_ratio: float = -1.0,
                   corpora: Mapping[str, Mapping[str, float]] | None = None,
                   pool_docs: int = 10_000, row_len: int = 64, sft_examples: int = 2000,
                   eval_calls: int = 120, recall_doc: bool = True) -> TaskData:
  """The API-universe task (module docstring).

  n_apis / docs_only / world_seed: the universe (`world.ApiUniverse`); mixture: {source: token
  share} of stage I (default `DEFAULT_MIXTURE`: agent 36%, agent : code : text about 1 : 1 : 1);
  agent_ratio: -1 keeps `mixture`, p in [0, 1] rescales it to agent share p; corpora: named
  corpora for `pretrain.corpus` (default {"seed": {"seed_trajectories": 1}}); pool_docs: size of
  each named corpus's fixed document pool (0 = fresh draws); row_len: packed row length;
  sft_examples: call demonstrations; eval_calls: held-out calls of docs-only APIs; recall_doc:
  demonstrations recall the API's doc before the call (as seed trajectories do) [I]."""
  universe, tok = build_world(n_apis, docs_only, world_seed)
  sources, weights = mixture_weights(universe, mixture or DEFAULT_MIXTURE, agent_ratio)
  count = lambda text: len(text.split())
  default_mix = corpus_lib.Mixture(sources, weights, count)
  named = {}
  for name, mix in (corpora if corpora is not None else
                    {"seed": {"seed_trajectories": 1.0}}).items():
    w = corpus_lib.check_weights(dict(mix), f"task.corpora.{name}")
    named[name] = corpus_lib.Mixture(corpus_lib.build_sources(universe, list(w)), w, count)
  pools: dict[str, list[list[int]]] = {}

  def pool(name: str) -> list[list[int]]:
    """The named corpus's fixed documents (drawn once, seed-determined)."""
    if name not in pools:
      docs, _ = named[name].draw(pool_docs, np.random.default_rng([seed, 81]))
      pools[name] = [tok.encode(d) for d in docs]
    return pools[name]

  def pretrain_batch(batch_size: int, rng: np.random.Generator, corpus: str = ""):
    if not corpus:
      rows, _, _ = corpus_lib.draw_rows(default_mix, tok.encode, tok.eos_id, batch_size, row_len,
                                        rng)
      return rows
    if corpus not in named:
      raise ValueError(f"config pretrain.corpus={corpus!r}: task 'agent_api' has corpora "
                       f"{sorted(named)} (task.corpora)")
    if pool_docs == 0:
      rows, _, _ = corpus_lib.draw_rows(named[corpus], tok.encode, tok.eos_id, batch_size,
                                        row_len, rng)
      return rows
    docs = pool(corpus)
    ids, have = [], 0
    while have < batch_size * row_len:
      ids.append(docs[int(rng.integers(len(docs)))])
      have += len(ids[-1]) + 1
    return corpus_lib.pack_rows(ids, batch_size, row_len, tok.eos_id)

  rng = np.random.default_rng([seed, 82])
  train = [universe.draw_call(universe.seen, rng) for _ in range(sft_examples)]
  held_out = [universe.draw_call(universe.docs_only, rng) for _ in range(eval_calls)]
  return TaskData(
      name="agent_api", train=train, eval=held_out,
      prompt_fn=lambda c: universe.demonstration(c, recall_doc)[0],
      completion_fn=lambda c: universe.demonstration(c, recall_doc)[1],
      reward_fn=lambda c, text: float(call_correct(c, text)[0]),
      tokenizer=tok, pretrain_batch=pretrain_batch)
