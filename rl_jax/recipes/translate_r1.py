"""Translate-R1 reproduction on the cipher-language world, one function per stage (SPEC §1(c)).

  python -m rl_jax.recipes.translate_r1 --config=configs/gated_gspo_tiny_cipher.py --workdir=W

Stages (all randomness from `config.seed`; the world itself from `config.world_seed`):
  1. `pretrain`: next-token loss on the mixed-cipher corpus (`CipherWorld.pretrain_corpus`: base
     40%, High 6%, Low 1%, XLow 0.1% per language; docs end with "<answer> a </answer>").
  2. `sft`: "post-training" on tasks whose languages follow the corpus mix; a `tool_frac` (~5%)
     of demonstrations call the translate tool, chosen at random, independent of the language:
     the overconfident baseline that answers natively in languages it cannot read. A further
     `tool_context_frac` of demonstrations show a call and its response as context (loss 0) and
     train only the answer: the model can use the tool's output but is not taught to call (a
     post-trained LLM reads English well; measured without it in an earlier version of the
     world, answering after a tool response was worse than answering natively even in English,
     and RL then never kept the tool).
  3. `rl_train` (module `translate_r1_rl`, re-exported here): GSPO with the advantages of
     `gated_gspo.gated_gspo_advantages`; one policy per (gate, lambda). Prompts are stratified
     over tier x domain; multi-turn rollouts come from `sampling.tool_loop`. Results and what
     they show: docs/translate_r1.md.
  4. `translate_r1_eval`: greedy evaluation of every policy and of the SFT policy with the call
     forced / forbidden, the Pareto sweep and the plot; results in W/results.json and W/report.md.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax import metrics as metrics_lib
from rl_jax import optim
from rl_jax.envs import cipher, cipher_domains, tools
from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config
from rl_jax.recipes import translate_r1_eval as ev
from rl_jax.recipes.cipher_tokenizer import build_tokenizer
from rl_jax.recipes.translate_r1_rl import check_rl_section, rl_train
from rl_jax.sampling.tool_loop import ToolLoopCfg, assemble
from rl_jax.sft import SFTCfg, sft_step
from rl_jax.types import TrainState

CALL_TEXT = f"{tools.TOOL_CALL_OPEN} {tools.TRANSLATE} {tools.TOOL_CALL_CLOSE}"
class Context:
  """Everything the stages share: world, tokenizer, tool env, model and layout configs."""

  def __init__(self, config):
    self.config = config
    self.world = cipher.CipherWorld(config.world_seed)
    self.tokenizer = build_tokenizer(self.world)
    tok = self.tokenizer
    self.env = tools.TranslateToolEnv(
        tools.OracleCipherTranslator(self.world),
        tools.TranslateToolCfg(cost_mode=config.tool.cost_mode, unit_cost=config.tool.unit_cost,
                               token_cost=config.tool.token_cost, max_calls=1,
                               malformed_reward=config.tool.malformed_reward))
    m = config.model
    self.model_cfg = get_model_config(
        "tiny", vocab_size=tok.vocab_size, num_layers=m.num_layers, hidden_size=m.hidden_size,
        num_heads=m.num_heads, num_kv_heads=m.num_kv_heads, head_dim=m.head_dim,
        intermediate_size=m.intermediate_size, max_seq_len=m.max_seq_len,
        scan_unroll=m.get("scan_unroll", 1))
    lay = config.layout
    # A turn ends at EOS or at either piece of the call's close tag (with / without "▁").
    stops = (tok.eos_id, tok.token_id(tools.TOOL_CALL_CLOSE),
             tok.sp.token_id(tools.TOOL_CALL_CLOSE))
    self.loop_cfg = ToolLoopCfg(prompt_len=lay.prompt_len, turn_tokens=lay.turn_tokens,
                                tool_tokens=lay.tool_tokens, max_calls=1, stop_ids=stops,
                                pad_id=tok.pad_id, row_bucket=lay.get("row_bucket", 0))
    for d in config.domains:
      if d not in cipher_domains.DOMAINS:
        raise ValueError(f"config.domains: unknown domain {d!r}; expected some of "
                         f"{cipher_domains.DOMAINS}")
    if self.loop_cfg.total_len > self.model_cfg.max_seq_len:
      raise ValueError(f"config.layout: P + 2N + R = {self.loop_cfg.total_len} exceeds "
                       f"config.model.max_seq_len={self.model_cfg.max_seq_len}")

  @staticmethod
  def optim_cfg(stage, steps: int) -> optim.OptimCfg:
    """AdamW with warm-up and cosine decay over `steps` from a stage section (pretrain, sft, rl)."""
    return optim.OptimCfg(learning_rate=stage.learning_rate, warmup_steps=stage.warmup_steps,
                          schedule="cosine", decay_steps=max(steps, 1),
                          min_lr_ratio=stage.get("min_lr_ratio", 0.0))


def _supervised(ctx: Context, params, stage, batches, writer, prefix: str):
  """Shared SFT loop: `batches(step) -> (tokens, valid, loss_mask)` numpy [B, L]."""
  cfg = SFTCfg(model=ctx.model_cfg, optim=ctx.optim_cfg(stage, stage.steps))
  state = TrainState(jnp.int32(0), params, optim.make_optimizer(cfg.optim).init(params))
  lr = jnp.float32(stage.learning_rate)
  fetcher = metrics_lib.LateFetcher()
  def record(done):  # (step, metrics) of the previous step, or None
    if done:
      metrics_lib.check_finite(done[1], done[0])
      writer.write(done[0], {f"{prefix}/nll": done[1]["sft/nll"]})

  for step in range(stage.steps):
    state, m = sft_step(state, *(jnp.asarray(a) for a in batches(step)), lr, cfg=cfg)
    record(fetcher.push(step, m))
  record(fetcher.flush())
  return state.params


def pretrain(ctx: Context, key: jax.Array, writer) -> Any:
  """Stage 1: random init, then next-token loss on every token of fresh corpus documents."""
  p = ctx.config.pretrain
  tok, length = ctx.tokenizer, ctx.config.layout.doc_len

  k = p.docs_per_row

  def batches(step):
    # k documents packed per row, so positions as late as an answer after a tool response
    # (slot ~P + N + R) are trained too.
    docs = ctx.world.pretrain_corpus(p.batch_size * k,
                                     np.random.default_rng([ctx.config.seed, 1, step]))
    ids = [sum((tok.encode(d) + [tok.eos_id] for d in docs[i:i + k]), [])
           for i in range(0, len(docs), k)]
    tokens = np.full((len(ids), length), tok.pad_id, np.int32)
    valid = np.zeros((len(ids), length), bool)
    for i, row in enumerate(ids):
      if len(row) > length:
        raise ValueError(f"pretrain: a row of {k} documents has {len(row)} tokens > "
                         f"layout.doc_len={length}")
      tokens[i, :len(row)], valid[i, :len(row)] = row, True
    return tokens, valid, valid.astype(np.float32)

  params = qwen3.init_params(ctx.model_cfg, key)
  return _supervised(ctx, params, p, batches, writer, "pretrain")


NATIVE, TOOL, TOOL_CONTEXT = 0, 1, 2


def demonstrations(ctx: Context, items, kinds) -> dict[str, np.ndarray]:
  """SFT examples in the rollout layout, per `kinds`: NATIVE "<answer> a </answer> EOS";
  TOOL the call, the tool's response (loss_mask 0) and the answer; TOOL_CONTEXT the same
  with the call's first token in context (loss_mask 0): it teaches reading a tool response
  without teaching to call. With `sft.train_call_syntax` the rest of the call is trained there
  (the syntax, not the decision: a post-trained model knows the tool format from its system
  prompt); otherwise the whole call is context. Built with `tool_loop.assemble`, so they match
  rollouts token for token."""
  tok = ctx.tokenizer
  prompts, resp, mask = [], [], []
  for it, kind in zip(items, kinds):
    answer = tok.encode(cipher.format_answer(it.answer)) + [tok.eos_id]
    ids, m = [], []
    if kind != NATIVE:
      episode = ctx.env.new_episode(it)
      result = ctx.env.execute(ctx.env.parse_call(CALL_TEXT, episode), episode)
      call, response = tok.encode(CALL_TEXT), tok.encode(result.text)
      call_mask = [float(kind == TOOL)] * len(call)
      if kind == TOOL_CONTEXT and ctx.config.sft.train_call_syntax:
        call_mask = [0.0] + [1.0] * (len(call) - 1)
      ids, m = call + response, call_mask + [0.0] * len(response)
    prompts.append(tok.encode(it.text))
    resp.append(ids + answer)
    mask.append(m + [1.0] * len(answer))
  return assemble(prompts, resp, mask, [[0.0] * len(r) for r in resp],
                  prompt_len=ctx.loop_cfg.prompt_len, total_len=ctx.loop_cfg.total_len,
                  pad_id=tok.pad_id)


def sft_items(ctx: Context, n: int, rng: np.random.Generator) -> list[cipher.Item]:
  """Task items whose languages follow the pretraining mix (post-training data is mostly base
  and High), domains uniform over `config.domains`."""
  shares = ctx.world.corpus_shares()
  names = list(shares)
  langs = rng.choice(len(names), size=n, p=np.asarray([shares[k] for k in names]))
  items = []
  domains = tuple(ctx.config.domains)
  for i in langs:
    domain = domains[int(rng.integers(len(domains)))]
    text_en, answer = cipher_domains.generate(domain, rng, ctx.world.cfg.max_number)
    items.append(ctx.world.make_item(text_en, answer, domain, names[int(i)]))
  return items


def sft(ctx: Context, params, writer) -> Any:
  """Stage 2: SFT with rare tool use (the overconfident baseline)."""
  s = ctx.config.sft
  rng = np.random.default_rng([ctx.config.seed, 2])
  items = sft_items(ctx, s.num_examples, rng)
  u = rng.random(len(items))
  kinds = np.where(u < s.tool_frac, TOOL,
                   np.where(u < s.tool_frac + s.tool_context_frac, TOOL_CONTEXT, NATIVE))
  data = demonstrations(ctx, items, kinds)
  arrays = (data["tokens_BxL"], data["valid_BxL"], data["loss_mask_BxL"])

  def batches(step):
    rows = np.random.default_rng([ctx.config.seed, 3, step]).choice(len(items), s.batch_size,
                                                                      replace=False)
    return tuple(a[rows] for a in arrays)

  return _supervised(ctx, params, s, batches, writer, "sft")


def _brief(records) -> str:
  s = ev.summarize(records, 1.0)
  return " ".join(f"{g}={s[g]['reward']:.2f}/{s[g]['translated']:.2f}" for g in ev.GROUPS) + \
      " (reward/translate rate)"


def run(config, workdir: str, log=print) -> dict[str, Any]:
  """All stages; writes results.json, report.md and (if enabled) pareto.png into `workdir`."""
  os.makedirs(workdir, exist_ok=True)
  t0 = time.time()
  ctx = Context(config)
  check_rl_section(config.rl)
  key = jax.random.key(config.seed)
  writer = lambda name: metrics_lib.MetricWriter(os.path.join(workdir, name), tensorboard=False)
  log(f"model: {ctx.model_cfg.num_params()} params, vocab {ctx.tokenizer.vocab_size}, "
      f"layout L={ctx.loop_cfg.total_len}")
  params = pretrain(ctx, jax.random.fold_in(key, 1), writer("pretrain"))
  log(f"pretrain done at {time.time() - t0:.0f}s")
  params = sft(ctx, params, writer("sft"))
  log(f"sft done at {time.time() - t0:.0f}s")
  e = config.eval
  items = ev.eval_items(ctx.world, e.items_per_lang, config.seed, config.domains,
                        min_per_group=e.min_items_per_group)
  track_items = ev.eval_items(ctx.world, e.track_items_per_lang, config.seed + 1000,
                              config.domains)
  eval_key = jax.random.key(0)
  records = {
      "sft": ev.evaluate(ctx, params, items, eval_key, batch_size=e.batch_size),
      "always": ev.evaluate(ctx, params, items, eval_key, batch_size=e.batch_size,
                            forced_prefix=CALL_TEXT),
      "never": ev.evaluate(ctx, params, items, eval_key, batch_size=e.batch_size,
                           forced_prefix=cipher.ANSWER_OPEN),
  }
  families = {"sft": "sft", "always": "always", "never": "never"}
  for name in records:
    log(f"{name}: {_brief(records[name])}")
  lams = {}
  tracking = {}
  for gate in config.rl.gates:
    family = "gated" if gate != "none" else "ungated"
    for lam in config.rl.lams:
      name = f"{family}_lam{lam:g}"
      rl_params, tracking[name] = rl_train(ctx, params, gate=gate, lam=float(lam),
                                           key=jax.random.fold_in(key, 5), writer=writer(name),
                                           track_items=track_items)
      records[name] = ev.evaluate(ctx, rl_params, items, eval_key, batch_size=e.batch_size)
      families[name], lams[name] = family, float(lam)
      log(f"{name} done at {time.time() - t0:.0f}s: {_brief(records[name])}")
  always_cost = ev.summarize(records["always"], 1.0)["C"]
  summaries = {n: ev.summarize(r, always_cost) for n, r in records.items()}
  # The sweep covers the trained cost range (alpha and lambda share units: C counts calls per
  # item, normalised by always-translate's one call); [0, 1] is reported too.
  alpha_max = e.alpha_max if e.alpha_max is not None else max(lams.values(), default=1.0)
  result = ev.sweep(summaries, families, lams, alpha_max=alpha_max, n_alpha=e.n_alpha)
  result_unit = ev.sweep(summaries, families, lams, alpha_max=1.0, n_alpha=e.n_alpha)
  # Per-item scores (every policy ran on the same items, in the same order) for the paired
  # bootstrap of the Pareto share (translate_r1_eval.bootstrap_pareto_share).
  item_scores = {"group": [rec["group"] for rec in records["sft"]],
                 "policies": {n: {k: [rec[k] for rec in recs] for k in ("reward", "cost")}
                              for n, recs in records.items()}}
  out = {"summaries": summaries, "sweep": result, "alpha_max": alpha_max, "n_alpha": e.n_alpha,
         "sweep_alpha_0to1": result_unit, "families": families, "lams": lams,
         "tracking": tracking, "item_scores": item_scores, "seconds": time.time() - t0}
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(out, f, indent=1)
  with open(os.path.join(workdir, "report.md"), "w") as f:
    f.write(ev.markdown_tables(summaries, result))
    f.write(f"\n(alpha in [0, {alpha_max:g}]; over alpha in [0, 1]: "
            + ", ".join(f"{k.split('/')[1]} gated {ev.fmt(v.get('gated'))}"
                        for k, v in result_unit.items() if k.startswith("pareto_share/"))
            + ")\n")
    f.write("\nSampled translate rate in the RL rollouts (first 5 → last 20 steps):\n\n")
    f.write(ev.training_rate_table(
        {n: metrics_lib.read_metrics(os.path.join(workdir, n, "metrics.jsonl"))
         for n in tracking}))
    f.write("\nGreedy translate rate over RL steps (tracking set):\n\n")
    f.write(ev.tracking_table(tracking, ev.lang_groups(ctx.world)))
  if e.plot:
    ev.plot(summaries, families, os.path.join(workdir, "pareto.png"),
            f"Translate-R1 cipher world, seed {config.seed}")
  log(f"all done in {time.time() - t0:.0f}s")
  return out


def main(argv):
  from absl import app  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  out = run(_CONFIG.value, _WORKDIR.value)
  print(ev.markdown_tables(out["summaries"], out["sweep"]))


if __name__ == "__main__":
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  _CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file",
                                            lock_config=True)
  _WORKDIR = flags.DEFINE_string("workdir", None, "output folder")
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
