"""Corpus sources of the API universe and their mixture (Hephaestus-Forge, arXiv 2502.06589).

A `CorpusSource` draws one document (a string) from a numpy Generator; `agent` says whether it
counts towards the agent share p of the mixing study (API docs and trajectories do; code and
general text do not, the paper's agent : code : text split). Sources are registered factories
`(universe, **kwargs) -> CorpusSource` in `CORPUS_SOURCES`, chosen by name in the task config
with a mixture weight each (`task.mixture`).

Mixture weights are shares of *tokens*: a document of source s is drawn with probability

    q_s = (w_s / m_s) / sum_r (w_r / m_r)          m_s: mean tokens per document of s

so the expected token share of s in a batch is w_s (tests/projects/agent_pretraining/ checks
it). `with_agent_ratio(weights, p)` rescales a mixture so that the agent sources hold p of the
tokens (split among them as their configured weights) and the others 1 - p.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

import numpy as np

from rl_jax.projects.agent_pretraining.world import ApiUniverse
from rl_jax.registry import Registry

CORPUS_SOURCES: Registry = Registry("corpus source")


@dataclasses.dataclass(frozen=True)
class CorpusSource:
  """name; agent: counts towards the agent share; draw(rng) -> one document."""
  name: str
  agent: bool
  draw: Callable[[np.random.Generator], str]


@CORPUS_SOURCES.register("api_docs")
def api_docs(universe: ApiUniverse) -> CorpusSource:
  """The documentation page of a uniformly drawn API (seen and docs-only APIs alike)."""
  apis = universe.apis
  return CorpusSource("api_docs", True,
                      lambda rng: universe.doc(apis[int(rng.integers(len(apis)))]))


@CORPUS_SOURCES.register("trajectories")
def trajectories(universe: ApiUniverse) -> CorpusSource:
  """Function-calling trajectories (task -> call -> observation -> answer) of seen APIs."""
  return CorpusSource("trajectories", True, lambda rng: universe.trajectory(
      universe.draw_call(universe.seen, rng)))


@CORPUS_SOURCES.register("seed_trajectories")
def seed_trajectories(universe: ApiUniverse) -> CorpusSource:
  """Stage II's high-quality seed data: trajectories of seen APIs that recall the API's doc
  before calling it (the grounding a curated trajectory spells out)."""
  return CorpusSource("seed_trajectories", True, lambda rng: universe.trajectory(
      universe.draw_call(universe.seen, rng), with_doc=True))


@CORPUS_SOURCES.register("code")
def code(universe: ApiUniverse) -> CorpusSource:
  """Small programs calling two seen APIs."""
  return CorpusSource("code", False, lambda rng: universe.code(rng, universe.seen))


@CORPUS_SOURCES.register("text")
def text(universe: ApiUniverse) -> CorpusSource:
  """Generic grammar text, 2-3 sentences."""
  return CorpusSource("text", False, universe.text)


def build_sources(universe: ApiUniverse, names: Sequence[str]) -> dict[str, CorpusSource]:
  return {n: CORPUS_SOURCES.get(n)(universe) for n in names}


def check_weights(weights: Mapping[str, float], where: str) -> dict[str, float]:
  """Normalised weights; an unknown source or a negative / all-zero weight is an error."""
  for name, w in weights.items():
    if name not in CORPUS_SOURCES:
      raise ValueError(f"config {where}: unknown corpus source {name!r}; registered: "
                       f"{CORPUS_SOURCES.names()}")
    if not (isinstance(w, (int, float)) and w >= 0):
      raise ValueError(f"config {where}.{name}: weight must be a number >= 0, got {w!r}")
  total = float(sum(weights.values()))
  if total <= 0:
    raise ValueError(f"config {where}: weights are all zero, the corpus would be empty")
  return {n: float(w) / total for n, w in weights.items()}


def with_agent_ratio(weights: Mapping[str, float], sources: Mapping[str, CorpusSource],
                     p: float) -> dict[str, float]:
  """Token shares with the agent sources holding p (in proportion to their weights) and the
  others 1 - p; a side with no weight left is an error if it is asked for a share."""
  if not 0 <= p <= 1:
    raise ValueError(f"config task.agent_ratio must be in [0, 1] (or -1: off), got {p}")
  agent = {n: w for n, w in weights.items() if sources[n].agent}
  other = {n: w for n, w in weights.items() if not sources[n].agent}
  for side, share, what in ((agent, p, "agent"), (other, 1 - p, "non-agent")):
    if share > 0 and sum(side.values()) <= 0:
      raise ValueError(f"config task.agent_ratio={p}: the mixture has no {what} source with a "
                       f"weight > 0 to hold a share of {share:g}")
  out = {}
  for side, share in ((agent, p), (other, 1 - p)):
    total = sum(side.values())
    out.update({n: share * w / total if total > 0 else 0.0 for n, w in side.items()})
  return out


class Mixture:
  """Draws documents so that each source's expected token share is its weight (module
  docstring); `mean_tokens[s]` is measured on `calibration_docs` draws of a fixed rng."""

  def __init__(self, sources: Mapping[str, CorpusSource], weights: Mapping[str, float],
               count_tokens: Callable[[str], int], calibration_docs: int = 200):
    self.sources = dict(sources)
    self.names = [n for n, w in weights.items() if w > 0]
    self.weights = np.asarray([weights[n] for n in self.names], np.float64)
    self.weights /= self.weights.sum()
    calib = np.random.default_rng(12345)
    self.mean_tokens = {n: float(np.mean([count_tokens(self.sources[n].draw(calib)) + 1
                                          for _ in range(calibration_docs)]))
                        for n in self.names}  # + 1: the EOS that ends each document
    per_doc = self.weights / np.asarray([self.mean_tokens[n] for n in self.names])
    self.doc_probs = per_doc / per_doc.sum()

  def draw(self, n_docs: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """(documents, their source names)."""
    which = rng.choice(len(self.names), size=n_docs, p=self.doc_probs)
    names = [self.names[int(i)] for i in which]
    return [self.sources[n].draw(rng) for n in names], names


def pack_rows(docs_ids: Sequence[Sequence[int]], n_rows: int, row_len: int, eos_id: int):
  """(tokens, valid, loss_mask) [n_rows, row_len]: the documents, each followed by EOS,
  concatenated and cut into rows (a document may continue on the next row; the tail past
  n_rows * row_len is dropped). Every slot is a real token: valid and loss 1 everywhere."""
  stream = np.fromiter((t for ids in docs_ids for t in (*ids, eos_id)), np.int32)
  need = n_rows * row_len
  if stream.size < need:
    raise ValueError(f"pack_rows: {stream.size} tokens for {n_rows} x {row_len} slots")
  tokens = stream[:need].reshape(n_rows, row_len)
  valid = np.ones_like(tokens, bool)
  return tokens, valid, valid.astype(np.float32)


def draw_rows(mixture: Mixture, encode: Callable[[str], list[int]], eos_id: int, n_rows: int,
              row_len: int, rng: np.random.Generator):
  """A packed batch from the mixture: documents are drawn until the rows are full.
  Returns ((tokens, valid, loss_mask), source name per document, tokens per document)."""
  need, have, ids, names = n_rows * row_len, 0, [], []
  while have < need:
    n = max(1, int(np.ceil((need - have) / min(mixture.mean_tokens.values()))))
    docs, src = mixture.draw(min(n, 4 * n_rows + 4), rng)
    for d, s in zip(docs, src):
      ids.append(encode(d))
      names.append(s)
      have += len(ids[-1]) + 1
      if have >= need:
        break
  return pack_rows(ids, n_rows, row_len, eos_id), names, [len(i) + 1 for i in ids]
