"""Each protocol behind `CachedCalls`: drop-in objects with the protocol's methods whose answers
come from the disk cache where present (`rl_jax.intelligence.cache`). One row per prompt /
document / query; a dropped row (policy on_failure="drop") comes back as None and the caller
leaves it out."""
from __future__ import annotations

from typing import Any, Sequence

from rl_jax.intelligence.cache import CachedCalls


class CachedTeacher:
  def __init__(self, inner, calls: CachedCalls):
    self.inner, self.calls, self.identity = inner, calls, inner.identity

  def generate(self, prompts: Sequence[str], n: int = 1, temperature: float = 0.0
               ) -> list[list[str] | None]:
    rows = [{"prompt": p, "n": n, "temperature": temperature} for p in prompts]
    return self.calls.map("teacher", self.identity, rows, lambda missing: self.inner.generate(
        [r["prompt"] for r in missing], n, temperature))


class CachedKeyPointExtractor:
  def __init__(self, inner, calls: CachedCalls):
    self.inner, self.calls, self.identity = inner, calls, inner.identity

  def extract(self, documents: Sequence[str]) -> list[list[str] | None]:
    rows = [{"document": d} for d in documents]
    return self.calls.map("key_point_extractor", self.identity, rows,
                          lambda missing: self.inner.extract([r["document"] for r in missing]))


class CachedQueryRewriter:
  def __init__(self, inner, calls: CachedCalls):
    self.inner, self.calls, self.identity = inner, calls, inner.identity

  def rewrite(self, queries: Sequence[str], contexts: Sequence[str]) -> list[str | None]:
    rows = [{"query": q, "context": c} for q, c in zip(queries, contexts, strict=True)]
    return self.calls.map("query_rewriter", self.identity, rows, lambda missing: self.inner.rewrite(
        [r["query"] for r in missing], [r["context"] for r in missing]))


class CachedRubricGenerator:
  def __init__(self, inner, calls: CachedCalls):
    self.inner, self.calls, self.identity = inner, calls, inner.identity

  def generate_rubrics(self, queries: Sequence[str], references: Sequence[str]
                       ) -> list[list[dict[str, Any]] | None]:
    rows = [{"query": q, "reference": r} for q, r in zip(queries, references, strict=True)]
    return self.calls.map("rubric_generator", self.identity, rows,
                          lambda missing: self.inner.generate_rubrics(
                              [r["query"] for r in missing], [r["reference"] for r in missing]))


class CachedJudge:
  def __init__(self, inner, calls: CachedCalls):
    self.inner, self.calls, self.identity = inner, calls, inner.identity

  def score(self, prompts: Sequence[str], responses: Sequence[str],
            references: Sequence[str] | None = None,
            criteria: Sequence[Sequence[str]] | None = None) -> list[Any]:
    refs = list(references) if references is not None else [None] * len(prompts)
    crit = [list(c) for c in criteria] if criteria is not None else [None] * len(prompts)
    rows = [{"prompt": p, "response": r, "reference": ref, "criteria": c}
            for p, r, ref, c in zip(prompts, responses, refs, crit, strict=True)]

    def call(missing):
      return self.inner.score(
          [r["prompt"] for r in missing], [r["response"] for r in missing],
          None if references is None else [r["reference"] for r in missing],
          None if criteria is None else [r["criteria"] for r in missing])

    return self.calls.map("judge", self.identity, rows, call)


class CachedQueryGenerator:
  def __init__(self, inner, calls: CachedCalls):
    self.inner, self.calls, self.identity = inner, calls, inner.identity

  def generate_queries(self, documents: Sequence[str]) -> list[str | None]:
    rows = [{"document": d} for d in documents]
    return self.calls.map("query_generator", self.identity, rows, lambda missing:
                          self.inner.generate_queries([r["document"] for r in missing]))


class CachedAnswerabilityFilter:
  def __init__(self, inner, calls: CachedCalls):
    self.inner, self.calls, self.identity = inner, calls, inner.identity

  def answerable(self, documents: Sequence[str], queries: Sequence[str]) -> list[bool | None]:
    rows = [{"document": d, "query": q} for d, q in zip(documents, queries, strict=True)]
    return self.calls.map("answerability_filter", self.identity, rows, lambda missing: [
        bool(x) for x in self.inner.answerable([r["document"] for r in missing],
                                               [r["query"] for r in missing])])


WRAPPERS = {"teacher": CachedTeacher, "key_point_extractor": CachedKeyPointExtractor,
            "query_rewriter": CachedQueryRewriter, "rubric_generator": CachedRubricGenerator,
            "judge": CachedJudge, "query_generator": CachedQueryGenerator,
            "answerability_filter": CachedAnswerabilityFilter}
