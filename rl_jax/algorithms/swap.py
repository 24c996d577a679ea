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
     in ONE forward pass (`probe_answer_logp`): probe segments [trigger, y*] are appended after
     the response, each attending only to its own prefix (`qwen3.forward(attend_BxTxS=...)`).
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
import functools
import re
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.algorithms import advantages as adv_lib
from rl_jax.algorithms.advantage_parts import ADVANTAGES
from rl_jax.kernels.step_importance import step_penalties
from rl_jax.models import qwen3
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


def split_steps(text: str, cfg: SwapCfg) -> tuple[list[tuple[int, int]], int]:
  """([(start, end) char span per step], reasoning_end): the steps of `text` (step 1 of the
  module docstring). The reasoning is text[:reasoning_end], up to the first trigger (the whole
  text when there is none); a step ends after a boundary match; blank chunks are no step."""
  end = text.find(cfg.trigger)
  end = len(text) if end < 0 else end
  region = text[:end]
  spans, start = [], 0
  for match in cfg.boundary.finditer(region):
    if match.end() > start:
      spans.append((start, match.end()))
      start = match.end()
  if start < len(region):
    spans.append((start, len(region)))
  return [(a, b) for a, b in spans if cfg.boundary.sub("", region[a:b]).strip()], end


def token_char_ends(tokenizer, ids: Sequence[int]) -> list[int]:
  """Character offset just past each token in decode(ids), by decoding every prefix (exact for
  any tokenizer whose prefix decodes are prefixes of the full decode; O(N^2) chars, N small)."""
  return [len(tokenizer.decode(list(ids[:j + 1]))) for j in range(len(ids))]


def token_steps(spans: list[tuple[int, int]], char_ends: list[int], max_steps: int
                ) -> tuple[np.ndarray, int]:
  """(step index per token, -1 outside every step; number of steps merged past max_steps).

  A token belongs to the step holding its last character (tokens that decode to nothing take
  the step of the character before them); steps past max_steps join step max_steps - 1."""
  seg = np.full(len(char_ends), -1, np.int32)
  for j, e in enumerate(char_ends):
    c = e - 1 if e > 0 else 0
    for k, (a, b) in enumerate(spans):
      if a <= c < b:
        seg[j] = min(k, max_steps - 1)
        break
  # Steps that got no token (a span inside one multi-character token) are renumbered away.
  present = [k for k in range(max_steps) if np.any(seg == k)]
  remap = {k: i for i, k in enumerate(present)}
  seg = np.asarray([remap.get(int(s), -1) for s in seg], np.int32)
  return seg, max(0, len(spans) - max_steps)


# ----------------------------------------------------------------------------- the probe pass


@dataclasses.dataclass(frozen=True)
class ProbeLayout:
  """Host arrays of a probe pass over B responses in the slot layout [B, L] (L = P + N).

  cut_BxKp1: prefix k of row b is slots [0, cut) (k = 0: the prompt; k: through step k).
  probe_BxQ: the probe ids, trigger + answer (+ EOS), right-padded to Q = len(trigger) + A.
  probe_valid_BxQ: real probe ids.  answer_BxA / answer_mask_BxA: the answer ids to score.
  seg_BxL: step index per slot (-1 outside steps).  num_steps_B, merged_B, no_step_B.
  """
  cut_BxKp1: np.ndarray
  probe_BxQ: np.ndarray
  probe_valid_BxQ: np.ndarray
  answer_BxA: np.ndarray
  answer_mask_BxA: np.ndarray
  trigger_len: int
  seg_BxL: np.ndarray
  num_steps_B: np.ndarray
  merged_B: np.ndarray


def answer_of(problem, cfg: SwapCfg) -> str:
  if not hasattr(problem, cfg.answer_attr):
    raise ValueError(f"config rl.advantage.answer_attr={cfg.answer_attr!r}: the task's "
                     f"problems ({type(problem).__name__}) have no such attribute (SWAP probes "
                     "the ground-truth answer)")
  return str(getattr(problem, cfg.answer_attr))


