"""SWAP's step-prefix probes: the steps of each response and the policy's log-prob of the correct
answer after every step prefix, in ONE forward pass (arXiv 2603.00296; docs/swap.md).

Each response's reasoning is split into steps (`split_steps`, configured by `SwapCfg` of
`rl_jax.algorithms.swap`); a probe segment (the answer trigger, then the answer tokens) is
appended after the response once per step boundary, and `qwen3.forward(attend_BxTxS=...)` lets
each probe see only its own prefix, so all K + 1 prefixes cost one forward instead of K + 1
(`naive_probe_answer_logp`, the per-prefix reference the tests and bench/swap_probe.py compare
against).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.models import qwen3

if TYPE_CHECKING:  # the probe reads the config's fields; swap imports this module
  from rl_jax.algorithms.swap import SwapCfg

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
