"""The QUBRIC task (seed S3, arXiv 2606.03968; docs/qubric.md), registered as "qubric": the
entity world, the query pipeline through the intelligence protocols, the arms of the study,
and generic-description SFT data.

Query pipeline (docs/qubric.md, pipeline steps 1-2, an [I] design), for every training entity
with its latent scenario s, all calls through the cached protocols (`rl_jax.intelligence.build`):
  1. a_T = Teacher(open prompt): the ideal overview; K = KeyPointExtractor(a_T).
  2. grounding = the key points of K the latent scenario needs (the asker's hidden need).
  3. q_s = ScenarioRewriter(q, grounding); q_f = FabricatingRewriter(q, grounding) (control).
  4. validity: T(q') must state at least kappa of the grounding key points; the scenario rewrite
     passes, the fabricated one does not (the teacher can only make the reference up).
The teacher's answer to q' is the reference a_T of the contrastive rubric (built in the scorer,
`scoring.py`, against the policy's own samples).

Arms (`ARMS`; the prompt source's `arm` selects one, the scorer reads it from each problem):
  full:               scenario rewrite, validity check, contrastive rubric, consistency and
                      learnability filters (the paper's pipeline);
  original_generic:   the open query with the generic rubric (the baseline);
  fabricated:         naive narrowing to a fabricated reference, contrastive rubric, no filters
                      (the negative control: its reward signal vanishes);
  rewrite_only:       scenario rewrite with the generic rubric;
  rewrite_contrastive: the full pipeline without the learnability filter.
Held-out problems are new entities, each with every scenario's rewritten query; their metric is
key-point recall (`world.key_point_recall`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from rl_jax import intelligence
from rl_jax.data.encoding import encode_examples
from rl_jax.projects.qubric import oracles, world
from rl_jax.tasks import TASKS, TaskData
from rl_jax.tokenizers import train_sentencepiece

QUERY_FORMS = ("open", "scenario", "fabricated")


@dataclasses.dataclass(frozen=True)
class Arm:
  """query: which query the policy is trained on (`QUERY_FORMS`); rubric: "contrastive" or
  "generic"; validity: drop pairs whose rewrite fails the teacher's validity check;
  consistency / learnability: the rubric filters of the scorer."""
  query: str
  rubric: str
  validity: bool
  consistency: bool
  learnability: bool


ARMS: dict[str, Arm] = {
    "full": Arm("scenario", "contrastive", True, True, True),
    "original_generic": Arm("open", "generic", False, False, False),
    "fabricated": Arm("fabricated", "contrastive", False, False, False),
    "rewrite_only": Arm("scenario", "generic", True, False, False),
    "rewrite_contrastive": Arm("scenario", "contrastive", True, True, False),
}


def arm_of(name: str, where: str) -> Arm:
  if name not in ARMS:
    raise ValueError(f"{where}: unknown arm {name!r}; known: {sorted(ARMS)}")
  return ARMS[name]


@dataclasses.dataclass(frozen=True)
class Item:
  """One entity with its latent scenario and the pipeline's queries. prompts / references /
  valid: per query form (`QUERY_FORMS`): the prompt text, the teacher's answer to it (the
  contrastive rubric's a_T) and whether the rewrite passed the validity check."""
  key: str
  entity: world.Entity
  scenario: str
  prompts: Mapping[str, str]
  references: Mapping[str, str]
  valid: Mapping[str, bool]


@dataclasses.dataclass(frozen=True)
class Problem:
  """An item as one arm presents it to the policy."""
  item: Item
  arm: str

  @property
  def prompt(self) -> str:
    return self.item.prompts[ARMS[self.arm].query]

  @property
  def reference(self) -> str:
    return self.item.references[ARMS[self.arm].query]


def _required(values, what: str):
  """An intelligence call's answers; a dropped row (policy on_failure="drop") is an error here:
  the data pipeline has no row to leave out silently."""
  missing = [i for i, v in enumerate(values) if v is None]
  if missing:
    raise ValueError(f"qubric task: the {what} dropped rows {missing[:5]} (on_failure='drop'); "
                     "the query pipeline needs every answer")
  return values


def build_items(entities, scenarios, *, kappa: float, intelligence_spec, prefix: str
                ) -> list[Item]:
  """The query pipeline (module docstring) for (entity, latent scenario) pairs."""
  build = lambda kind, oracle: intelligence.build(kind, intelligence_spec, oracle,
                                                  where="config task.intelligence")
  teacher = build("teacher", oracles.WorldTeacher())
  extractor = build("key_point_extractor", oracles.StatementKeyPoints())
  rewriter = build("query_rewriter", oracles.ScenarioRewriter())
  fabricator = build("query_rewriter", oracles.FabricatingRewriter())
  open_prompts = [world.prompt(e, world.open_query()) for e in entities]
  overview = [a[0] for a in _required(teacher.generate(open_prompts), "teacher")]
  points = _required(extractor.extract(overview), "key-point extractor")
  grounding = [" ".join(p for p in pts if p.split("=")[0] in world.SCENARIOS[s])
               for pts, s in zip(points, scenarios)]
  queries = [world.open_query()] * len(entities)
  rewritten = {"scenario": _required(rewriter.rewrite(queries, grounding), "rewriter"),
               "fabricated": _required(fabricator.rewrite(queries, grounding), "fabricator")}
  prompts = {"open": open_prompts}
  answers = {"open": overview}
  valid = {"open": [True] * len(entities)}
  for form, qs in rewritten.items():
    prompts[form] = [world.prompt(e, q) for e, q in zip(entities, qs)]
    answers[form] = [a[0] for a in _required(teacher.generate(prompts[form]), "teacher")]
    got = _required(extractor.extract(answers[form]), "key-point extractor")
    valid[form] = [np.mean([p in set(g) for p in ground.split()]) >= kappa
                   for g, ground in zip(got, grounding)]
  return [Item(f"{prefix}{i}", e, s, {f: prompts[f][i] for f in QUERY_FORMS},
               {f: answers[f][i] for f in QUERY_FORMS}, {f: bool(valid[f][i]) for f in QUERY_FORMS})
          for i, (e, s) in enumerate(zip(entities, scenarios))]