def build_layout(tokenizer, problems_per_row: Sequence[Any], tokens_BxL, loss_mask_BxL,
                 prompt_len: int, stop_ids: Sequence[int], cfg: SwapCfg) -> ProbeLayout:
  """Splits every response into steps and lays out its K + 1 prefix probes (host numpy)."""
  tokens_BxL, loss_mask_BxL = np.asarray(tokens_BxL), np.asarray(loss_mask_BxL)
  b, seq_len = tokens_BxL.shape
  k_max, a_max = cfg.max_steps, cfg.max_answer_tokens
  trigger = list(tokenizer.encode(cfg.trigger))
  q = len(trigger) + a_max
  stops = set(int(s) for s in stop_ids) | {tokenizer.eos_id}
  cut = np.full((b, k_max + 1), prompt_len, np.int32)
  probe = np.full((b, q), tokenizer.pad_id, np.int32)
  probe_valid = np.zeros((b, q), bool)
  answer = np.zeros((b, a_max), np.int32)
  answer_mask = np.zeros((b, a_max), bool)
  seg = np.full((b, seq_len), -1, np.int32)
  num_steps, merged = np.zeros(b, np.int32), np.zeros(b, np.int32)
  for i in range(b):
    ans = list(tokenizer.encode(answer_of(problems_per_row[i], cfg)))
    ans += [tokenizer.eos_id] if cfg.answer_eos else []
    if not 0 < len(ans) <= a_max:
      raise ValueError(f"SWAP: the answer of row {i} is {len(ans)} tokens; config "
                       f"rl.advantage.max_answer_tokens={a_max} (EOS included when answer_eos)")
    ids = [int(t) for t, m in zip(tokens_BxL[i, prompt_len:], loss_mask_BxL[i, prompt_len:])
           if m > 0]
    while ids and ids[-1] in stops:
      ids = ids[:-1]
    text = tokenizer.decode(ids)
    spans, _ = split_steps(text, cfg)
    steps, merged[i] = token_steps(spans, token_char_ends(tokenizer, ids), k_max)
    seg[i, prompt_len:prompt_len + len(ids)] = steps
    num_steps[i] = int(steps.max()) + 1 if len(steps) and steps.max() >= 0 else 0
    for k in range(num_steps[i]):
      cut[i, k + 1] = prompt_len + int(np.flatnonzero(steps == k)[-1]) + 1
    cut[i, num_steps[i] + 1:] = cut[i, num_steps[i]]  # absent steps: the last prefix again
    probe[i, :len(trigger) + len(ans)] = trigger + ans
    probe_valid[i, :len(trigger) + len(ans)] = True
    answer[i, :len(ans)] = ans
    answer_mask[i, :len(ans)] = True
  return ProbeLayout(cut, probe, probe_valid, answer, answer_mask, len(trigger), seg, num_steps,
                     merged)


def _answer_logp(params, hidden_BxNxD, targets_BxN, model_cfg):
  logits = qwen3.logits(params, hidden_BxNxD, cfg=model_cfg)
  logp = jax.nn.log_softmax(logits, axis=-1)
  return jnp.take_along_axis(logp, targets_BxN[..., None], axis=-1)[..., 0]


