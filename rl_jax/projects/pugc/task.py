"""The PUGC task: SFT data of a policy that sometimes hallucinates, UGC posts, and on-policy
preference pairs judged with or without the post as reference (docs/pugc.md).

Task "pugc_ugc" (config `task`):
  world: `num_entities` places x 5 attributes, values from `world_seed`;
  train (SFT, "generic QA"): for every fact (entity, attribute) and both question templates,
    a *known* fact (fraction `known_frac`) has 4 answers with the true value, one per style
    (short, plain, extra claim about another known fact, filler); an *unknown* fact has
    `rumors_per_fact` answers with uniformly random values and styles: the SFT'd policy has
    seen rumours, not the truth, and hallucinates there;
  UGC: `train_posts` posts about the first round(`ugc_entity_frac` * num_entities) entities of
    a seeded permutation (the others get no UGC), each fact misremembered with rate
    `post_noise`;
  eval: every (entity, attribute, template) question (2 x 5 x num_entities), scored by the
    oracle that knows the world (`world.oracle_score`);
  reward_fn: 1 if the response states the asked attribute's true value (and no other value);
  preference_pairs(judge, policy, num_samples, temperature, top_p): PUGC steps 1-5 (`UgcPairs`).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from rl_jax import intelligence
from rl_jax.projects.pugc import oracles
from rl_jax.projects.pugc import world as world_lib
from rl_jax.tasks import TASKS, TaskData
from rl_jax.tokenizers import WordTokenizer

JUDGES = ("reference", "none")


def sft_examples(world, known: set[tuple[str, str]], rumors_per_fact: int, seed: int
                 ) -> list[tuple[world_lib.Question, str]]:
  """(question, response) demonstrations (module docstring), from `default_rng([seed, 4])`."""
  rng = np.random.default_rng([seed, 4])
  out = []
  for entity, facts in world.items():
    known_here = [a for a in facts if (entity, a) in known]
    for attr in facts:
      for t in range(len(world_lib.QUESTION_TEMPLATES)):
        q = world_lib.Question(entity, attr, t)
        others = [b for b in known_here if b != attr]
        if (entity, attr) in known:
          for style in world_lib.STYLES:
            if style == "extra" and not others:
              style = "filler"
            extra = None
            if style == "extra":
              b = others[rng.integers(len(others))]
              extra = (b, facts[b])
            out.append((q, world_lib.answer(q, facts[attr], style, extra)))
        else:
          values = world_lib.ATTRIBUTES[attr]
          for _ in range(rumors_per_fact):
            style = world_lib.STYLES[rng.integers(len(world_lib.STYLES))]
            extra = None
            if style == "extra":
              b = [x for x in facts if x != attr][rng.integers(len(facts) - 1)]
              vb = facts[b] if (entity, b) in known else world_lib.ATTRIBUTES[b][
                  rng.integers(len(world_lib.ATTRIBUTES[b]))]
              extra = (b, vb)
            out.append((q, world_lib.answer(q, values[rng.integers(len(values))], style,
                                            extra)))
  return out


def best_worst_pairs(prompts, samples, scores) -> tuple[list[tuple[str, str, str]], int]:
  """PUGC step 5: per prompt, chosen = the first highest-scored sample, rejected = the first
  lowest-scored one; a prompt whose samples all score the same is dropped (a tie). Returns the
  (prompt, chosen, rejected) records and the number of tied prompts."""
  records, ties = [], 0
  for prompt, texts, s in zip(prompts, samples, scores, strict=True):
    s = np.asarray(s, float)
    if s.max() == s.min():
      ties += 1
      continue
    records.append((prompt, texts[int(np.argmax(s))], texts[int(np.argmin(s))]))
  return records, ties


class UgcPairs:
  """PUGC's pair pipeline over the task's posts (arXiv 2506.04463, §7 of docs/pugc.md):

    1. x = QueryGenerator(post)            one question per post
    2. keep if AnswerabilityFilter(post, x)
    3. K samples y_1..y_K of the policy (the stage's start params: the SFT model)
    4. s_k = Judge(x, y_k; reference = post)      judge="reference"
       s_k = Judge(x, y_k)                         judge="none" (the no-reference baseline)
    5. (x, argmax_k s_k, argmin_k s_k), ties dropped

  Every protocol call goes through `rl_jax.intelligence.build` (content-hash cache). `stats`
  holds, per judge, the counts and the oracle's view of the pairs (for the report)."""

  def __init__(self, world, posts, *, generator, answerability, judges: Mapping[str, Any]):
    self.world, self.posts = world, list(posts)
    self.generator, self.answerability, self.judges = generator, answerability, dict(judges)
    self.stats: dict[str, dict[str, float]] = {}
    self._instructions = None

  def instructions(self) -> list[tuple[str, str]]:
    """(post text, question) of every post whose question the filter keeps (steps 1-2)."""
    if self._instructions is None:
      texts = [p.text for p in self.posts]
      queries = self.generator.generate_queries(texts)
      rows = [(d, q) for d, q in zip(texts, queries) if q is not None]
      keep = self.answerability.answerable([d for d, _ in rows], [q for _, q in rows])
      self._instructions = [row for row, k in zip(rows, keep) if k]
      self.stats["instructions"] = {"posts": float(len(texts)),
                                    "kept": float(len(self._instructions))}
    return self._instructions

  def __call__(self, judge: str = "reference", policy=None, num_samples: int = 5,
               temperature: float = 0.8, top_p: float = 0.95) -> list[tuple[str, str, str]]:
    """judge: "reference" (the post as reference) | "none" (no reference); policy: passed by
    the preference stage (`rl_jax.stages.preference.PolicySampler`); num_samples: K;
    temperature / top_p: the policy's sampling (K = 5, T = 0.8, nucleus sampling per the
    paper's data, SPEC [S3])."""
    if judge not in JUDGES:
      raise ValueError(f"preference.pairs.judge must be one of {JUDGES}, got {judge!r}")
    if policy is None:
      raise ValueError("pugc pairs are on-policy: run them in a preference stage (it passes "
                       "the policy sampler)")
    if num_samples < 2:
      raise ValueError(f"preference.pairs.num_samples must be >= 2, got {num_samples}")
    rows = self.instructions()
    posts, prompts = [d for d, _ in rows], [q for _, q in rows]
    samples = policy.sample(prompts, num_samples, temperature=temperature, top_p=top_p)
    flat_prompts = [q for q, ys in zip(prompts, samples) for _ in ys]
    flat = [y for ys in samples for y in ys]
    refs = [d for d, ys in zip(posts, samples) for _ in ys] if judge == "reference" else None
    scores = self.judges[judge].score(flat_prompts, flat, refs)
    if any(s is None for s in scores):  # a dropped judge call (on_failure="drop"): drop the row
      keep = [i for i, ys in enumerate(samples) if all(
          scores[i * num_samples + k] is not None for k in range(len(ys)))]
    else:
      keep = list(range(len(prompts)))
    per_prompt = [scores[i * num_samples:(i + 1) * num_samples] for i in keep]
    records, ties = best_worst_pairs([prompts[i] for i in keep], [samples[i] for i in keep],
                                     per_prompt)
    self.stats[judge] = self._pair_stats(records, ties, len(prompts), samples, prompts)
    policy.log(f"pugc pairs (judge={judge}): {len(rows)} instructions, {len(records)} pairs, "
               f"{ties} ties dropped; chosen correct "
               f"{self.stats[judge]['chosen_correct']:.2f}, rejected correct "
               f"{self.stats[judge]['rejected_correct']:.2f}")
    return records

  def _pair_stats(self, records, ties, n, samples, prompts) -> dict[str, float]:
    """What the world oracle thinks of the pairs a judge made."""
    def correct(prompt, text):
      return world_lib.answers_correctly(self.world, world_lib.parse_question(prompt), text)
    sample_correct = [correct(q, y) for q, ys in zip(prompts, samples) for y in ys]
    return {
        "instructions": float(n), "pairs": float(len(records)), "ties": float(ties),
        "sample_correct": float(np.mean(sample_correct)) if sample_correct else 0.0,
        "chosen_correct": float(np.mean([correct(q, c) for q, c, _ in records]))
                          if records else 0.0,
        "rejected_correct": float(np.mean([correct(q, r) for q, _, r in records]))
                            if records else 0.0,
        "chosen_words": float(np.mean([len(c.split()) for _, c, _ in records]))
                        if records else 0.0,
        "rejected_words": float(np.mean([len(r.split()) for _, _, r in records]))
                          if records else 0.0,
    }


@TASKS.register("pugc_ugc")
def pugc_task(*, seed: int, num_entities: int = 16, known_frac: float = 0.4,
              rumors_per_fact: int = 4, ugc_entity_frac: float = 0.75, train_posts: int = 600,
              post_noise: float = 0.1, off_topic: float = 0.2, contradiction_penalty: float = 0.5,
              target_words: int = 12, world_seed: int = 0,
              intelligence_config: Mapping[str, Any] | None = None) -> TaskData:
  """num_entities: places in the world (<= 24); known_frac: fraction of facts the SFT data
  states truly (the rest are rumours); rumors_per_fact: random-valued answers per template of
  an unknown fact; ugc_entity_frac: fraction of places with UGC posts; train_posts: posts;
  post_noise: probability a post misremembers one fact; off_topic: probability the query
  generator asks about an attribute regardless of the post; contradiction_penalty: the
  reference judge's penalty per contradicted fact; target_words: the no-reference judge's
  length at full score; world_seed: the world, SFT data and posts; intelligence_config:
  `rl_jax.intelligence.IntelligenceConfig` fields (backend, cache_dir, ...) for the four
  protocols. `seed` (the run's) is unused: the data is a function of world_seed."""
  del seed
  for name, value in (("known_frac", known_frac), ("ugc_entity_frac", ugc_entity_frac),
                      ("post_noise", post_noise)):
    if not 0.0 <= value <= 1.0:
      raise ValueError(f"config task.{name} must be in [0, 1], got {value}")
  world = world_lib.make_world(num_entities, world_seed)
  entities = list(world)
  order = np.random.default_rng([world_seed, 2]).permutation(len(entities))
  ugc_entities = [entities[i] for i in order[:max(1, round(ugc_entity_frac * len(entities)))]]
  facts = [(e, a) for e in entities for a in world_lib.ATTRIBUTES]
  pick = np.random.default_rng([world_seed, 3]).permutation(len(facts))
  known = {facts[i] for i in pick[:round(known_frac * len(facts))]}
  train = sft_examples(world, known, rumors_per_fact, world_seed)
  ugc = world_lib.posts(world, ugc_entities, train_posts, world_seed * 1000 + 1, post_noise)
  eval_questions = [world_lib.Question(e, a, t) for e in entities for a in world_lib.ATTRIBUTES
                    for t in range(len(world_lib.QUESTION_TEMPLATES))]
  spec = dict(intelligence_config or {})
  build = lambda kind, oracle: intelligence.build(kind, spec, oracle,  # noqa: E731
                                                  where=f"task pugc_ugc {kind}")
  pairs = UgcPairs(
      world, ugc,
      generator=build("query_generator",
                      oracles.TemplateQueryGenerator(seed=world_seed, off_topic=off_topic)),
      answerability=build("answerability_filter", oracles.FactAnswerabilityFilter()),
      judges={"reference": build("judge", oracles.ReferenceJudge(
                  contradiction_penalty=contradiction_penalty)),
              "none": build("judge", oracles.LengthFluencyJudge(target_words=target_words))})
  pairs.known, pairs.ugc_entities = known, set(ugc_entities)

  def prompt(item) -> str:
    return (item[0] if isinstance(item, tuple) else item).text

  def reward(item, text: str) -> float:
    q = item[0] if isinstance(item, tuple) else item
    return float(world_lib.answers_correctly(world, q, text))

  return TaskData("pugc_ugc", train, eval_questions, prompt_fn=prompt,
                  completion_fn=lambda item: item[1], reward_fn=reward,
                  tokenizer=WordTokenizer(world_lib.vocabulary(), name="PUGC world"),
                  preference_pairs=pairs)
