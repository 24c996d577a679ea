"""SWAP: step-wise adaptive length penalties (arXiv 2603.00296), as a rollout and an advantage.

SWAP shortens reasoning by charging a correct response's excess length to its *unimportant*
steps. The paper's method section was not available; this is an inferred design from its
abstract, every choice a config field (`SwapCfg`). For response i of a group with steps
s_{i,1..K_i} (0-based k below, as in `rl_jax.kernels.step_importance`):

  1. Steps. The text before the first answer trigger (`trigger`, e.g. "Answer:") is split at
     every match of the step delimiter (`splitter="delimiter"`: a literal string;
     `splitter="regex"`: a pattern); a step is the chunk up to and including its delimiter
     (blank chunks are dropped). Tokens are assigned to the step that holds their last
     character; tokens of the answer (from the trigger on) and the stop token belong to no step.
  2. Importance. P_{i,k} = log pi_old(y* | q, s_{i,<=k}, trigger) for k = 0..K_i (k = 0: no
     reasoning): the sampling policy's own teacher-forced log-prob of the ground-truth answer
     y* (plus EOS when `answer_eos`) behind the trigger. All K+1 prefixes of a batch are scored
     in ONE forward pass (`rl_jax.algorithms.swap_probe`): probe segments [trigger, y*] are
     appended after the response, each attending only to its own prefix
     (`qwen3.forward(attend_BxTxS=...)`).
     I_{i,k} = P_{i,k+1} - P_{i,k}.
  3. Excess length, correct responses only: E_i = max(0, |o_i| - L_ref(q)), L_ref = the
     group's shortest correct length (`reference="shortest"`) or `ref_ratio` x its mean correct
     length (`reference="ratio"`); E_i = 0 for incorrect responses (the outcome already
     penalises them) and in groups with no correct response.
  4. Redistribution (`step_penalties` of the step_importance kernel): mass M_i = alpha E_i/|o_i|
     spread over steps with weights u_k ~ L_k (1 - I~_k) (`weighting="linear"`, I~ =
     softmax(I/tau) or min-max, `normalization`) or u_k ~ L_k exp(-I_k/tau)
     (`weighting="exp"`); per-token penalty pen_t = M_i u_k / L_k on the tokens of step k, so
     sum_t pen_t = M_i. With `units="per_response"` pen is multiplied by |o_i|: with weights
     u_k proportional to L_k every step token then carries exactly M_i, the trajectory-level
     penalty, so alpha means the same thing in the "swap" and "uniform" arms.
  5. Unified outcome-process advantage, per token of response i:
       A_{i,t} = A^out_i - gamma (pen_{i,t} - mean over the group's response tokens of pen),
     A^out the GRPO group advantage of the reward (`outcome_normalize`: "std" | "none").

`penalty` picks the arm: "swap" (steps 1-5), "uniform" (every response token carries M_i: a
trajectory-level length penalty in the same unified form; no steps involved) or "none"
(outcome-only GRPO: A_{i,t} = A^out_i).

No steps found: a response whose reasoning text holds no step (it answers at once, or its text
is blank) cannot have its mass redistributed; it falls back to the uniform penalty on its own
tokens (so excess length is never free), and `swap/no_step` (1 for such rows) is logged. A
response with more than `max_steps` steps has its trailing steps merged into step max_steps
(`swap/merged` counts them). A problem without the answer attribute is an error naming it.

Wiring (docs/swap.md): the importance needs the policy's params, which only a rollout receives,
so the rollout "swap" (= "generate" + the probe pass) writes "swap/segment_ids_BxL",
"swap/answer_logp_BxKp1xA" and "swap/answer_mask_BxKp1xA" into the rollout's extras; the
advantage "swap" reads them with the scorer's "correct". Both read the same `rl.advantage`
dict, so the splitter and trigger are configured once.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np

from rl_jax.algorithms import advantages as adv_lib
from rl_jax.algorithms.advantage_parts import ADVANTAGES
from rl_jax.algorithms.swap_probe import build_layout, probe
from rl_jax.kernels.step_importance import step_penalties
from rl_jax.sampling.rollouts import ROLLOUTS, GenerateRollout, RolloutOutput

SPLITTERS = ("delimiter", "regex")
PENALTIES = ("swap", "uniform", "none")
REFERENCES = ("shortest", "ratio")
UNITS = ("per_response", "per_token")
EXTRA_SEG = "swap/segment_ids_BxL"
EXTRA_LOGP = "swap/answer_logp_BxKp1xA"
EXTRA_AMASK = "swap/answer_mask_BxKp1xA"


@dataclasses.dataclass(frozen=True)
class SwapCfg:
  """Every SWAP knob (module docstring for the formulas); config `rl.advantage` holds them.

  penalty: "swap" | "uniform" | "none" (the three arms of the study).
  alpha: penalty scale, M_i = alpha E_i / |o_i|.  gamma: weight of the penalty in A_{i,t}.
  tau: temperature of the importance softmax / exp weighting (> 0).
  normalization: "softmax" | "minmax" (I~ within a response).
  weighting: "linear" (u ~ L (1 - I~)) | "exp" (u ~ L exp(-I / tau)).
  reference: "shortest" (L_ref = shortest correct length in the group) | "ratio"
    (L_ref = ref_ratio x mean correct length).  ref_ratio: for "ratio".
  units: "per_response" (pen x |o_i|: a uniform weighting gives M_i per token) | "per_token"
    (the spec's pen = M u_k / L_k as is).
  outcome_normalize: "std" (GRPO) | "none" (Dr. GRPO) for A^out.
  splitter: "delimiter" (literal `delimiter`) | "regex" (`pattern`, whose matches end steps).
  delimiter / pattern: the step boundary.  trigger: the answer trigger text; the response's
    reasoning ends at its first occurrence, and every probe is trigger + answer.
  answer_attr: the attribute of a problem that holds the ground-truth answer y* (str() of it).
  answer_eos: append EOS to the probed answer (so "1" and "10" differ).
  max_steps: K, the most steps scored per response (static shape of the probe pass).
  max_answer_tokens: A, the longest probed answer (trigger excluded; longer is an error).
  """
  penalty: str = "swap"
  alpha: float = 1.0
  gamma: float = 1.0
  tau: float = 1.0
  normalization: str = "softmax"
  weighting: str = "linear"
  reference: str = "shortest"
  ref_ratio: float = 1.0
  units: str = "per_response"
  outcome_normalize: str = "std"
  splitter: str = "delimiter"
  delimiter: str = "\n"
  pattern: str = r"\n+"
  trigger: str = "Answer:"
  answer_attr: str = "answer"
  answer_eos: bool = True
  max_steps: int = 8
  max_answer_tokens: int = 8

  def __post_init__(self):
    w = "config rl.advantage"
    choices = (("penalty", PENALTIES), ("normalization", ("softmax", "minmax")),
               ("weighting", ("linear", "exp")), ("reference", REFERENCES), ("units", UNITS),
               ("outcome_normalize", adv_lib.NORMALIZE_MODES), ("splitter", SPLITTERS))
    for name, allowed in choices:
      if getattr(self, name) not in allowed:
        raise ValueError(f"{w}.{name}={getattr(self, name)!r}; expected one of {allowed}")
    if not self.tau > 0:
      raise ValueError(f"{w}.tau must be > 0, got {self.tau}")
    if self.alpha < 0 or self.gamma < 0:
      raise ValueError(f"{w}.alpha and gamma must be >= 0, got {self.alpha}, {self.gamma}")
    if not self.ref_ratio > 0:
      raise ValueError(f"{w}.ref_ratio must be > 0, got {self.ref_ratio}")
    if self.max_steps < 1 or self.max_answer_tokens < 1:
      raise ValueError(f"{w}.max_steps and max_answer_tokens must be >= 1, got "
                       f"{self.max_steps}, {self.max_answer_tokens}")
    if not self.trigger:
      raise ValueError(f"{w}.trigger must be a non-empty string (the answer trigger)")
    if self.splitter == "delimiter" and not self.delimiter:
      raise ValueError(f"{w}.delimiter must be non-empty for splitter='delimiter'")
    if self.splitter == "regex":
      try:
        compiled = re.compile(self.pattern)
      except re.error as e:
        raise ValueError(f"{w}.pattern={self.pattern!r} is not a valid regex: {e}") from None
      if compiled.fullmatch(""):
        raise ValueError(f"{w}.pattern={self.pattern!r} matches the empty string; a step "
                         "boundary must consume at least one character")

  @property
  def boundary(self) -> re.Pattern:
    return re.compile(re.escape(self.delimiter) if self.splitter == "delimiter" else self.pattern)


def swap_cfg(spec: dict) -> SwapCfg:
  """The SwapCfg of an `rl.advantage` dict ({"name": "swap", **knobs})."""
  kwargs = {k: v for k, v in dict(spec).items() if k != "name"}
  fields = {f.name for f in dataclasses.fields(SwapCfg)}
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise ValueError(f"config rl.advantage: unknown SWAP field(s) {unknown}; valid: "
                     f"{sorted(fields)}")
  return SwapCfg(**kwargs)


# ----------------------------------------------------------------------------- step splitting


def excess_lengths(resp_len_B, correct_B, group_size: int, reference: str = "shortest",
                   ref_ratio: float = 1.0) -> np.ndarray:
  """E_i = max(0, |o_i| - L_ref(group)) for correct rows, 0 otherwise (step 3)."""
  resp = np.asarray(resp_len_B, np.float64).reshape(-1, group_size)
  ok = np.asarray(correct_B, bool).reshape(-1, group_size)
  excess = np.zeros_like(resp)
  for g in range(resp.shape[0]):
    if not ok[g].any():
      continue
    lens = resp[g, ok[g]]
    ref = lens.min() if reference == "shortest" else ref_ratio * lens.mean()
    excess[g] = np.where(ok[g], np.maximum(0.0, resp[g] - ref), 0.0)
  return excess.reshape(-1).astype(np.float32)


def token_penalties(cfg: SwapCfg, answer_logp_BxKp1xA, answer_mask_BxA, seg_BxL, loss_mask_BxL,
                    excess_B, resp_len_B):
  """(pen_BxL in cfg.units, step_penalties outputs or None, no_step_B) for cfg.penalty."""
  mask = np.asarray(loss_mask_BxL) > 0
  resp = np.asarray(resp_len_B, np.float32)
  excess = np.asarray(excess_B, np.float32)
  mass_B = np.where(resp > 0, cfg.alpha * excess / np.maximum(resp, 1.0), 0.0)
  uniform_BxL = np.where(mask, mass_B[:, None] / np.maximum(resp[:, None], 1.0), 0.0)
  seg = np.asarray(seg_BxL)
  no_step_B = ~(seg >= 0).any(axis=1)
  out = None
  if cfg.penalty == "none":
    pen = np.zeros(mask.shape, np.float32)
  elif cfg.penalty == "uniform":
    pen = uniform_BxL
  else:
    out = step_penalties(jnp.asarray(answer_logp_BxKp1xA), jnp.asarray(answer_mask_BxA, bool),
                         jnp.asarray(seg), jnp.asarray(excess), jnp.asarray(resp),
                         alpha=cfg.alpha, tau=cfg.tau, normalization=cfg.normalization,
                         weighting=cfg.weighting)
    pen = np.where(no_step_B[:, None], uniform_BxL, np.asarray(out.token_penalty_BxT))
  if cfg.units == "per_response":
    pen = pen * resp[:, None]
  return np.where(mask, pen, 0.0).astype(np.float32), out, no_step_B


def unified_advantages(reward_B, pen_BxL, loss_mask_BxL, group_size: int, gamma: float,
                       normalize: str = "std") -> tuple[np.ndarray, np.ndarray]:
  """(A^out_B, A_BxL): A_{i,t} = A^out_i - gamma (pen_{i,t} - mean of pen over the group's
  response tokens) on response tokens, 0 elsewhere (step 5)."""
  adv_out = np.asarray(adv_lib.group_advantages(np.asarray(reward_B, np.float32),
                                                group_size=group_size, normalize=normalize))
  mask = np.asarray(loss_mask_BxL) > 0
  b, seq_len = mask.shape
  pen_g = np.asarray(pen_BxL, np.float64).reshape(-1, group_size * seq_len)
  m_g = mask.reshape(-1, group_size * seq_len)
  mean_g = (pen_g * m_g).sum(1) / np.maximum(m_g.sum(1), 1)
  centred = (pen_g - mean_g[:, None]).reshape(b, seq_len)
  adv = np.where(mask, adv_out[:, None] - gamma * centred, 0.0)
  return adv_out.astype(np.float32), adv.astype(np.float32)


class SwapAdvantage:
  """Advantage part "swap" (module docstring). Reads the scorer's "correct" and the rollout
  extras of the "swap" rollout (for penalty="swap"); returns [B, T] advantages."""

  def __init__(self, section, cfg: SwapCfg):
    self.cfg, self.group_size = cfg, section.group_size

  def init_state(self) -> dict:
    return {}

  def __call__(self, scores, problems, out, state, step):
    cfg, ro = self.cfg, out.rollout
    if cfg.penalty == "swap":
      missing = [k for k in (EXTRA_SEG, EXTRA_LOGP, EXTRA_AMASK) if k not in out.extras]
      if missing:
        raise ValueError(f"advantage 'swap' with penalty='swap' needs the rollout extras "
                         f"{missing}: set config rl.rollout.name='swap'")
    correct_B = np.asarray(scores.extras["correct"]) > 0
    resp = np.asarray(ro.response_len_B, np.float32)
    excess = excess_lengths(resp, correct_B, self.group_size, cfg.reference, cfg.ref_ratio)
    seg = out.extras.get(EXTRA_SEG, np.full(np.shape(ro.tokens_BxL), -1, np.int32))
    pen, kernel_out, no_step = token_penalties(
        cfg, out.extras.get(EXTRA_LOGP), out.extras.get(EXTRA_AMASK), seg, ro.loss_mask_BxL,
        excess, resp)
    adv_out, adv_BxL = unified_advantages(scores.reward_B, pen, ro.loss_mask_BxL,
                                          self.group_size, cfg.gamma, cfg.outcome_normalize)
    mask = np.asarray(ro.loss_mask_BxL) > 0
    adv_B = (adv_BxL * mask).sum(1) / np.maximum(mask.sum(1), 1)
    metrics = {"swap/excess_mean": float(excess.mean()),
               "swap/penalty_mean": float(pen.sum() / max(mask.sum(), 1)),
               "swap/no_step_frac": float(no_step.mean()),
               "swap/outcome_adv_abs": float(np.abs(adv_out).mean())}
    if kernel_out is not None:
      present = np.asarray(kernel_out.step_len_BxK) > 0
      imp = np.asarray(kernel_out.importance_BxK)
      metrics["swap/importance_mean"] = float(imp[present].mean()) if present.any() else 0.0
    return adv_B.astype(np.float32), adv_BxL, metrics, state


@ADVANTAGES.register("swap")
def swap_advantage(*, section, **knobs) -> SwapAdvantage:
  """SWAP's unified outcome-process advantage; knobs: the fields of `SwapCfg`."""
  return SwapAdvantage(section, swap_cfg(knobs))


# ----------------------------------------------------------------------------- the rollout


class SwapRollout(GenerateRollout):
  """Rollout "swap": the "generate" rollout plus the one-pass probe of every step prefix under
  the sampling params, written into the extras the "swap" advantage reads. Its SWAP settings
  come from `rl.advantage` (which must be {"name": "swap", ...})."""

  def __init__(self, ctx, section):
    super().__init__(ctx, section)
    spec = dict(section.advantage)
    if spec.get("name") != "swap":
      raise ValueError(f"config rl.rollout.name='swap' needs rl.advantage.name='swap' (it holds "
                       f"the splitter and trigger), got {spec.get('name')!r}")
    self.swap = swap_cfg(spec)
    self.group_size = section.group_size

  def __call__(self, params, problems, key, knobs) -> RolloutOutput:
    out = super().__call__(params, problems, key, knobs)
    ro = out.rollout
    rows = [p for p in problems for _ in range(self.group_size)]
    layout = build_layout(self.ctx.tokenizer, rows, ro.tokens_BxL, ro.loss_mask_BxL,
                          ro.prompt_len, self.cfg.stop_ids, self.swap)
    logp = probe(params, layout, ro.tokens_BxL, ro.valid_BxL, self.ctx.model_cfg)
    amask = np.broadcast_to(layout.answer_mask_BxA[:, None, :], logp.shape).astype(np.float32)
    extras = dict(out.extras)
    extras.update({EXTRA_SEG: layout.seg_BxL, EXTRA_LOGP: logp, EXTRA_AMASK: amask,
                   "swap/num_steps": layout.num_steps_B.astype(np.float32),
                   "swap/no_step": (layout.num_steps_B == 0).astype(np.float32),
                   "swap/merged": layout.merged_B.astype(np.float32)})
    return dataclasses.replace(out, extras=extras)


@ROLLOUTS.register("swap")
def swap_rollout(*, ctx, section) -> SwapRollout:
  return SwapRollout(ctx, section)


__all__ = ["SwapCfg", "excess_lengths", "token_penalties", "unified_advantages", "SwapAdvantage",
           "SwapRollout"]
