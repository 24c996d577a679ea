"""The tool-orchestration task (seed S4; docs/tool_orchestration.md), registered as
"tool_orchestration".

Items are synthesized workflows (`workflows.Workflow`) over the cached booking API
(`api.CachedApiEnv`). The prompt lists the workflow's tools and distractors and states the
query: "tools: search_destination search_hotels hotel_reviews | hotels in rome on day 2". The
intended episode is the ground-truth chain in the core's JSON call syntax, each call followed by
the cached response (context, loss_mask 0), then "<done>":

    <tool_call>\\n{"name": "search_destination", "arguments": {"query": "rome"}}\\n</tool_call>
    <tool_response>{"data": [{"dest_id": "D2"}]}</tool_response><tool_call>\\n...</tool_call>
    <tool_response>...</tool_response><done>

SFT trains on a fraction (`sft_frac`, SPEC 4(c): 50%) of the training workflows; RL draws from
all of them; evaluation uses held-out workflows: chains (template + calls) that no training
item has, and optionally whole templates (`held_out_templates`) for transfer.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from rl_jax import intelligence
from rl_jax.projects.tool_orchestration import api, reward as rw
from rl_jax.projects.tool_orchestration import workflows as wf
from rl_jax.sampling.tool_loop import assemble
from rl_jax.tasks import TASKS, TaskData
from rl_jax.tokenizers import train_sentencepiece

DONE = "<done>"


def prompt_of(item: wf.Workflow) -> str:
  return "tools: " + " ".join(item.tools) + " | " + item.query


def ground_truth(item: wf.Workflow) -> list[rw.GroundTruthStep]:
  return [rw.GroundTruthStep(s.function, dict(s.arguments), tuple(s.depends_on))
          for s in item.steps]


def worked_episode(env: api.CachedApiEnv, item: wf.Workflow) -> list[tuple[str, float]]:
  """The intended episode as (text, loss weight) segments, run through the env (so every
  response is the cache's)."""
  episode, segments = env.new_episode(item), []
  for step in item.steps:
    call = env.syntax.format_call(step.function, dict(step.arguments))
    result = env.execute(env.parse_call(call, episode), episode)
    if result.malformed is not None or result.error is not None:
      raise ValueError(f"task: the synthesized chain of {item.template} does not replay: "
                       f"{result.malformed or result.error}")
    segments += [(call, 1.0), (env.syntax.format_response(result.text), 0.0)]
  return segments + [(DONE, 1.0)]


def transcript_reward(item: wf.Workflow, transcript: str, reward: str = "graduated") -> float:
  """The reward of a text transcript through the authors' parser (what the "task" scorer and
  evaluator use; the project's scorer reads the episode ledger instead)."""
  calls, pairs = rw.extract_calls_and_responses(transcript)
  return rw.score(calls, pairs, ground_truth(item), reward=reward)["reward"]


@TASKS.register("tool_orchestration")
def tool_orchestration_task(*, seed: int, exp, train_size: int = 160, eval_size: int = 64,
                            templates: Sequence[str] = tuple(wf.TEMPLATES),
                            held_out_templates: Sequence[str] = (), num_distractors: int = 2,
                            query_variants: int = 3, sft_frac: float = 0.5,
                            vocab_size: int = 320,
                            query_writer: Mapping[str, Any] | None = None) -> TaskData:
  """train_size / eval_size: distinct training / held-out workflows; templates: those of
  training (and of held-out chains); held_out_templates: templates seen only in evaluation
  (transfer; () = none); num_distractors: extra same-domain tools in the prompt (paper: 2);
  query_variants: phrasings the query writer gives per workflow (one drawn per item);
  sft_frac: fraction of the training workflows with SFT demonstrations; vocab_size: the BPE
  tokenizer's (trained on prompts and worked episodes); query_writer: the `Teacher` config
  (`rl_jax.intelligence.IntelligenceConfig` fields; default: the template oracle, no cache
  directory)."""
  for name in tuple(templates) + tuple(held_out_templates):
    if name not in wf.TEMPLATES:
      raise ValueError(f"config task.templates: unknown template {name!r}; known: "
                       f"{sorted(wf.TEMPLATES)}")
  if not 0 < sft_frac <= 1:
    raise ValueError(f"config task.sft_frac must be in (0, 1], got {sft_frac}")
  cache = api.ResponseCache.build()
  r = exp.rl.rollout
  env = api.CachedApiEnv(cache, max_calls=r.max_calls)
  teacher = intelligence.build("teacher", query_writer, wf.TemplateQueryOracle(),
                               where="config task.query_writer")
  rng = np.random.default_rng([seed, 23])
  train = wf.synthesize_split(tuple(templates), train_size, cache, rng, teacher,
                              num_distractors=num_distractors, query_variants=query_variants)
  eval_templates = tuple(templates) + tuple(held_out_templates)
  held_out = wf.synthesize_split(eval_templates, eval_size, cache, rng, teacher,
                                 num_distractors=num_distractors,
                                 exclude={w.key for w in train}, query_variants=query_variants)
  completion = lambda it: "".join(text for text, _ in worked_episode(env, it))
  names = tuple(api.FUNCTIONS)
  tok = train_sentencepiece([prompt_of(it) for it in train + held_out] +
                            [completion(it) for it in train],
                            vocab_size=vocab_size, model_type="bpe", byte_fallback=False,
                            extra_symbols=names + (DONE,))
  n_sft = max(1, int(round(sft_frac * len(train))))
  prompt_len = exp.prompt_len
  total_len = prompt_len + (r.max_calls + 1) * exp.max_new_tokens + r.max_calls * r.tool_tokens

  def demonstration(item):
    ids, mask = [], []
    for text, weight in worked_episode(env, item):
      piece = tok.encode(text)
      ids, mask = ids + piece, mask + [weight] * len(piece)
    return tok.encode(prompt_of(item)), ids, mask

  demos = None

  def sft_batch(batch_size: int, step_rng: np.random.Generator):
    nonlocal demos
    if demos is None:
      rows = [demonstration(it) for it in train[:n_sft]]
      batch = assemble(*zip(*rows), [[0.0] * len(d[1]) for d in rows], prompt_len=prompt_len,
                       total_len=total_len, pad_id=tok.pad_id)
      demos = (batch["tokens_BxL"], batch["valid_BxL"], batch["loss_mask_BxL"])
    pick = step_rng.choice(n_sft, batch_size, replace=n_sft < batch_size)
    return tuple(a[pick] for a in demos)

  return TaskData("tool_orchestration", train, held_out, prompt_fn=prompt_of,
                  completion_fn=completion, reward_fn=transcript_reward, tool_env=env,
                  tokenizer=tok, stop_ids=(tok.token_id(DONE),), sft_batch=sft_batch)