def generic_description(entity: world.Entity, rng: np.random.Generator, k: int) -> str:
  """The SFT target: k statements of random attributes, in catalogue order (what a generic
  description says, whatever the asker needs)."""
  picked = sorted(rng.choice(len(world.ATTRIBUTE_NAMES), size=k, replace=False))
  return " ".join(world.statement(world.ATTRIBUTE_NAMES[i], entity.values[i]) for i in picked)


def recall_reward(problem: Problem, text: str) -> float:
  """Key-point recall of the item's latent scenario (the held-out metric; what "correct" logs)."""
  return world.key_point_recall(problem.item.entity, problem.item.scenario, text)


@TASKS.register("qubric")
def qubric_task(*, seed: int, exp, train_size: int = 96, eval_entities: int = 16,
                kappa: float = 1.0, sft_statements: int = 3, vocab_size: int = 160,
                intelligence: Mapping[str, Any] | None = None) -> TaskData:
  """train_size: training entities, each with one latent scenario drawn uniformly;
  eval_entities: held-out entities, each asked under every scenario (6 problems each);
  kappa: the validity check's fraction of grounding key points the teacher's re-answer must
  state (docs/qubric.md, pipeline step 2);
  sft_statements: statements per generic SFT description (with
  max_new_tokens = 2 * sft_statements, the answer budget); vocab_size: the BPE tokenizer's
  bound (statements and scenario names are single pieces); intelligence: the teacher /
  key-point / rewriter config (`rl_jax.intelligence.IntelligenceConfig` fields; default the
  world oracles, in-memory cache)."""
  if not 0 < kappa <= 1:
    raise ValueError(f"config task.kappa must be in (0, 1], got {kappa}")
  if not 1 <= sft_statements <= len(world.ATTRIBUTE_NAMES):
    raise ValueError(f"config task.sft_statements must be in [1, {len(world.ATTRIBUTE_NAMES)}], "
                     f"got {sft_statements}")
  rng = np.random.default_rng([seed, 3])
  train_entities = world.sample_entities(train_size, rng)
  eval_pool = world.sample_entities(eval_entities, rng, exclude=train_entities)
  names = sorted(world.SCENARIOS)
  train_scenarios = [names[i] for i in rng.integers(len(names), size=train_size)]
  spec = intelligence
  train = build_items(train_entities, train_scenarios, kappa=kappa, intelligence_spec=spec,
                      prefix="train")
  held = build_items([e for e in eval_pool for _ in names], names * len(eval_pool), kappa=kappa,
                     intelligence_spec=spec, prefix="eval")
  train_problems = [Problem(it, "full") for it in train]
  eval_problems = [Problem(it, "full") for it in held]
  prompt_texts = [p for it in train + held for p in it.prompts.values()]
  texts = prompt_texts + [a for it in train for a in it.references.values()]
  tok = train_sentencepiece(texts, vocab_size=vocab_size, model_type="bpe", byte_fallback=False,
                            extra_symbols=tuple(world.all_statements()) + tuple(names) +
                            tuple(world.FABRICATED))
  longest = max(len(tok.encode(t)) for t in prompt_texts)
  if longest > exp.prompt_len:
    raise ValueError(f"config prompt_len={exp.prompt_len} is shorter than the longest qubric "
                     f"prompt ({longest} tokens)")

  def sft_batch(batch_size: int, step_rng: np.random.Generator):
    """Generic descriptions under every query form: SFT teaches the format and copying, not
    which statements a scenario needs."""
    rows = step_rng.integers(len(train), size=batch_size)
    forms = step_rng.integers(len(QUERY_FORMS), size=batch_size)
    prompts = [train[r].prompts[QUERY_FORMS[f]] for r, f in zip(rows, forms)]
    targets = [generic_description(train[r].entity, step_rng, sft_statements) for r in rows]
    return encode_examples(tok, prompts, targets, exp.prompt_len, exp.max_new_tokens)

  return TaskData("qubric", train_problems, eval_problems, prompt_fn=lambda p: p.prompt,
                  completion_fn=lambda p: p.reference, reward_fn=recall_reward, tokenizer=tok,
                  sft_batch=sft_batch)
