"""SWAP step importance and step-wise penalty redistribution (SWAP, steps 2 and 4: `formulas.py`).

SWAP (arXiv 2603.00296) measures how much each reasoning step raises the policy's own
log-probability of the correct answer, and spreads a response's excess-length penalty over its
steps so that long, unimportant steps are penalised most. The paper's exact formulas were not
available; these are the spec's inferred [I] choices, each a flag. Indices are 0-based: step k
in [0, K) is the spec's step k+1; prefix column k in [0, K] holds the response cut after k
steps (column 0: no reasoning, just the answer trigger). For response b:

    P_{b,k}   = sum_a answer_mask_{b,k,a} * answer_logp_{b,k,a}       log pi(y* | q, s_<=k, trigger)
    L_{b,k}   = #{t : segment_ids_{b,t} = k}                          step k is present iff L > 0
    I_{b,k}   = P_{b,k+1} - P_{b,k}                                   importance (0 if absent)
    I~_{b,k}  = exp(I_k/tau) / sum_{present j} exp(I_j/tau)           normalization="softmax"
              = (I_k - min_j I_j) / (max_j I_j - min_j I_j)          normalization="minmax"
                (0 for every step when max = min)
    r_{b,k}   = L_k * (1 - I~_k)                                      weighting="linear"
              = L_k * exp(-I_k / tau)                                 weighting="exp"
    u_{b,k}   = r_k / sum_j r_j,  or L_k / sum_j L_j when sum_j r_j = 0   (weights; sum to 1)
    M_b       = alpha * E_b / |o_b|                                   penalty mass (0 if |o| = 0)
    p_{b,k}   = M_b * u_k / L_k                                       per-token penalty of step k
    pen_{b,t} = p_{b, seg_t},  0 where seg_t = -1                      so sum_t pen_{b,t} = M_b

The weights fall back to step length when the rule gives every step zero weight (one step with
softmax, whose I~ is 1). E_b (excess length of correct responses, spec step 3) is a group-level
quantity the caller computes; this module takes it as an input. The unified advantage (spec
step 5) then uses `token_penalty`. Everything is under stop_gradient: SWAP uses importance
as a reward-shaping signal, never as a differentiable term.

Implementations: "xla" (scatter/gather, `xla.py`), "pallas" (one fused kernel per block of
responses, `pallas.py`; interpret mode on CPU), "reference" (vmapped per-response code,
`reference.py`), "auto" = "pallas" on TPU, "xla" elsewhere (on GPU the op is a few [B, T]
passes that XLA fuses well, and Triton would need power-of-two T, K and A).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.kernels.step_importance import formulas
from rl_jax.kernels.step_importance import pallas
from rl_jax.kernels.step_importance import reference
from rl_jax.kernels.step_importance import xla

IMPLEMENTATIONS = ("auto", "xla", "pallas", "reference")
NORMALIZATIONS = formulas.NORMALIZATIONS
WEIGHTINGS = formulas.WEIGHTINGS
_WHERE = "rl_jax.kernels.step_importance.step_penalties"


class StepPenalties(NamedTuple):
  """Outputs of `step_penalties`; [B, K] per step, [B, T] per token, all f32 but step_len."""
  importance_BxK: jax.Array        # I
  norm_importance_BxK: jax.Array   # I~
  weights_BxK: jax.Array           # u (sums to 1 over present steps; 0 rows if no step)
  step_penalty_BxK: jax.Array      # p
  step_len_BxK: jax.Array          # L (int32)
  token_penalty_BxT: jax.Array     # pen


def _err(msg: str) -> ValueError:
  return ValueError(f"{_WHERE}: {msg}")


def _concrete(*xs) -> bool:
  return not any(isinstance(x, jax.core.Tracer) for x in xs)


def resolve_implementation(implementation: str, backend: str | None = None) -> str:
  if implementation not in IMPLEMENTATIONS:
    raise _err(f"implementation={implementation!r}; expected one of {IMPLEMENTATIONS}")
  if implementation != "auto":
    return implementation
  return "pallas" if (backend or jax.default_backend()) == "tpu" else "xla"


def _check(answer_logp, answer_mask, seg, excess, resp, alpha, tau, normalization, weighting):
  if normalization not in NORMALIZATIONS:
    raise _err(f"normalization={normalization!r}; expected one of {NORMALIZATIONS}")
  if weighting not in WEIGHTINGS:
    raise _err(f"weighting={weighting!r}; expected one of {WEIGHTINGS}")
  if answer_logp.ndim != 3 or answer_logp.shape[1] < 2:
    raise _err(f"answer_logp_BxKp1xA must be [B, K+1, A] with K >= 1, got {answer_logp.shape}")
  if not jnp.issubdtype(answer_logp.dtype, jnp.floating):
    raise _err(f"answer_logp_BxKp1xA must be floating, got {answer_logp.dtype}")
  b, k1, a = answer_logp.shape
  if answer_mask.shape not in ((b, a), (b, k1, a)):
    raise _err(f"answer_mask must be [B, A] = {(b, a)} or [B, K+1, A] = {(b, k1, a)}, got "
               f"{answer_mask.shape}")
  if seg.ndim != 2 or seg.shape[0] != b or not jnp.issubdtype(seg.dtype, jnp.integer):
    raise _err(f"segment_ids_BxT must be an integer [B={b}, T] array, got {seg.shape} {seg.dtype}")
  for name, x in (("excess_len_B", excess), ("resp_len_B", resp)):
    if x.shape != (b,):
      raise _err(f"{name} must have shape ({b},), got {x.shape}")
    if _concrete(x) and np.any(np.asarray(x) < 0):
      raise _err(f"{name} must be >= 0, got min {np.asarray(x).min()}")
  for name, x in (("alpha", alpha), ("tau", tau)):
    if x.shape != ():
      raise _err(f"{name} must be a scalar, got shape {x.shape}")
  if _concrete(tau) and not float(tau) > 0:
    raise _err(f"tau must be > 0, got {float(tau)}")
  if _concrete(seg):
    seg_np = np.asarray(seg)
    bad = np.argwhere((seg_np < -1) | (seg_np >= k1 - 1))
    if bad.size:
      i, t = (int(x) for x in bad[0])
      raise _err(f"segment_ids[{i}, {t}] = {int(seg_np[i, t])} is outside [-1, K = {k1 - 1}) "
                 f"({len(bad)} such tokens); -1 marks tokens outside every step")


def step_penalties(answer_logp_BxKp1xA: jax.Array, answer_mask: jax.Array,
                   segment_ids_BxT: jax.Array, excess_len_B: jax.Array, resp_len_B: jax.Array,
                   *, alpha: jax.Array | float, tau: jax.Array | float,
                   normalization: str = "softmax", weighting: str = "linear",
                   implementation: str = "auto", block_b: int | None = None,
                   interpret: bool | None = None) -> StepPenalties:
  """Per-step importance, penalty weights and per-token penalties (formulas: module docstring).

  Args:
    answer_logp_BxKp1xA: per-token log-probs of the ground-truth answer after each prefix of
      k = 0..K steps (teacher-forced behind the answer trigger).
    answer_mask: [B, A] or [B, K+1, A]; nonzero marks real answer tokens.
    segment_ids_BxT: step index in [0, K) of each response token, -1 for tokens outside every
      step (prompt, padding, trigger). Steps must be numbered 0..K_b-1 in order.
    excess_len_B: E_b >= 0 (0 for incorrect responses), in tokens.
    resp_len_B: |o_b| >= 0, in tokens.
    alpha, tau: traced scalars; penalty scale and temperature (tau > 0).
    normalization: "softmax" | "minmax" (static).  weighting: "linear" | "exp" (static).
    implementation: "auto" | "xla" | "pallas" | "reference" (static).
    block_b: pallas only: responses per kernel block (multiple of 8). interpret: pallas only;
      None = True off TPU.

  Segment ids outside [-1, K) raise when concrete; under jit they make those tokens' penalty NaN.
  """
  impl = resolve_implementation(implementation)
  answer_logp = jnp.asarray(answer_logp_BxKp1xA)
  answer_mask = jnp.asarray(answer_mask)
  seg = jnp.asarray(segment_ids_BxT)
  excess, resp = jnp.asarray(excess_len_B), jnp.asarray(resp_len_B)
  alpha, tau = jnp.asarray(alpha, jnp.float32), jnp.asarray(tau, jnp.float32)
  _check(answer_logp, answer_mask, seg, excess, resp, alpha, tau, normalization, weighting)
  if answer_mask.ndim == 2:
    answer_mask = jnp.broadcast_to(answer_mask[:, None, :], answer_logp.shape)
  if impl != "pallas" and (block_b is not None or interpret is not None):
    raise _err(f"block_b/interpret apply to implementation='pallas' only, not {impl!r}")
  args = jax.lax.stop_gradient((answer_logp, answer_mask, seg, excess, resp, alpha, tau))
  kw = dict(normalization=normalization, weighting=weighting)
  if impl == "pallas":
    block_b = pallas.DEFAULT_BLOCK_B if block_b is None else block_b
    if not isinstance(block_b, int) or isinstance(block_b, bool) or block_b < 1 or block_b % 8:
      raise _err(f"block_b={block_b!r} must be a positive multiple of 8 (TPU sublanes)")
    interpret = (jax.default_backend() != "tpu") if interpret is None else bool(interpret)
    out = pallas.step_penalties(*args, block_b=block_b, interpret=interpret, **kw)
  elif impl == "xla":
    out = xla.step_penalties(*args, **kw)
  else:
    out = reference.step_penalties(*args, **kw)
  return StepPenalties(*out)
