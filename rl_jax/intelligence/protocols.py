"""The external-intelligence protocols: what a pipeline asks of a teacher, a judge, ...

Seed systems that need an LLM for data or rewards (query writing in tool orchestration,
arXiv 2603.24709; rubric generation and judging in QUBRIC, arXiv 2606.03968) call one of these
protocols, never a vendor API. The default implementation of each is a deterministic oracle
over the project's synthetic world; an OpenAI-compatible HTTP client
(`rl_jax.intelligence.openai_compat`) can stand in behind a config flag. Every implementation
is put behind `rl_jax.intelligence.cache` (content-hash disk cache, retries, metrics) by
`rl_jax.intelligence.build`.

Rows are independent: implementations take and return lists aligned with their inputs, so the
cache can serve part of a batch and ask the implementation for the rest. `identity` names the
implementation and its settings (model, template version): it is part of every cache key, so a
changed teacher never reads another teacher's answers.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable


@runtime_checkable
class Teacher(Protocol):
  """generate(prompts, n, temperature) -> n completions per prompt."""
  identity: str

  def generate(self, prompts: Sequence[str], n: int = 1, temperature: float = 0.0
               ) -> list[list[str]]:
    ...


@runtime_checkable
class KeyPointExtractor(Protocol):
  """extract(documents) -> the key points of each document (short strings)."""
  identity: str

  def extract(self, documents: Sequence[str]) -> list[list[str]]:
    ...


@runtime_checkable
class QueryRewriter(Protocol):
  """rewrite(queries, contexts) -> one rewritten query per (query, context) pair; a context is
  whatever the rewriter conditions on (e.g. a scenario description), "" for none."""
  identity: str

  def rewrite(self, queries: Sequence[str], contexts: Sequence[str]) -> list[str]:
    ...


@runtime_checkable
class RubricGenerator(Protocol):
  """generate_rubrics(queries, references) -> per query a list of {"criterion": str,
  "weight": float} items (references: a good answer or key points per query, "" for none)."""
  identity: str

  def generate_rubrics(self, queries: Sequence[str], references: Sequence[str]
                       ) -> list[list[dict[str, Any]]]:
    ...


@runtime_checkable
class Judge(Protocol):
  """score(prompts, responses, references=None, criteria=None) -> one score in [0, 1] per
  response; with criteria (one list per row) a list of per-criterion scores per row."""
  identity: str

  def score(self, prompts: Sequence[str], responses: Sequence[str],
            references: Sequence[str] | None = None,
            criteria: Sequence[Sequence[str]] | None = None) -> list[Any]:
    ...


@runtime_checkable
class QueryGenerator(Protocol):
  """generate_queries(documents) -> the reader question each document answers, one per
  document (PUGC's instruction generation from user-generated content, arXiv 2506.04463)."""
  identity: str

  def generate_queries(self, documents: Sequence[str]) -> list[str]:
    ...


@runtime_checkable
class AnswerabilityFilter(Protocol):
  """answerable(documents, queries) -> per (document, query) pair whether the document holds
  enough information to answer the query (PUGC's instruction filter)."""
  identity: str

  def answerable(self, documents: Sequence[str], queries: Sequence[str]) -> list[bool]:
    ...


PROTOCOLS = {"teacher": Teacher, "key_point_extractor": KeyPointExtractor,
             "query_rewriter": QueryRewriter, "rubric_generator": RubricGenerator,
             "judge": Judge, "query_generator": QueryGenerator,
             "answerability_filter": AnswerabilityFilter}
