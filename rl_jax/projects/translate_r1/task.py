"""The Translate-R1 task on the cipher-language world (seed S1; docs/translate_r1.md).

Registered as task "translate_r1_cipher". What each stage of the one loop reads from it:
  pretrain: `pretrain_data`, next-token loss on the mixed-cipher corpus
     (`CipherWorld.pretrain_corpus`: base 40%, High 6%, Low 1%, XLow 0.1% per language; docs end
     with "<answer> a </answer>"), the tfds dataset of `corpus.CipherCorpus` read through the data
     layer: documents packed first-fit into rows of `doc_len` tokens with segment ids, so no
     document attends to another (`rl_jax.data.loader.packed_batches`).
  sft: `sft_data`, "post-training" demonstrations whose languages follow the corpus mix; a
     `tool_frac` (~5%) of them call the translate tool, chosen at random, independent of the
     language: the overconfident baseline that answers natively in languages it cannot read. A
     further `tool_context_frac` show a call and its response as context (loss 0) and train only
     the answer: the model can use the tool's output but is not taught to call (measured without
     it in an earlier version of the world, answering after a tool response was worse than
     answering natively even in English, and RL then never kept the tool).
  rl: `rl_sampler` draws items stratified over tier x domain of the train languages; the "tool"
     rollout runs `tool_env` (the translate tool); the reward is exact-match on the answer.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rl_jax.data import builders, loader
from rl_jax.projects.translate_r1 import corpus
from rl_jax.projects.translate_r1 import domains as cipher_domains
from rl_jax.projects.translate_r1 import tool as tools
from rl_jax.projects.translate_r1 import world as cipher
from rl_jax.projects.translate_r1.tokenizer import build_tokenizer
from rl_jax.sampling.tool_loop import assemble
from rl_jax.tasks import TASKS, TaskData

CALL_TEXT = f"{tools.TOOL_CALL_OPEN} {tools.TRANSLATE} {tools.TOOL_CALL_CLOSE}"
NATIVE, TOOL, TOOL_CONTEXT = 0, 1, 2


def layout_of(exp) -> tuple[int, int]:
  """(prompt_len P, total_len L) of the tool rollout of `exp` (demonstrations use the same)."""
  r = exp.rl.rollout
  total = exp.prompt_len + (r.max_calls + 1) * exp.max_new_tokens + r.max_calls * r.tool_tokens
  return exp.prompt_len, total


def demonstrations(world, env, tok, items, kinds, *, prompt_len: int, total_len: int,
                   train_call_syntax: bool) -> dict[str, np.ndarray]:
  """SFT examples in the rollout layout, per `kinds`: NATIVE "<answer> a </answer> EOS";
  TOOL the call, the tool's response (loss_mask 0) and the answer; TOOL_CONTEXT the same
  with the call's first token in context (loss_mask 0): it teaches reading a tool response
  without teaching to call. With `train_call_syntax` the rest of the call is trained there
  (the syntax, not the decision: a post-trained model knows the tool format from its system
  prompt); otherwise the whole call is context. Built with `tool_loop.assemble`, so they match
  rollouts token for token."""
  prompts, resp, mask = [], [], []
  for it, kind in zip(items, kinds):
    answer = tok.encode(cipher.format_answer(it.answer)) + [tok.eos_id]
    ids, m = [], []
    if kind != NATIVE:
      episode = env.new_episode(it)
      result = env.execute(env.parse_call(CALL_TEXT, episode), episode)
      call, response = tok.encode(CALL_TEXT), tok.encode(env.syntax.format_response(result.text))
      call_mask = [float(kind == TOOL)] * len(call)
      if kind == TOOL_CONTEXT and train_call_syntax:
        call_mask = [0.0] + [1.0] * (len(call) - 1)
      ids, m = call + response, call_mask + [0.0] * len(response)
    prompts.append(tok.encode(it.text))
    resp.append(ids + answer)
    mask.append(m + [1.0] * len(answer))
  return assemble(prompts, resp, mask, [[0.0] * len(r) for r in resp], prompt_len=prompt_len,
                  total_len=total_len, pad_id=tok.pad_id)


def sft_items(world, n: int, rng: np.random.Generator, domains: Sequence[str]) -> list:
  """Task items whose languages follow the pretraining mix (post-training data is mostly base
  and High), domains uniform over `domains`."""
  shares = world.corpus_shares()
  names = list(shares)
  langs = rng.choice(len(names), size=n, p=np.asarray([shares[k] for k in names]))
  items = []
  for i in langs:
    domain = domains[int(rng.integers(len(domains)))]
    text_en, answer = cipher_domains.generate(domain, rng, world.cfg.max_number)
    items.append(world.make_item(text_en, answer, domain, names[int(i)]))
  return items


@TASKS.register("translate_r1_cipher")
def cipher_task(*, seed: int, exp, world_seed: int = 0,
                domains: Sequence[str] = cipher_domains.DOMAINS, doc_len: int = 64,
                docs_per_row: int = 3, sft_examples: int = 2000, tool_frac: float = 0.05,
                tool_context_frac: float = 0.3, train_call_syntax: bool = True,
                cost_mode: str = "per_call", unit_cost: float = 1.0,
                token_cost: float = 0.02, corpus_docs: int = 0, data_dir: str = "") -> TaskData:
  """The cipher-world task (module docstring). `domains`: of SFT, RL and evaluation
  (pretraining uses all five); tool costs as `tools.TranslateToolCfg`.
  doc_len: tokens per packed pretraining row (a longer document is an error naming it).
  corpus_docs: documents in the pretraining corpus; 0 = pretrain.steps x batch_size x
    docs_per_row (each document read about once: rows hold ~3 documents at doc_len 64).
  data_dir: the run's data directory (where the corpus is prepared; passed by the loop)."""
  domains = tuple(domains)
  for d in domains:
    if d not in cipher_domains.DOMAINS:
      raise ValueError(f"config task.domains: unknown domain {d!r}; expected some of "
                       f"{cipher_domains.DOMAINS}")
  if not 0 <= tool_frac + tool_context_frac <= 1:
    raise ValueError("config task.tool_frac + task.tool_context_frac must be in [0, 1], got "
                     f"{tool_frac} + {tool_context_frac}")
  world = cipher.CipherWorld(world_seed)
  tok = build_tokenizer(world)
  env = tools.TranslateToolEnv(
      tools.OracleCipherTranslator(world),
      tools.TranslateToolCfg(cost_mode=cost_mode, unit_cost=unit_cost, token_cost=token_cost,
                             max_calls=exp.rl.rollout.max_calls))
  prompt_len, total_len = layout_of(exp)
  rng = np.random.default_rng([seed, 2])
  items = sft_items(world, sft_examples, rng, domains)
  u = rng.random(len(items))
  kinds = np.where(u < tool_frac, TOOL, np.where(u < tool_frac + tool_context_frac,
                                                 TOOL_CONTEXT, NATIVE))

  def sft_data() -> loader.Examples:
    """The demonstrations (built at the first SFT stage: pretraining-only runs never need them),
    read through the data layer: one permutation per epoch."""
    data = demonstrations(world, env, tok, items, kinds, prompt_len=prompt_len,
                          total_len=total_len, train_call_syntax=train_call_syntax)
    arrays = (data["tokens_BxL"], data["valid_BxL"], data["loss_mask_BxL"])
    return loader.Examples(range(len(items)), lambda i, _: tuple(a[i] for a in arrays))

  def pretrain_data() -> loader.Corpus:
    """The corpus dataset, prepared at the first pretrain stage (other runs never build it)."""
    num_docs = corpus_docs or max(exp.pretrain.steps * exp.pretrain.batch_size * docs_per_row, 1)
    sources = builders.prepare(corpus.CipherCorpus, data_dir or builders.default_data_dir(),
                               corpus.corpus_config(world_seed, num_docs, seed))
    return loader.Corpus(sources["train"], row_len=doc_len, tokens_fn=lambda record, _: (
        tok.encode(builders.text(record["text"])) + [tok.eos_id]))

  train_langs = world.names(split="train")
  return TaskData(
      name="translate_r1_cipher", train=items, eval=[],
      prompt_fn=lambda it: it.text,
      completion_fn=lambda it: cipher.format_answer(it.answer),
      reward_fn=lambda it, transcript: float(tools.is_correct(transcript, it)),
      rl_sampler=lambda n, r: world.sample_items(n, r, langs=train_langs, domains=domains,
                                                 stratify=True),
      answer_fn=cipher.extract_answer, tool_env=env, tokenizer=tok,
      # A turn ends at EOS or at either piece of the call's close tag (with / without "▁").
      stop_ids=(tok.token_id(tools.TOOL_CALL_CLOSE), tok.sp.token_id(tools.TOOL_CALL_CLOSE)),
      sft_data=sft_data, pretrain_data=pretrain_data)
