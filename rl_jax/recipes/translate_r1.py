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
  3. `rl_train`: GSPO (`losses.preset("gspo")`) with the advantages of
     `gated_gspo.gated_gspo_advantages`; one policy per (gate, lambda). Prompts are stratified
     over tier x domain; multi-turn rollouts come from `sampling.tool_loop`. Results and what
     they show: docs/translate_r1.md.
  4. `translate_r1_eval`: greedy evaluation of every policy and of the SFT policy with the call
     forced / forbidden, the Pareto sweep and the plot; results in W/results.json and W/report.md.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax import logprobs as logprobs_lib
from rl_jax import metrics as metrics_lib
from rl_jax import optim
from rl_jax.algorithms import gated_gspo, losses
from rl_jax.envs import cipher, cipher_domains, tools
from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config
from rl_jax.recipes import translate_r1_eval as ev
from rl_jax.recipes.cipher_tokenizer import build_tokenizer
from rl_jax.sampling.tool_loop import ToolLoopCfg, assemble, tool_rollout
from rl_jax.sft import SFTCfg, sft_step
from rl_jax.types import Batch, SampleKnobs, TrainState
from rl_jax.update import UpdateCfg, UpdateKnobs, init_train_state, train_on_rollout

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


def _optim_cfg(stage, steps: int) -> optim.OptimCfg:
  return optim.OptimCfg(learning_rate=stage.learning_rate, warmup_steps=stage.warmup_steps,
                        schedule="cosine", decay_steps=max(steps, 1),
                        min_lr_ratio=stage.get("min_lr_ratio", 0.0))


def _supervised(ctx: Context, params, stage, batches, writer, prefix: str):
  """Shared SFT loop: `batches(step) -> (tokens, valid, loss_mask)` numpy [B, L]."""
  cfg = SFTCfg(model=ctx.model_cfg, optim=_optim_cfg(stage, stage.steps))
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


KL_SCOPES = ("all", "native")
HISTORY_KEYS = ("language", "language_domain")


def history_cells(langs, domains, key: str) -> dict[tuple[str, str], int]:
  """(language, domain) -> index of the gate-history cell its groups pool into: one cell per
  language (key "language"), or one per (language, domain) pair ("language_domain")."""
  if key == "language":
    return {(lang, d): k for k, lang in enumerate(langs) for d in domains}
  if key == "language_domain":
    return {(lang, d): k * len(domains) + j for k, lang in enumerate(langs)
            for j, d in enumerate(domains)}
  raise ValueError(f"gate_history_key must be one of {HISTORY_KEYS}, got {key!r}")


