"""Group-relative advantages for outcome and process rewards (GRPO family).

All functions are pure `jnp`, jittable, with the group size static. A *group* is the G responses
sampled for one prompt and sits in consecutive rows: group g is rows [g*G, (g+1)*G). Every group
reshape goes through `check_group_shape`, so a batch that is not a whole number of groups fails at
trace time with a clear message instead of silently mixing prompts (Tunix's eval returned 0% when
the micro-batch was smaller than G).

Advantages are computed outside the differentiated loss (docs/architecture.md): the loss
only consumes them.

Non-finite rewards (NaN, +-inf) are refused with a ValueError naming the row(s), because one of
them silently turns its whole group's advantages into NaN (the group mean and std absorb it) and
the update then trains on garbage. The check needs concrete values, so it only runs when the
rewards are concrete arrays (numpy or a jax.Array outside a trace), as in the RL loop
(`advantage_parts` passes host rewards). Under `jax.jit` / `vmap` / `grad` the rewards are
tracers and nothing can be raised: a non-finite reward then yields NaN advantages, unchecked.

References:
  GRPO, process supervision: Shao et al. 2024, DeepSeekMath, arXiv 2402.03300, §4.1.2-4.1.3.
  Dr. GRPO: Liu et al. 2025, "Understanding R1-Zero-like training", arXiv 2503.20783.
  RLOO: Ahmadian et al. 2024, "Back to Basics", arXiv 2402.14740.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

NORMALIZE_MODES = ("std", "none")


def check_group_shape(batch: int, group_size: int, where: str) -> int:
  """Returns the number of groups, or raises ValueError if `batch` is not a multiple of G.

  Shapes are static under jit, so this raises while tracing, before any compute.
  """
  if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 1:
    raise ValueError(f"group_size must be a positive int, got {group_size!r} (in {where})")
  if batch % group_size:
    raise ValueError(
        f"batch {batch} is not divisible by group_size {group_size} (in {where})")
  return batch // group_size


def _as_float(x: jax.Array) -> jax.Array:
  # Integer rewards would otherwise make integer advantages (cf. Tunix's PPO int32 reward tensor).
  x = jnp.asarray(x)
  return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _check_rank(x: jax.Array, rank: int, name: str, where: str):
  if x.ndim != rank:
    raise ValueError(f"{name} must have rank {rank}, got shape {x.shape} (in {where})")


_MAX_LISTED = 5  # non-finite entries spelled out in the error; the rest are counted


def _check_finite(x: jax.Array, name: str, where: str, mask: jax.Array | None = None) -> None:
  """Raises ValueError listing the non-finite entries of a concrete `x` (where `mask` is on).

  A no-op for tracers (inside jit/vmap/grad the values do not exist yet, so there is nothing to
  inspect and raising would break tracing); see the module docstring.
  """
  if isinstance(x, jax.core.Tracer) or isinstance(mask, jax.core.Tracer):
    return
  values = np.asarray(x)
  bad = ~np.isfinite(values)
  if mask is not None:
    bad &= np.asarray(mask, bool)
  if not bad.any():
    return
  positions = np.argwhere(bad)
  axes = ("row", "step")
  listed = ", ".join(
      " ".join(f"{axis} {i}" for axis, i in zip(axes, pos)) + f" = {values[tuple(pos)]}"
      for pos in positions[:_MAX_LISTED])
  more = len(positions) - _MAX_LISTED
  raise ValueError(
      f"{name} must be finite, got non-finite value(s) at {listed}"
      f"{f' (and {more} more)' if more > 0 else ''} (in {where}); a NaN or inf reward would make "
      "its whole group's advantages NaN: fix the scorer or the reward's inputs")


def _shift_by_first(r_NxG: jax.Array) -> jax.Array:
  """Each group's rewards minus its first reward: advantages are shift-invariant, and the shift
  makes a group of equal rewards exactly zero before the mean. Without it, rewards such as
  0.3 x 8 have a float32 mean that is not 0.3, the std is ~1e-8, and (r - mean) / (std + eps)
  gives every sample of a zero-variance group the same spurious advantage (0.029 for 0.3 x 8,
  eps 1e-6): a push on samples that carry no signal, on any task with fractional rewards."""
  return r_NxG - r_NxG[:, :1]


def group_advantages(rewards_B: jax.Array, *, group_size: int, normalize: str = "std",
                     eps: float = 1e-6, std_ddof: int = 1) -> jax.Array:
  """Outcome advantages, one per response: GRPO or Dr. GRPO.

    normalize="std"  (GRPO):     A_i = (r_i - mean_g r) / (std_g r + eps)
    normalize="none" (Dr. GRPO): A_i =  r_i - mean_g r

  `std_ddof=1` (the unbiased sample std) matches TRL, verl and Tunix, which all call
  `torch.std` / `np.std(ddof=1)`; pass 0 for the population std. A group whose rewards are all
  equal has std 0 and gets A = 0 exactly (numerator 0), never NaN.

  Non-finite rewards raise ValueError naming their rows when `rewards_B` is concrete; under
  `jax.jit` (tracer input) they cannot be detected and give NaN advantages (module docstring).

  Args:
    rewards_B: [B] scalar rewards, B = num_groups * group_size, groups in consecutive rows.
    group_size: G (static).
    normalize: "std" or "none" (static).
    eps: added to the std (TRL uses 1e-4, verl and Tunix 1e-6).
    std_ddof: delta degrees of freedom of the std (static).

  Returns:
    [B] float advantages.
  """
  where = "group_advantages"
  rewards_B = _as_float(rewards_B)
  _check_rank(rewards_B, 1, "rewards_B", where)
  _check_finite(rewards_B, "rewards_B", where)
  if normalize not in NORMALIZE_MODES:
    raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {normalize!r} (in {where})")
  num_groups = check_group_shape(rewards_B.shape[0], group_size, where)
  r_NxG = _shift_by_first(rewards_B.reshape(num_groups, group_size))
  centred_NxG = r_NxG - r_NxG.mean(axis=1, keepdims=True)
  if normalize == "none":
    return centred_NxG.reshape(-1)
  if group_size <= std_ddof:
    raise ValueError(f"group_size {group_size} leaves no degrees of freedom for std_ddof "
                     f"{std_ddof}; use normalize='none' or a larger group (in {where})")
  std_Nx1 = jnp.std(r_NxG, axis=1, ddof=std_ddof, keepdims=True)
  return (centred_NxG / (std_Nx1 + eps)).reshape(-1)


def rloo_advantages(rewards_B: jax.Array, *, group_size: int) -> jax.Array:
  """REINFORCE leave-one-out: A_i = r_i - (sum_g r - r_i) / (G - 1).

  Equivalently G/(G-1) * (r_i - mean_g r). Needs G >= 2 (with one sample there is no baseline).
  Non-finite rewards raise ValueError as in `group_advantages` (concrete input only).
  """
  where = "rloo_advantages"
  rewards_B = _as_float(rewards_B)
  _check_rank(rewards_B, 1, "rewards_B", where)
  _check_finite(rewards_B, "rewards_B", where)
  num_groups = check_group_shape(rewards_B.shape[0], group_size, where)
  if group_size < 2:
    raise ValueError(f"rloo needs group_size >= 2, got {group_size} (in {where})")
  r_NxG = _shift_by_first(rewards_B.reshape(num_groups, group_size))
  baseline_NxG = (r_NxG.sum(axis=1, keepdims=True) - r_NxG) / (group_size - 1)
  return (r_NxG - baseline_NxG).reshape(-1)


def process_advantages(step_rewards_BxK: jax.Array, step_end_BxK: jax.Array,
                       step_mask_BxK: jax.Array, *, group_size: int, seq_len: int,
                       eps: float = 1e-6, std_ddof: int = 1) -> jax.Array:
  """Process-supervision advantages (DeepSeekMath §4.1.3).

  Each response i has up to K reasoning steps; step k has reward r_i^(k) and ends (inclusive) at
  token index end_i^(k). Valid step rewards of a whole group are normalised together,

    r~ = (r - mean_group) / (std_group + eps)      (mean/std over the group's valid steps),

  and token t of response i gets the sum over its steps that end at or after t:

    A_{i,t} = sum_{k valid, end_i^(k) >= t} r~_i^(k).

  Tokens after the last step's end get 0; prompt/padding tokens also receive a value and must be
  excluded by the loss mask. A step ending at or beyond `seq_len` counts for every token; a
  negative end counts for none. A group with no valid steps, or whose valid steps share one
  reward, gets all-zero advantages (no NaN).

  Args:
    step_rewards_BxK: [B, K] step rewards (entries where the mask is off are ignored, even NaN;
      a non-finite reward of a valid step raises ValueError naming its row and step when the
      inputs are concrete, and gives NaN advantages under jit, as in `group_advantages`).
    step_end_BxK: [B, K] int token index where each step ends, inclusive.
    step_mask_BxK: [B, K] bool, which steps exist.
    group_size: G (static); B must be a multiple of G.
    seq_len: T (static), length of the returned token axis.
    eps, std_ddof: as in `group_advantages`. With fewer than ddof+1 valid steps the variance
      denominator is clamped to 1, which gives variance 0.

  Returns:
    [B, T] float advantages.
  """
  where = "process_advantages"
  r_BxK = _as_float(step_rewards_BxK)
  end_BxK = jnp.asarray(step_end_BxK)
  m_BxK = jnp.asarray(step_mask_BxK).astype(bool)
  _check_rank(r_BxK, 2, "step_rewards_BxK", where)
  if end_BxK.shape != r_BxK.shape or m_BxK.shape != r_BxK.shape:
    raise ValueError(f"step_rewards_BxK {r_BxK.shape}, step_end_BxK {end_BxK.shape} and "
                     f"step_mask_BxK {m_BxK.shape} must have the same shape (in {where})")
  if not jnp.issubdtype(end_BxK.dtype, jnp.integer):
    raise ValueError(f"step_end_BxK must be integer token indices, got {end_BxK.dtype} "
                     f"(in {where})")
  if seq_len < 1:
    raise ValueError(f"seq_len must be >= 1, got {seq_len} (in {where})")
  batch, num_steps = r_BxK.shape
  num_groups = check_group_shape(batch, group_size, where)
  _check_finite(r_BxK, "step_rewards_BxK", where, mask=m_BxK)

  # Group statistics over valid steps only; masked entries are replaced (not multiplied) so a
  # NaN fill value cannot leak.
  r_BxK = jnp.where(m_BxK, r_BxK, 0.0)
  r_NxGK = r_BxK.reshape(num_groups, group_size * num_steps)
  m_NxGK = m_BxK.reshape(num_groups, group_size * num_steps)
  # Shifted by the group's first valid step reward (see `_shift_by_first`).
  first_Nx1 = jnp.take_along_axis(r_NxGK, jnp.argmax(m_NxGK, axis=1)[:, None], axis=1)
  r_NxGK = jnp.where(m_NxGK, r_NxGK - first_Nx1, 0.0)
  count_Nx1 = m_NxGK.sum(axis=1, keepdims=True).astype(r_BxK.dtype)
  mean_Nx1 = r_NxGK.sum(axis=1, keepdims=True) / jnp.maximum(count_Nx1, 1.0)
  dev_NxGK = jnp.where(m_NxGK, r_NxGK - mean_Nx1, 0.0)
  var_Nx1 = (dev_NxGK ** 2).sum(axis=1, keepdims=True) / jnp.maximum(count_Nx1 - std_ddof, 1.0)
  norm_BxK = (dev_NxGK / (jnp.sqrt(var_Nx1) + eps)).reshape(batch, num_steps)

  # Sum over {k : end_k >= t} = reverse cumulative sum of rewards scattered at their end index.
  # O(B*T) memory, unlike a [B, K, T] comparison. Ends past the sequence clamp to T-1 (they cover
  # every token); negative ends are dropped by scattering out of bounds.
  idx_BxK = jnp.where(end_BxK < 0, seq_len, jnp.minimum(end_BxK, seq_len - 1))
  rows_BxK = jnp.broadcast_to(jnp.arange(batch)[:, None], (batch, num_steps))
  at_end_BxT = jnp.zeros((batch, seq_len), norm_BxK.dtype).at[rows_BxK, idx_BxK].add(
      norm_BxK, mode="drop")
  return jnp.flip(jnp.cumsum(jnp.flip(at_end_BxT, axis=1), axis=1), axis=1)