@functools.partial(jax.jit, static_argnames=("model_cfg", "trigger_len"))
def probe_answer_logp(params, tokens_BxL, valid_BxL, cut_BxKp1, probe_BxQ, probe_valid_BxQ,
                      answer_BxA, *, model_cfg, trigger_len: int):
  """[B, K+1, A] log-probs of the answer ids after every prefix, in ONE forward pass.

  The sequence is the response layout followed by K + 1 copies of the probe:
    [ slots 0..L-1 | probe for prefix 0 | probe for prefix 1 | ... | probe for prefix K ].
  A main slot attends causally to the main slots (the probes come after it); a token of probe
  k attends to the valid main slots before cut_k and causally to its own probe, nothing else.
  Its position continues the prefix: (#valid slots before cut_k) + its index in the probe, as
  in the sequence prefix + probe on its own, so every probe sees what a separate forward of its
  prefix would (`naive_probe_answer_logp`)."""
  b, seq_len = tokens_BxL.shape
  k1, q = cut_BxKp1.shape[1], probe_BxQ.shape[1]
  a = answer_BxA.shape[1]
  total = seq_len + k1 * q
  slot_S = jnp.arange(total)
  owner_S = jnp.where(slot_S < seq_len, -1, (slot_S - seq_len) // q)      # probe index or -1
  main_pos_BxL = qwen3.positions_from_mask(valid_BxL)
  prefix_len_BxKp1 = jnp.sum(valid_BxL[:, None, :] & (jnp.arange(seq_len)[None, None, :]
                                                      < cut_BxKp1[:, :, None]), axis=-1)
  probe_pos = prefix_len_BxKp1[:, :, None] + jnp.arange(q)[None, None, :]
  tokens = jnp.concatenate([tokens_BxL, jnp.tile(probe_BxQ, (1, k1))], axis=1)
  valid = jnp.concatenate([valid_BxL.astype(bool), jnp.tile(probe_valid_BxQ, (1, k1))], axis=1)
  positions = jnp.concatenate([main_pos_BxL, probe_pos.reshape(b, k1 * q)], axis=1)
  # Query t (owner o_t) may see slot s when: s is a main slot and (t is main, or s < cut_{o_t});
  # or s is in t's own probe. The causal and padding parts come from qwen3's own mask.
  owner_T = owner_S
  cut_BxT = jnp.take_along_axis(cut_BxKp1, jnp.maximum(owner_T, 0)[None].repeat(b, 0), axis=1)
  main_s = (owner_S < 0)[None, None, :]
  sees_main = main_s & ((owner_T < 0)[None, :, None] | (slot_S[None, None, :]
                                                         < cut_BxT[:, :, None]))
  same_probe = ((owner_T[:, None] == owner_S[None, :]) & (owner_T[:, None] >= 0))[None]
  attend = sees_main | same_probe
  hidden, _ = qwen3.forward(params, tokens, positions, valid, cfg=model_cfg, attend_BxTxS=attend)
  # Answer token j of probe k is predicted at slot L + k Q + trigger_len - 1 + j.
  at_KxA = (seq_len + jnp.arange(k1)[:, None] * q + trigger_len - 1 + jnp.arange(a)[None, :])
  h = hidden[:, at_KxA.reshape(-1)]
  targets = jnp.tile(answer_BxA, (1, k1))
  return _answer_logp(params, h, targets, model_cfg).reshape(b, k1, a)


@functools.partial(jax.jit, static_argnames=("model_cfg", "trigger_len"))
def _one_prefix(params, tokens_BxL, valid_BxL, cut_B, probe_BxQ, probe_valid_BxQ, answer_BxA, *,
                model_cfg, trigger_len: int):
  seq_len = tokens_BxL.shape[1]
  keep = valid_BxL.astype(bool) & (jnp.arange(seq_len)[None] < cut_B[:, None])
  tokens = jnp.concatenate([tokens_BxL, probe_BxQ], axis=1)
  valid = jnp.concatenate([keep, probe_valid_BxQ], axis=1)
  hidden, _ = qwen3.forward(params, tokens, qwen3.positions_from_mask(valid), valid,
                            cfg=model_cfg)
  at = seq_len + trigger_len - 1 + jnp.arange(answer_BxA.shape[1])
  return _answer_logp(params, hidden[:, at], answer_BxA, model_cfg)


def naive_probe_answer_logp(params, tokens_BxL, valid_BxL, cut_BxKp1, probe_BxQ,
                            probe_valid_BxQ, answer_BxA, *, model_cfg, trigger_len: int):
  """The reference of `probe_answer_logp`: one plain causal forward per prefix k = 0..K, the
  response after the prefix marked padding and the probe appended (K + 1 forward passes)."""
  cols = [_one_prefix(params, tokens_BxL, valid_BxL, cut_BxKp1[:, k], probe_BxQ,
                      probe_valid_BxQ, answer_BxA, model_cfg=model_cfg, trigger_len=trigger_len)
          for k in range(cut_BxKp1.shape[1])]
  return jnp.stack(cols, axis=1)


def probe(params, layout: ProbeLayout, tokens_BxL, valid_BxL, model_cfg) -> np.ndarray:
  """[B, K+1, A] answer log-probs of a layout (one pass; numpy)."""
  out = probe_answer_logp(params, jnp.asarray(tokens_BxL), jnp.asarray(valid_BxL, bool),
                          jnp.asarray(layout.cut_BxKp1), jnp.asarray(layout.probe_BxQ),
                          jnp.asarray(layout.probe_valid_BxQ), jnp.asarray(layout.answer_BxA),
                          model_cfg=model_cfg, trigger_len=layout.trigger_len)
  return np.asarray(out, np.float32)


# ----------------------------------------------------------------------------- advantages


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


__all__ = ["SwapCfg", "split_steps", "build_layout", "probe_answer_logp",
           "naive_probe_answer_logp", "excess_lengths", "token_penalties", "unified_advantages",
           "SwapAdvantage", "SwapRollout"]