def check_rl_section(r) -> None:
  """Validates `config.rl` (the fields rl_train reads); `run` calls it before pretraining, so a
  bad field fails in seconds, not after pretraining and SFT."""
  if not 0 <= r.native_rows < r.group_size:
    raise ValueError(f"config.rl.native_rows must be in [0, group_size={r.group_size}), got "
                     f"{r.native_rows}")
  if r.cost_free_steps < 0:
    raise ValueError(f"config.rl.cost_free_steps must be >= 0, got {r.cost_free_steps}")
  if not 0.0 < r.cost_free_until_rate <= 1.0:
    raise ValueError(f"config.rl.cost_free_until_rate must be in (0, 1], got "
                     f"{r.cost_free_until_rate}")
  if r.gate_history_key not in HISTORY_KEYS:
    raise ValueError(f"config.rl.gate_history_key must be one of {HISTORY_KEYS}, got "
                     f"{r.gate_history_key!r}")
  if r.gate_threshold not in gated_gspo.THRESHOLDS:
    raise ValueError(f"config.rl.gate_threshold must be one of {gated_gspo.THRESHOLDS}, got "
                     f"{r.gate_threshold!r}")
  if not 0.0 <= r.gate_history_decay < 1.0:
    raise ValueError(f"config.rl.gate_history_decay must be in [0, 1), got "
                     f"{r.gate_history_decay}")
  if not r.gate_history_weight >= 0:
    raise ValueError(f"config.rl.gate_history_weight must be >= 0 (inf = the full history), "
                     f"got {r.gate_history_weight}")
  if r.lr_drop_step >= 0 and not 0.0 < r.lr_drop_factor <= 1.0:
    raise ValueError(f"config.rl.lr_drop_factor must be in (0, 1], got {r.lr_drop_factor}")
  if r.kl_beta < 0:
    raise ValueError(f"config.rl.kl_beta must be >= 0, got {r.kl_beta}")
  if r.kl_scope not in KL_SCOPES:
    raise ValueError(f"config.rl.kl_scope must be one of {KL_SCOPES}, got {r.kl_scope!r}")
  if r.kl_beta > 0 and r.temperature != 1.0:
    raise ValueError("config.rl.kl_beta > 0 needs config.rl.temperature = 1 (the policy and "
                     f"reference log-probs of the KL term are at temperature 1), got "
                     f"{r.temperature}")
  if r.kl_beta > 0 and r.kl_scope == "native" and (r.num_epochs, r.num_minibatches) != (1, 1):
    raise ValueError("config.rl.kl_scope='native' needs num_epochs = num_minibatches = 1 (it "
                     f"zeroes the KL off scope by ref = old log-probs); got {r.num_epochs}, "
                     f"{r.num_minibatches}")
  if r.drop_zero_advantage < 0:
    raise ValueError(f"config.rl.drop_zero_advantage must be >= 0 (0 = off), got "
                     f"{r.drop_zero_advantage}")
  if r.decision_weight <= 0:
    raise ValueError(f"config.rl.decision_weight must be > 0, got {r.decision_weight}")
  unknown = [g for g in r.gates if g not in gated_gspo.GATES]
  if not r.gates or unknown:
    raise ValueError(f"config.rl.gates must name some of {gated_gspo.GATES}, got "
                     f"{tuple(r.gates)!r}")
  if not r.lams or not all(lam >= 0 for lam in r.lams):
    raise ValueError(f"config.rl.lams must be prices >= 0 (at least one), got {tuple(r.lams)!r}")
  if r.gate_mode not in gated_gspo.MODES:
    raise ValueError(f"config.rl.gate_mode must be one of {gated_gspo.MODES}, got "
                     f"{r.gate_mode!r}")


