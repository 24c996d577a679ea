"""The deterministic oracles behind PUGC's external-intelligence protocols (docs/pugc.md).
They stand in for the paper's instruction-tuned LLM (arXiv 2506.04463: one LLM writes the
question, filters it, and a Prometheus-style grader scores with the post as reference) and are
put behind the content-hash cache by `rl_jax.intelligence.build` like any implementation.

- `TemplateQueryGenerator` (QueryGenerator): the question a reader could ask of a post: about an
  attribute the post mentions (a stated fact, or one it only names: "i cared about the wifi"),
  or, with probability `off_topic`, about any attribute (a generator drifting off the post).
  Draws are a function of the post text and `seed` (sha256), so a row's answer never depends on
  the batch it came in.
- `FactAnswerabilityFilter` (AnswerabilityFilter): yes iff the question parses, is about the
  post's entity, and the post states a value for the asked attribute.
- `ReferenceJudge` (Judge, reference-guided; SPEC-style token F1 with a contradiction penalty):
      ref   = Counter(entity + every attribute and value word of the post's fact sentences)
      resp  = Counter(response words not in STOPWORDS)
      F1    = 2 P R / (P + R),  P = |resp & ref| / |resp|,  R = |resp & ref| / |ref|
      score = clip(F1 - penalty * #contradictions, 0, 1)
  where a contradiction is a claimed (attribute, value) whose attribute the post states with
  another value.
- `LengthFluencyJudge` (Judge, no reference; the baseline "generic RM"):
      score = fluency * min(1, words / target_words),
  fluency = 1 for a text ending in "." with no word repeated back to back, else 0.5; 0 when
  empty.
"""
from __future__ import annotations

import collections
import hashlib
from typing import Sequence

import numpy as np

from rl_jax.projects.pugc import world as world_lib

STOPWORDS = frozenset({"the", "at", "is", "was", "also", ".", "?", "i", "a", "on", "to",
                       "went", "what", "like", "how"})


def _text_rng(text: str, seed: int) -> np.random.Generator:
  digest = hashlib.sha256(f"{seed}\x00{text}".encode("utf-8")).digest()
  return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def mentioned_attributes(post_text: str) -> list[str]:
  """Attributes a post talks about: its fact sentences and "i cared about the <attr> ."."""
  words = post_text.split()
  return sorted({w for w in words if w in world_lib.ATTRIBUTES})


class TemplateQueryGenerator:
  def __init__(self, *, seed: int = 0, off_topic: float = 0.2):
    if not 0.0 <= off_topic <= 1.0:
      raise ValueError(f"pugc query generator: off_topic must be in [0, 1], got {off_topic}")
    self.seed, self.off_topic = seed, off_topic
    self.identity = f"pugc-template-query-generator:v1:seed={seed}:off_topic={off_topic}"

  def generate_queries(self, documents: Sequence[str]) -> list[str]:
    out = []
    for doc in documents:
      entity, _ = world_lib.parse_post(doc)
      if entity is None:
        raise ValueError(f"pugc query generator: not a post: {doc[:80]!r}")
      rng = _text_rng(doc, self.seed)
      attrs = mentioned_attributes(doc)
      if rng.random() < self.off_topic or not attrs:
        attrs = list(world_lib.ATTRIBUTES)
      attr = attrs[rng.integers(len(attrs))]
      template = int(rng.integers(len(world_lib.QUESTION_TEMPLATES)))
      out.append(world_lib.Question(entity, attr, template).text)
    return out


class FactAnswerabilityFilter:
  identity = "pugc-fact-answerability:v1"

  def answerable(self, documents: Sequence[str], queries: Sequence[str]) -> list[bool]:
    out = []
    for doc, query in zip(documents, queries, strict=True):
      question = world_lib.parse_question(query)
      entity, facts = world_lib.parse_post(doc)
      out.append(question is not None and question.entity == entity
                 and question.attribute in facts)
    return out


def token_f1(response_words: Sequence[str], reference_words: Sequence[str]) -> float:
  """Multiset token F1 (SQuAD-style); 0 when either side is empty or nothing overlaps."""
  resp, ref = collections.Counter(response_words), collections.Counter(reference_words)
  overlap = sum((resp & ref).values())
  if overlap == 0:
    return 0.0
  p, r = overlap / sum(resp.values()), overlap / sum(ref.values())
  return 2 * p * r / (p + r)


class ReferenceJudge:
  def __init__(self, *, contradiction_penalty: float = 0.5):
    self.penalty = contradiction_penalty
    self.identity = f"pugc-reference-f1:v1:penalty={contradiction_penalty}"

  def score(self, prompts: Sequence[str], responses: Sequence[str],
            references: Sequence[str] | None = None,
            criteria: Sequence[Sequence[str]] | None = None) -> list[float]:
    if references is None:
      raise ValueError("pugc reference judge: needs references (the posts); use the "
                       "no-reference judge for judge='none'")
    if criteria is not None:
      raise ValueError("pugc reference judge: scores absolutely; criteria are not supported")
    out = []
    for response, reference in zip(responses, references, strict=True):
      entity, facts = world_lib.parse_post(reference)
      ref_words = ([entity] if entity else []) + [w for a, v in facts.items() for w in (a, v)]
      words = [w for w in response.split() if w not in STOPWORDS]
      contradictions = sum(a in facts and facts[a] != v for a, v in world_lib.claims(response))
      out.append(float(np.clip(token_f1(words, ref_words) - self.penalty * contradictions,
                               0.0, 1.0)))
    return out


def fluency(text: str) -> float:
  words = text.split()
  if not words:
    return 0.0
  repeated = any(a == b for a, b in zip(words, words[1:]))
  return 1.0 if words[-1] == "." and not repeated else 0.5


class LengthFluencyJudge:
  def __init__(self, *, target_words: int = 12):
    if target_words < 1:
      raise ValueError(f"pugc length judge: target_words must be >= 1, got {target_words}")
    self.target_words = target_words
    self.identity = f"pugc-length-fluency:v1:target={target_words}"

  def score(self, prompts: Sequence[str], responses: Sequence[str],
            references: Sequence[str] | None = None,
            criteria: Sequence[Sequence[str]] | None = None) -> list[float]:
    del prompts, references, criteria  # a generic RM: the response alone
    return [fluency(r) * min(1.0, len(r.split()) / self.target_words) for r in responses]
