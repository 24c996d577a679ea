"""Advantage parts of the RL step: scores -> per-sequence [B] or per-token [B, L] advantages.

    part = ADVANTAGES.build(config.rl.advantage, where, ctx=ctx, section=rl_section)
    state = part.init_state()                                   # JSON dict (checkpointed)
    adv_B, adv_BxL, metrics, state = part(scores, problems, out, state, step)

`problems` holds one entry per prompt (row r of the rollout belongs to problems[r // G]).

Registered (and "swap", SWAP step-wise length penalties: `rl_jax.algorithms.swap`):
  "group":   GRPO / Dr. GRPO group baseline (`advantages.group_advantages`), normalisation from
             rl.adv_normalize (resolved from the loss preset).
  "rloo":    leave-one-out baseline (`advantages.rloo_advantages`).
  "process": process supervision over reasoning steps (`advantages.process_advantages`); reads
             the scorer extras "steps/reward_BxK", "steps/end_BxK", "steps/mask_BxK".
  "gated":   the confidence gate of Translate-R1 (`gated_gspo`): a cost-aware gate for any tool,
             reading cost, correctness and call attempts from the scorer extras (module
             docstring of `GatedAdvantage`).
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.algorithms import advantages as adv_lib
from rl_jax.algorithms import gated_gspo
from rl_jax.registry import Registry

ADVANTAGES: Registry = Registry("advantage")


class GroupAdvantage:
  def __init__(self, group_size: int, normalize: str):
    if normalize not in adv_lib.NORMALIZE_MODES:
      raise ValueError(f"config rl.adv_normalize must be one of {adv_lib.NORMALIZE_MODES}, got "
                       f"{normalize!r}")
    self.group_size, self.normalize = group_size, normalize

  def init_state(self) -> dict:
    return {}

  def __call__(self, scores, problems, out, state, step):
    adv_B = adv_lib.group_advantages(jnp.asarray(scores.reward_B), group_size=self.group_size,
                                     normalize=self.normalize)
    return np.asarray(adv_B), None, {}, state


class RLOOAdvantage(GroupAdvantage):
  def __call__(self, scores, problems, out, state, step):
    adv_B = adv_lib.rloo_advantages(jnp.asarray(scores.reward_B), group_size=self.group_size)
    return np.asarray(adv_B), None, {}, state


class ProcessAdvantage(GroupAdvantage):
  """Token advantages from per-step rewards; the scorer provides the steps (step k of row i ends
  at token `steps/end_BxK[i, k]` of the response, counted from the prompt's end)."""

  def __call__(self, scores, problems, out, state, step):
    need = ("steps/reward_BxK", "steps/end_BxK", "steps/mask_BxK")
    missing = [k for k in need if k not in scores.extras]
    if missing:
      raise ValueError(f"advantage 'process' needs scorer extras {missing} (a scorer that splits "
                       "responses into steps)")
    prompt_len = out.rollout.prompt_len
    seq_len = out.rollout.tokens_BxL.shape[1]
    ends = np.asarray(scores.extras["steps/end_BxK"], np.int32) + prompt_len
    adv_BxL = adv_lib.process_advantages(
        jnp.asarray(scores.extras["steps/reward_BxK"]), jnp.asarray(ends),
        jnp.asarray(scores.extras["steps/mask_BxK"], bool), group_size=self.group_size,
        seq_len=seq_len)
    adv_BxL = np.asarray(adv_BxL)
    # The update's mask picks the policy tokens; [B] carries the mean for metrics and dropping.
    mask = np.asarray(out.rollout.loss_mask_BxL) > 0
    adv_B = (adv_BxL * mask).sum(1) / np.maximum(mask.sum(1), 1)
    return adv_B.astype(np.float32), adv_BxL, {}, state


class GatedAdvantage:
  """Confidence-gated cost-aware advantages (Translate-R1; `rl_jax.algorithms.gated_gspo`).

  The gate charges a tool's cost lam * c_i only in groups whose native accuracy (rows that did
  not attempt a call, pooled with a decayed history per cell) reaches tau:
    R_i = r_i - lam * c_i * g_q,   A = group-normalised R            (gated_gspo docstring).
  Reads scorer extras: `cost_key` (c_i), "correct", `attempted_key` (a call was tried: its
  complement is the native evidence; a malformed call is a failed attempt, not a wrong native
  answer), `used_key` (a call ran: the tool_gain thresholds). Cells of the history are the values
  of `cell_attrs` of each problem (e.g. ("lang",)), indexed in order of first appearance.
  Price schedule [I]: lam is 0 until `cost_free_steps` steps have passed or the sampled (not
  forced) call-attempt rate of a step first reaches `cost_free_until_rate` (the tool is explored
  before it is charged). decision_weight [I]: the first policy token of sampled rows (the call
  decision) gets its advantage times this weight through [B, L] advantages (with GSPO-token;
  `gated_gspo.decision_weighted_advantages`). State (checkpointed): the histories, the cell
  index and whether the price is on."""

  def __init__(self, section, *, gate, lam, tau, kappa, mode, threshold, m_min, cost_in,
               history_decay, history_weight, cell_attrs, max_cells, cost_free_steps,
               cost_free_until_rate, decision_weight, cost_key, attempted_key, used_key):
    if gate == "verbal_conf":
      raise ValueError("config rl.advantage.gate='verbal_conf' needs a per-row verbal "
                       "confidence that no scorer provides yet; use native_success, "
                       "logprob_conf or none")
    if not 0.0 <= history_decay < 1.0:
      raise ValueError(f"config rl.advantage.history_decay must be in [0, 1), got "
                       f"{history_decay}")
    if not history_weight >= 0:
      raise ValueError(f"config rl.advantage.history_weight must be >= 0, got {history_weight}")
    if not 0.0 < cost_free_until_rate <= 1.0 or cost_free_steps < 0:
      raise ValueError("config rl.advantage: cost_free_until_rate must be in (0, 1] and "
                       f"cost_free_steps >= 0, got {cost_free_until_rate}, {cost_free_steps}")
    if decision_weight <= 0:
      raise ValueError(f"config rl.advantage.decision_weight must be > 0, got {decision_weight}")
    if decision_weight != 1.0 and section.algorithm not in ("gspo_token", "grpo", "dapo",
                                                            "bnpo", "dr_grpo"):
      raise ValueError("config rl.advantage.decision_weight != 1 gives per-token advantages: "
                       f"use a token-level loss such as gspo_token, not {section.algorithm!r}")
    self.cfg = gated_gspo.GateCfg(gate=gate, mode=mode, threshold=threshold, m_min=m_min,
                                  group_size=section.group_size,
                                  normalize=section.adv_normalize or "std", cost_in=cost_in)
    gated_gspo.GateKnobs.create(lam=lam, tau=tau, kappa=kappa)  # checks the values now
    self.knobs = dict(lam=lam, tau=tau, kappa=kappa)
    self.history_decay, self.history_weight = history_decay, history_weight
    self.cell_attrs, self.max_cells = tuple(cell_attrs), max_cells
    self.cost_free_steps, self.cost_free_until_rate = cost_free_steps, cost_free_until_rate
    self.decision_weight = decision_weight
    self.keys = dict(cost=cost_key, attempted=attempted_key, used=used_key)
    self._advantages = jax.jit(functools.partial(gated_gspo.gated_gspo_advantages, cfg=self.cfg))
    self._counts = jax.jit(functools.partial(gated_gspo.native_counts,
                                             group_size=section.group_size))

  def init_state(self) -> dict:
    zeros = [0.0] * self.max_cells
    return {"cells": {}, "native_hits": zeros, "native_n": zeros, "tool_hits": zeros,
            "tool_n": zeros, "charging": self.cost_free_steps == 0}

  def _cells(self, state, problems) -> np.ndarray:
    cells = dict(state["cells"])
    ids = []
    for p in problems:
      missing = [a for a in self.cell_attrs if not hasattr(p, a)]
      if missing:
        raise ValueError(f"config rl.advantage.cell_attrs: the task's problems "
                         f"({type(p).__name__}) have no attribute(s) {missing}")
      key = "|".join(str(getattr(p, a)) for a in self.cell_attrs)
      if key not in cells:
        if len(cells) >= self.max_cells:
          raise ValueError(f"gated advantage: more than max_cells={self.max_cells} history "
                           "cells; raise rl.advantage.max_cells")
        cells[key] = len(cells)
      ids.append(cells[key])
    state["cells"] = cells
    return np.asarray(ids, np.int32)

  def __call__(self, scores, problems, out, state, step):
    state = dict(state)
    ex = scores.extras
    for name, key in self.keys.items():
      if key not in ex:
        raise ValueError(f"gated advantage: scorer extra {key!r} ({name}) is missing; the "
                         f"scorer gives {sorted(ex)}")
    attempted_B, correct_B = ex[self.keys["attempted"]], ex["correct"]
    sampled_B = np.ones_like(attempted_B, bool) if out.forced_B is None else out.forced_B == 0
    state["charging"] = bool(state["charging"] or step >= self.cost_free_steps or (
        float(attempted_B[sampled_B].mean()) >= self.cost_free_until_rate))
    lam = self.knobs["lam"] if state["charging"] else 0.0
    knobs = gated_gspo.GateKnobs.create(lam=lam, tau=self.knobs["tau"],
                                        kappa=self.knobs["kappa"])
    cell_Q = self._cells(state, problems)
    native = gated_gspo.NativeHistory(jnp.asarray(state["native_hits"], jnp.float32),
                                      jnp.asarray(state["native_n"], jnp.float32))
    tool = gated_gspo.NativeHistory(jnp.asarray(state["tool_hits"], jnp.float32),
                                    jnp.asarray(state["tool_n"], jnp.float32))
    kwargs: dict[str, Any] = {}
    if self.cfg.uses_tool_stats:
      kwargs["tool_B"] = ex[self.keys["used"]]
    if self.cfg.gate == "logprob_conf":
      kwargs["first_token_logp_B"] = np.asarray(out.rollout.logp_policy_BxL)[
          :, out.rollout.prompt_len]
    if self.history_decay > 0:
      kwargs.update(zip(("prior_hits_Q", "prior_n_Q"),
                        native.prior(cell_Q, self.history_weight)))
      native = native.update(cell_Q, *self._counts(correct_B, attempted_B), self.history_decay)
      if self.cfg.uses_tool_stats:
        kwargs.update(zip(("prior_tool_hits_Q", "prior_tool_n_Q"),
                          tool.prior(cell_Q, self.history_weight)))
        tool = tool.update(cell_Q, *self._counts(correct_B, 1 - ex[self.keys["used"]]),
                           self.history_decay)
    adv_B, metrics = self._advantages(scores.reward_B, ex[self.keys["cost"]], correct_B,
                                      attempted_B, knobs, **kwargs)
    state.update(native_hits=[float(x) for x in np.asarray(native.hits_K)],
                 native_n=[float(x) for x in np.asarray(native.n_K)],
                 tool_hits=[float(x) for x in np.asarray(tool.hits_K)],
                 tool_n=[float(x) for x in np.asarray(tool.n_K)])
    adv_BxL = None
    if self.decision_weight != 1.0:
      decision_BxL = np.zeros(np.shape(out.rollout.tokens_BxL), np.float32)
      decision_BxL[sampled_B, out.rollout.prompt_len] = 1.0
      adv_BxL = np.asarray(gated_gspo.decision_weighted_advantages(adv_B, decision_BxL,
                                                                   self.decision_weight))
    metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
    metrics["gate/lam"] = float(lam)
    return np.asarray(adv_B), adv_BxL, metrics, state


def _normalize(section, normalize: str | None) -> str:
  return normalize or section.adv_normalize or "std"


@ADVANTAGES.register("group")
def group_advantage(*, section, normalize: str | None = None) -> GroupAdvantage:
  return GroupAdvantage(section.group_size, _normalize(section, normalize))


@ADVANTAGES.register("rloo")
def rloo_advantage(*, section) -> RLOOAdvantage:
  return RLOOAdvantage(section.group_size, "none")


@ADVANTAGES.register("process")
def process_advantage(*, section) -> ProcessAdvantage:
  return ProcessAdvantage(section.group_size, "std")


@ADVANTAGES.register("gated")
def gated_advantage(*, section, gate: str = "native_success", lam: float = 0.1,
                    tau: float = 0.5, kappa: float = 10.0, mode: str = "hard",
                    threshold: str = "fixed", m_min: int = 1, cost_in: str = "reward",
                    history_decay: float = 0.0, history_weight: float = float("inf"),
                    cell_attrs: tuple[str, ...] = (), max_cells: int = 64,
                    cost_free_steps: int = 0, cost_free_until_rate: float = 1.0,
                    decision_weight: float = 1.0, cost_key: str = "tool/cost",
                    attempted_key: str = "tool/attempted",
                    used_key: str = "tool/used") -> GatedAdvantage:
  return GatedAdvantage(section, gate=gate, lam=lam, tau=tau, kappa=kappa, mode=mode,
                        threshold=threshold, m_min=m_min, cost_in=cost_in,
                        history_decay=history_decay, history_weight=history_weight,
                        cell_attrs=cell_attrs, max_cells=max_cells,
                        cost_free_steps=cost_free_steps,
                        cost_free_until_rate=cost_free_until_rate,
                        decision_weight=decision_weight, cost_key=cost_key,
                        attempted_key=attempted_key, used_key=used_key)


# Registers "swap" (SWAP step-wise length penalties) here and its "swap" rollout; imported last:
# the module imports ADVANTAGES from this one.
from rl_jax.algorithms import swap as _swap  # noqa: E402,F401  pylint: disable=g-import-not-at-top
