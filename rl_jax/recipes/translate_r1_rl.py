"""Stage 3 of the Translate-R1 recipe (`translate_r1`): confidence-gated (or ungated) GSPO over
multi-turn translate-tool rollouts, one policy per (gate, lambda).

Per step: sample prompts stratified over tier x domain, roll out G episodes each with
`sampling.tool_loop` (the last `native_rows` of each group answer natively, as gate evidence),
score them, pool each group's native (and, for the "tool_gain" thresholds, tool) evidence with a
decayed per-cell history, form the gated advantages of `gated_gspo.gated_gspo_advantages` and
take one GSPO(-token) update. The price is held at 0 until the sampled call rate first reaches
`cost_free_until_rate` (or `cost_free_steps` pass). Config fields: configs/gated_gspo_tiny_cipher.py;
what they do to the results: docs/translate_r1.md §5.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax import logprobs as logprobs_lib
from rl_jax import metrics as metrics_lib
from rl_jax.algorithms import gated_gspo, losses
from rl_jax.envs import cipher
from rl_jax.recipes import translate_r1_eval as ev
from rl_jax.sampling.tool_loop import tool_rollout
from rl_jax.types import Batch, SampleKnobs
from rl_jax.update import UpdateCfg, UpdateKnobs, init_train_state, train_on_rollout

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


def rl_train(ctx, params, *, gate: str, lam: float, key: jax.Array, writer,
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
                   optim=ctx.optim_cfg(r, r.steps))
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
  tool_gain = gate_cfg.uses_tool_stats
  tool_history = gated_gspo.NativeHistory.create(num_cells) if tool_gain else None
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