def rl_train(ctx: Context, params, *, gate: str, lam: float, key: jax.Array, writer,
             track_items, ref_params=None) -> tuple[Any, list[dict]]:
  """Stage 3: confidence-gated (or ungated) GSPO from `params`; returns (params, tracking),
  tracking = greedy translate rate per language on `track_items` every `track_every` steps.
  With `rl.kl_beta` > 0 the KL reference is `ref_params` (default: `params`, the SFT policy)."""
  r = ctx.config.rl
  check_rl_section(r)
  # GSPO-token keeps GSPO's sequence ratio and clipping and takes per-token advantages, so the
  # decision token's gradient can be scaled alone (rl.decision_weight).
  pre = losses.preset("gspo" if r.decision_weight == 1.0 else "gspo_token")
  use_kl = r.kl_beta > 0
  # Zero-advantage rows add nothing to a KL-free loss: train without them (same update, less
  # compute; update.drop_zero_advantage_rows). With the KL term every row has a gradient.
  drop_rows = 0 if use_kl else r.drop_zero_advantage
  ucfg = UpdateCfg(model=ctx.model_cfg, loss=dataclasses.replace(pre.cfg, use_kl_loss=use_kl),
                   optim=_optim_cfg(r, r.steps))
  uknobs = UpdateKnobs.create(losses.LossKnobs.create(**dict(pre.knobs, beta=r.kl_beta)),
                              r.learning_rate)
  # The KL reference is the policy RL starts from (the SFT policy), kept apart from the donated
  # training state.
  if use_kl:
    ref_params = jax.tree.map(jnp.copy, params if ref_params is None else ref_params)
  gate_cfg = gated_gspo.GateCfg(gate=gate, mode=r.gate_mode, threshold=r.gate_threshold,
                                m_min=r.m_min, group_size=r.group_size,
                                normalize=r.adv_normalize, cost_in=r.cost_in)
  advantages = jax.jit(functools.partial(gated_gspo.gated_gspo_advantages, cfg=gate_cfg))
  native_counts = jax.jit(functools.partial(gated_gspo.native_counts, group_size=r.group_size))
  sample_knobs = SampleKnobs.create(r.temperature)
  # update_step donates its state: copy, so the SFT params stay valid for the other variants.
  state = init_train_state(jax.tree.map(jnp.copy, params), ucfg)
  train_langs = ctx.world.names(split="train")
  history_cell = history_cells(train_langs, ctx.config.domains, r.gate_history_key)
  # Native evidence per history cell (language, or language and domain) pooled into each
  # group's gate (0 decay: the group alone).
  num_cells = max(history_cell.values()) + 1
  history = gated_gspo.NativeHistory.create(num_cells)
  # The same for the calls that ran (correct calls, calls): p_tool of the "tool_gain" thresholds.
  tool_gain = r.gate_threshold != "fixed"
  tool_history = gated_gspo.NativeHistory.create(num_cells)
  # The last `native_rows` rollouts of each group answer natively ("<answer>" forced, loss 0 on
  # it): native evidence for the gate in every group, so a policy that always calls cannot blind
  # it (docs/translate_r1.md §5).
  sampled_B = np.arange(r.prompts_per_step * r.group_size) % r.group_size < (
      r.group_size - r.native_rows)
  prefixes = (["" if s else cipher.ANSWER_OPEN for s in sampled_B] if r.native_rows else "")
  charging = r.cost_free_steps == 0
  # The call decision is the first policy token of the sampled rows (the forced native rows hold
  # "<answer>" in the prompt slots: their first policy token is an answer token). Its advantage
  # is scaled by rl.decision_weight (gated_gspo.decision_weighted_advantages).
  decision_BxL = np.zeros((len(sampled_B), ctx.loop_cfg.total_len), np.float32)
  decision_BxL[sampled_B, ctx.loop_cfg.prompt_len] = 1.0
  decision_BxL = jnp.asarray(decision_BxL)  # on device once, not every step
  tracking = []
  for step in range(r.steps + 1):
    if step % r.track_every == 0 or step == r.steps:
      recs = ev.evaluate(ctx, state.params, track_items, jax.random.key(0),
                         batch_size=ctx.config.eval.batch_size)
      tracking.append({"step": step, **ev.summarize(recs, 1.0)["per_lang_translate"]})
    if step == r.steps:
      break
    if step == r.lr_drop_step:
      # The peak learning rate is traced: lowering it recompiles nothing.
      uknobs = UpdateKnobs(uknobs.loss, jnp.float32(r.learning_rate * r.lr_drop_factor))
    step_rng = np.random.default_rng([ctx.config.seed, 4, step])
    items = ctx.world.sample_items(r.prompts_per_step, step_rng, langs=train_langs,
                                   domains=ctx.config.domains, stratify=True)
    step_key = jax.random.fold_in(key, step)
    out = tool_rollout(state.params, items, [it.text for it in items], ctx.env, ctx.tokenizer,
                       step_key, sample_knobs, model_cfg=ctx.model_cfg, cfg=ctx.loop_cfg,
                       group_size=r.group_size, forced_prefix=prefixes)
    sc = ev.score_episodes(ctx.env, out)
    called_B = ev.attempted_call(sc)  # its complement is the gate's native evidence
    # No price until the sampled call rate reaches `cost_free_until_rate` or `cost_free_steps`
    # have passed (lam is traced: no recompilation): the policy first finds out where the tool
    # pays, and is charged while its call decision is still far from saturated (at p -> 1 the
    # policy gradient of the decision vanishes). A hold, not a ramp: with "std" normalisation
    # even a tiny cost in an all-correct group is a unit-size advantage.
    charging = charging or step >= r.cost_free_steps or (
        float(called_B[sampled_B].mean()) >= r.cost_free_until_rate)
    lam_now = lam if charging else 0.0
    gknobs = gated_gspo.GateKnobs.create(lam=lam_now, tau=r.tau, kappa=r.kappa)
    cell_Q = np.asarray([history_cell[it.lang, it.domain] for it in items], np.int32)
    # The "tool_gain" thresholds measure the tool's accuracy over the calls that ran (a
    # malformed call is the policy's failure, not the tool's).
    prior = {"tool_B": sc["translated"]} if tool_gain else {}
    if r.gate_history_decay > 0:
      prior.update(zip(("prior_hits_Q", "prior_n_Q"),
                       history.prior(cell_Q, r.gate_history_weight)))
      history = history.update(cell_Q, *native_counts(sc["correct"], called_B),
                               r.gate_history_decay)
      if tool_gain:
        prior.update(zip(("prior_tool_hits_Q", "prior_tool_n_Q"),
                         tool_history.prior(cell_Q, r.gate_history_weight)))
        tool_history = tool_history.update(
            cell_Q, *native_counts(sc["correct"], 1 - sc["translated"]), r.gate_history_decay)
    adv_B, gm = advantages(sc["reward"], sc["cost"], sc["correct"], called_B, gknobs, **prior)
    ro = out.rollout
    ref_logp_BxL = jnp.zeros_like(ro.logp_policy_BxL)
    if use_kl:
      # At temperature 1, like the update's log-probs (rl.temperature is validated to be 1).
      ref_logp_BxL = logprobs_lib.reference_logprobs(ref_params, ro.tokens_BxL, ro.valid_BxL,
                                                     cfg=ctx.model_cfg)
      if r.kl_scope == "native":
        # Rows that attempted a call take ref = old log-probs: with one update per rollout the
        # k3 KL and its gradient vanish there (logp == old_logp at that update, up to the
        # sampler-vs-forward difference of ~1e-5), so only the native answers are held near
        # the SFT policy, not the call decision.
        ref_logp_BxL = jnp.where(jnp.asarray(called_B, bool)[:, None], ro.logp_policy_BxL,
                                 ref_logp_BxL)
    batch = Batch(tokens_BxL=ro.tokens_BxL, valid_BxL=ro.valid_BxL, loss_mask_BxL=ro.loss_mask_BxL,
                  old_logp_BxL=ro.logp_policy_BxL, ref_logp_BxL=ref_logp_BxL,
                  advantages_B=adv_B,
                  advantages_BxL=None if r.decision_weight == 1.0 else
                  gated_gspo.decision_weighted_advantages(adv_B, decision_BxL, r.decision_weight))
    state, um = train_on_rollout(state, batch, uknobs, jax.random.fold_in(step_key, 1), cfg=ucfg,
                                 num_epochs=r.num_epochs, num_minibatches=r.num_minibatches,
                                 group_size=r.group_size, drop_zero_advantage=drop_rows)
    row_tier = np.repeat([it.tier for it in items], r.group_size)
    logged = {**metrics_lib.to_host(gm), **metrics_lib.to_host(um),
              "tool/malformed_rate": float(sc["malformed"].mean()), "gate/lam": lam_now}
    for tier in ev.TRAINED_TIERS:
      sel = row_tier == tier
      if sel.any():
        logged[f"tool/translate_rate_{tier}"] = float(sc["translated"][sel].mean())
        native = sel & (called_B == 0)
        if native.any():  # what the gate sees: the sampled native accuracy of the tier
          logged[f"tool/native_acc_{tier}"] = float(sc["correct"][native].mean())
    metrics_lib.check_finite(logged, step)
    writer.write(step, logged)
  return state.params, tracking


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
