"""The curation task: pretraining on a (filtered) tier of the synthetic web corpus (seed S2,
docs/curation.md). Registered as task "curation_corpus"; the loop's `pretrain` stage reads
`pretrain_batch`, next-token loss on whole documents (one document of `doc_len` words per row,
so every row is fully valid and equal steps are equal tokens).

  tier: "all" | "top" | "mid" | "low": which tier of the composite quality score;
  filter: a `FilterSpec` JSON dict (`filters.py`) applied to the tier, or None;
  labels: which labels the filter reads: "truth" (the latent attributes), "teacher" (the oracle
    annotator, `annotation.noise` label noise) or "mlp" (the multi-task MLP's labels of every
    document, written by the "curation_annotation" evaluator to `labels_path`).

The task has no prompts (train / eval are empty): it is a corpus for the pretrain stage.
"""
from __future__ import annotations

import functools
from typing import Any, Mapping

import numpy as np

from rl_jax.projects.curation import corpus as corpus_lib
from rl_jax.projects.curation import filters as filters_lib
from rl_jax.projects.curation.annotation import OracleAnnotator
from rl_jax.tasks import TASKS, TaskData


@functools.lru_cache(maxsize=4)
def _world(seed: int, corpus_items: tuple) -> tuple[corpus_lib.Corpus, np.ndarray]:
  cfg = corpus_lib.CorpusCfg(**dict(corpus_items))
  corpus = corpus_lib.generate(cfg, seed)
  return corpus, corpus_lib.encode_docs(corpus_lib.word_tokenizer(), corpus.texts, cfg.doc_len)


def world(seed: int, corpus: Mapping[str, Any] | None) -> tuple[corpus_lib.Corpus, np.ndarray]:
  """(corpus, token ids int32 [N, doc_len]) of `task.corpus` (CorpusCfg fields), cached: the
  task, the evaluators and the report of one process share one generation."""
  items = tuple((k, tuple(v) if isinstance(v, (list, tuple)) else v)
                for k, v in sorted(dict(corpus or {}).items()))
  return _world(seed, items)


def teacher_labels(corpus: corpus_lib.Corpus, noise: float, seed: int) -> dict[str, np.ndarray]:
  """The oracle annotator's labels of every document."""
  return OracleAnnotator(corpus.labels, corpus.texts, corpus_lib.LABEL_DIMS, noise,
                         seed).annotate(corpus.texts)


def load_labels(path: str) -> dict[str, np.ndarray]:
  """The "mlp" labels written by the annotation evaluator (npz with one array per dimension)."""
  try:
    data = np.load(path)
  except OSError as e:
    raise ValueError(f"config task.labels_path={path!r}: cannot read the MLP labels ({e}); run "
                     "the annotation (configs/curation_tiny.py) first") from e
  return {k[len("mlp/"):]: data[k] for k in data.files if k.startswith("mlp/")}


def selection(corpus: corpus_lib.Corpus, *, tier: str, filter_spec, labels: str,
              labels_path: str, noise: float, seed: int) -> np.ndarray:
  """bool [N]: the documents of `tier` that `filter_spec` (JSON dict or None) keeps."""
  keep = np.ones(len(corpus), bool) if tier == "all" else (
      corpus.tier == corpus_lib.tier_index(tier))
  if filter_spec:
    spec = filters_lib.from_json(filter_spec, corpus_lib.LABEL_DIMS, "config task.filter")
    if labels == "truth":
      lab = corpus.labels
    elif labels == "teacher":
      lab = teacher_labels(corpus, noise, seed)
    elif labels == "mlp":
      lab = load_labels(labels_path)
    else:
      raise ValueError(f"config task.labels: expected 'truth', 'teacher' or 'mlp', got "
                       f"{labels!r}")
    keep &= filters_lib.evaluate(spec, lab)
  return keep


@TASKS.register("curation_corpus")
def curation_task(*, seed: int, corpus: Mapping[str, Any] | None = None, tier: str = "all",
                  filter: Mapping[str, Any] | None = None, labels: str = "mlp",  # noqa: A002
                  labels_path: str = "", noise: float = 0.1,
                  min_docs: int = 8) -> TaskData:
  """The corpus task (module docstring). corpus: `CorpusCfg` fields; noise: the teacher's label
  noise (labels="teacher"); min_docs: fewest documents a selection may keep (fewer is an error
  naming the filter, not a run that repeats a handful of pages)."""
  docs, ids_NxT = world(seed, corpus)
  keep = selection(docs, tier=tier, filter_spec=filter, labels=labels, labels_path=labels_path,
                   noise=noise, seed=seed)
  pool = np.flatnonzero(keep)
  if len(pool) < min_docs:
    raise ValueError(f"config task.filter={filter!r} keeps {len(pool)} documents of tier "
                     f"{tier!r} (< task.min_docs={min_docs})")

  def pretrain_batch(batch_size: int, rng: np.random.Generator):
    rows = pool[rng.choice(len(pool), batch_size, replace=len(pool) < batch_size)]
    tokens = ids_NxT[rows]
    valid = np.ones(tokens.shape, bool)
    return tokens, valid, valid.astype(np.float32)

  return TaskData("curation_corpus", train=[], eval=[], prompt_fn=str, completion_fn=str,
                  reward_fn=lambda p, t: 0.0, tokenizer=corpus_lib.word_tokenizer(),
                  pretrain_batch=pretrain_batch)
