"""Per-token log p(y) (and entropy) of an unembedding without materialising [N, V] logits.

    z_nj     = (h_n . W_:j) / T                         T = temperature (traced scalar)
    log p(y) = z_{n,y_n} - logsumexp_j z_nj
    H_n      = logsumexp_j z_nj - sum_j softmax(z_n)_j z_nj

The f32 [B, T, V] logits are the top memory cost of RL post-training at V = 151,936 (Qwen3):
the fused paths keep only [block_n, block_v] tiles, with an online log-sum-exp in the forward and
a custom VJP whose backward recomputes the tiles (`tiles.py`, `vjp.py`). Measured memory and
time against the naive path: docs/benchmarks.md ("Fused log-prob").

Implementations (`implementation=`, static):
  "naive"  - `reference.py`: log_softmax over the full [N, V] (f32) and take_along_axis.
  "xla"    - `xla.py`: lax loops over vocabulary tiles and token blocks; the CPU default.
  "pallas" - `pallas.py`: Pallas kernels; schedule "grid" (TPU Mosaic) or "loop" (GPU Triton),
             `interpret=True` (automatic on CPU) runs them on any backend.
  "auto"   - "pallas" on TPU, "xla" elsewhere (GPU included: measured on an H200, the Triton
             "loop" schedule is exact but its default 256 x 512 tiles exceed shared memory, and
             a [D, block_v] weight tile does not fit at D >= 1024 at any allowed block size;
             docs/benchmarks.md "Pallas on GPU").

Conventions (every implementation):
  - inputs h [..., D] and W [D, V] share one float dtype; matmuls accumulate in f32 and the
    outputs are f32 with y's shape;
  - mask == 0 tokens return 0 (log-prob and entropy) and get zero gradient; their ids may be
    anything (e.g. -100 padding);
  - an unmasked id outside [0, V) raises ValueError when the ids are concrete; under jit (ids
    are tracers, nothing can be checked without checkify) it returns NaN for that token and NaN
    gradients, so it cannot train silently;
  - gradients flow to h, W and temperature (also through the entropy); y and mask get none.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.kernels.fused_logprob import pallas
from rl_jax.kernels.fused_logprob import reference
from rl_jax.kernels.fused_logprob import xla

IMPLEMENTATIONS = ("auto", "naive", "xla", "pallas")
_WHERE = "rl_jax.kernels.fused_logprob.fused_logprob"


def _err(msg: str) -> ValueError:
  return ValueError(f"{_WHERE}: {msg}")


def _is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def resolve_implementation(implementation: str, backend: str | None = None) -> str:
  """"auto" -> "pallas" on TPU, "xla" elsewhere; other names pass through (validated)."""
  if implementation not in IMPLEMENTATIONS:
    raise _err(f"implementation={implementation!r}; expected one of {IMPLEMENTATIONS}")
  if implementation != "auto":
    return implementation
  backend = backend or jax.default_backend()
  return "pallas" if backend == "tpu" else "xla"


def _check_block(name: str, value, multiple: int, impl: str) -> int:
  if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
    raise _err(f"{name}={value!r}; expected a positive int")
  if value % multiple:
    raise _err(f"{name}={value} must be a multiple of {multiple} for implementation={impl!r} "
               f"(TPU tiles are 8 sublanes x 128 lanes; tokens are padded to a multiple of "
               f"block_n and the last vocabulary block is masked)")
  return int(value)


def _check_inputs(h, w, y, mask, temperature):
  if w.ndim != 2:
    raise _err(f"w must be [D, V], got shape {w.shape}")
  if h.ndim < 1 or h.shape[-1] != w.shape[0]:
    raise _err(f"h must be [..., D] with D = w.shape[0] = {w.shape[0]}, got shape {h.shape}")
  if not jnp.issubdtype(h.dtype, jnp.floating) or h.dtype != w.dtype:
    raise _err(f"h and w must share one float dtype, got h {h.dtype} and w {w.dtype}")
  if y.shape != h.shape[:-1]:
    raise _err(f"y must have shape h.shape[:-1] = {h.shape[:-1]}, got {y.shape}")
  if not jnp.issubdtype(y.dtype, jnp.integer):
    raise _err(f"y must hold integer token ids, got dtype {y.dtype}")
  if mask.shape != y.shape:
    raise _err(f"mask must have y's shape {y.shape}, got {mask.shape}")
  if jnp.issubdtype(mask.dtype, jnp.complexfloating):
    raise _err(f"mask must be bool or real, got dtype {mask.dtype}")
  if temperature.shape != ():
    raise _err(f"temperature must be a scalar, got shape {temperature.shape}")
  if _is_concrete(temperature) and not float(temperature) > 0:
    raise _err(f"temperature must be > 0, got {float(temperature)}")
  if _is_concrete(y) and _is_concrete(mask):
    y_np, keep = np.asarray(y), np.asarray(mask) != 0
    bad = np.argwhere(keep & ((y_np < 0) | (y_np >= w.shape[1])))
    if bad.size:
      idx = tuple(int(i) for i in bad[0])
      raise _err(f"target id y{list(idx)} = {int(y_np[idx])} is outside [0, V = {w.shape[1]}) "
                 f"at an unmasked position ({len(bad)} such positions)")


def fused_logprob(h: jax.Array, w: jax.Array, y: jax.Array, mask: jax.Array | None = None, *,
                  temperature: jax.Array | float = 1.0, return_entropy: bool = False,
                  implementation: str = "auto", block_n: int | None = None,
                  block_v: int | None = None, schedule: str | None = None,
                  interpret: bool | None = None):
  """log p(y) per token (and the entropy), f32, without building [N, V] logits.

  Args:
    h: [..., D] hidden states (f32 or bf16).
    w: [D, V] unembedding, same dtype as h.
    y: [...] integer target ids in [0, V) wherever mask is nonzero.
    mask: [...] bool/int/float, nonzero = keep; None keeps every token.
    temperature: traced scalar > 0; logits are (h @ w) / temperature.
    return_entropy: also return the entropy of softmax(logits) per token (static).
    implementation: "auto" | "naive" | "xla" | "pallas" (static; see module docstring).
    block_n, block_v: token and vocabulary tile sizes (static). Defaults: xla 1024 x 2048
      (CPU-sized), pallas 256 x 512. Pallas needs multiples of 8 and 128.
    schedule: pallas only: "grid" (TPU) or "loop" (GPU); None picks by backend.
    interpret: pallas only: run the kernels in interpret mode; None = True on CPU.

  Returns:
    logp [...] f32, or (logp, entropy) when return_entropy. Masked tokens are 0.
  """
  impl = resolve_implementation(implementation)
  h, w, y = jnp.asarray(h), jnp.asarray(w), jnp.asarray(y)
  mask = jnp.ones(y.shape, jnp.bool_) if mask is None else jnp.asarray(mask)
  temperature = jnp.asarray(temperature, jnp.float32)
  _check_inputs(h, w, y, mask, temperature)
  if impl != "pallas" and (schedule is not None or interpret is not None):
    raise _err(f"schedule/interpret apply to implementation='pallas' only, not {impl!r}")

  lead_shape = y.shape
  h_NxD = h.reshape(-1, h.shape[-1])
  y_N, mask_N = y.reshape(-1), mask.reshape(-1)
  if h_NxD.shape[0] == 0:
    zeros = jnp.zeros(lead_shape, jnp.float32)
    return (zeros, zeros) if return_entropy else zeros

  if impl == "naive":
    if block_n is not None or block_v is not None:
      raise _err("block_n/block_v do not apply to implementation='naive'")
    logp_N, ent_N = reference.fused_logprob_entropy(h_NxD, w, y_N, mask_N, temperature)
  elif impl == "xla":
    bn = _check_block("block_n", xla.DEFAULT_BLOCK_N if block_n is None else block_n, 1, impl)
    bv = _check_block("block_v", xla.DEFAULT_BLOCK_V if block_v is None else block_v, 1, impl)
    logp_N, ent_N = xla.fused_logprob_entropy(h_NxD, w, y_N, mask_N, temperature,
                                              block_n=bn, block_v=bv)
  else:
    backend = jax.default_backend()
    schedule = schedule or ("loop" if backend == "gpu" else "grid")
    if schedule not in pallas.SCHEDULES:
      raise _err(f"schedule={schedule!r}; expected one of {pallas.SCHEDULES}")
    interpret = (backend == "cpu") if interpret is None else bool(interpret)
    if schedule == "grid" and backend == "gpu" and not interpret:
      raise _err("schedule='grid' is TPU-only (Mosaic compiler params; its programs accumulate "
                 "into one output block); on GPU use schedule='loop' or implementation='xla'")
    bn = _check_block("block_n", pallas.DEFAULT_BLOCK_N if block_n is None else block_n, 8, impl)
    bv = _check_block("block_v", pallas.DEFAULT_BLOCK_V if block_v is None else block_v, 128,
                      impl)
    if schedule == "loop" and not interpret:
      for name, size in (("block_n", bn), ("block_v", bv), ("D", w.shape[0])):
        if size & (size - 1):
          raise _err(f"{name}={size} must be a power of two for the Triton (schedule='loop') "
                     f"lowering; use implementation='xla' otherwise")
    logp_N, ent_N = pallas.fused_logprob_entropy(h_NxD, w, y_N, mask_N, temperature,
                                                 block_n=bn, block_v=bv, schedule=schedule,
                                                 interpret=interpret)
  logp = logp_N.reshape(lead_shape)
  return (logp, ent_N.reshape(lead_shape)) if return_entropy else logp
