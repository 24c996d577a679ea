"""The Translate-R1 task on the cipher-language world (seed S1; docs/translate_r1.md).

Registered as task "translate_r1_cipher". What each stage of the one loop reads from it:
  pretrain: `pretrain_batch`, next-token loss on the mixed-cipher corpus
     (`CipherWorld.pretrain_corpus`: base 40%, High 6%, Low 1%, XLow 0.1% per language; docs end
     with "<answer> a </answer>"), `docs_per_row` documents packed per row so the positions an
     answer takes after a tool response (slot ~P + N + R) are trained too.
  sft: `sft_batch`, "post-training" demonstrations whose languages follow the corpus mix; a
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


def pack_documents(tok, docs: Sequence[str], docs_per_row: int, length: int):
  """(tokens, valid, loss_mask) [B, length]: `docs_per_row` documents + EOS each per row."""
  ids = [sum((tok.encode(d) + [tok.eos_id] for d in docs[i:i + docs_per_row]), [])
         for i in range(0, len(docs), docs_per_row)]
  tokens = np.full((len(ids), length), tok.pad_id, np.int32)
  valid = np.zeros((len(ids), length), bool)
  for i, row in enumerate(ids):
    if len(row) > length:
      raise ValueError(f"task.doc_len: a row of {docs_per_row} documents has {len(row)} tokens "
                       f"> doc_len={length}")
    tokens[i, :len(row)], valid[i, :len(row)] = row, True
  return tokens, valid, valid.astype(np.float32)


@TASKS.register("translate_r1_cipher")
def cipher_task(*, seed: int, exp, world_seed: int = 0,
                domains: Sequence[str] = cipher_domains.DOMAINS, doc_len: int = 64,
                docs_per_row: int = 3, sft_examples: int = 2000, tool_frac: float = 0.05,
                tool_context_frac: float = 0.3, train_call_syntax: bool = True,
                cost_mode: str = "per_call", unit_cost: float = 1.0,
                token_cost: float = 0.02) -> TaskData:
  """The cipher-world task (module docstring). `domains`: of SFT, RL and evaluation
  (pretraining uses all five); tool costs as `tools.TranslateToolCfg`."""
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
  demos = None  # built at the first SFT batch: pretraining-only runs never need them

  def sft_batch(batch_size: int, step_rng: np.random.Generator):
    nonlocal demos
    if demos is None:
      data = demonstrations(world, env, tok, items, kinds, prompt_len=prompt_len,
                            total_len=total_len, train_call_syntax=train_call_syntax)
      demos = (data["tokens_BxL"], data["valid_BxL"], data["loss_mask_BxL"])
    rows = step_rng.choice(len(items), batch_size, replace=False)
    return tuple(a[rows] for a in demos)

  def pretrain_batch(batch_size: int, step_rng: np.random.Generator):
    docs = world.pretrain_corpus(batch_size * docs_per_row, step_rng)
    return pack_documents(tok, docs, docs_per_row, doc_len)

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
      sft_batch=sft_batch, pretrain_batch=pretrain_batch)
