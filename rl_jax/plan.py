"""Per-device memory planner: will this model, batch and mesh fit, before allocating anything?

    python -m rl_jax.plan --model qwen3_4b --topology v5e-16 --mesh 4x4 --batch 64 --seq-len 2048
    python -m rl_jax.plan --write-docs docs/scaling.md     # regenerate the documented outputs

Exit status: 0 when the plan fits in the --topology's HBM per device (or no --topology is given),
1 when it does not (a one-line reason on stderr), 2 for a usage error; so a launch script can run
it as a gate. The output depends on the arguments only (no device is queried), which keeps the
documented outputs machine-independent; `--write-docs` / `--check-docs` re-run them (see
`update_docs`).

Parameter, gradient, optimizer-state and KV-cache bytes are exact: shapes come from
`jax.eval_shape` (model init, `optax` init, cache init) and every leaf counts its per-device shard,
global bytes / product of the mesh axes its `rl_jax.sharding` spec uses (after the divisibility
fallback). Activations are an estimate from the formula below; compare against
`jax.jit(f).lower(...).compile().memory_analysis()` on real hardware.

Activation formula (per device; b = per-device micro-batch rows, t = seq-len, a = compute-dtype
bytes, tp = tensor axis size; GQA widths q = H*Hd, kv = K*Hd):

    per_layer = b*t*a * (4*D + (3*q + 3*kv + 4*F) / tp)      saved tensors of one block:
                  block input, input-norm out, post-attention residual, post-norm out (D wide);
                  q and k before/after norm+RoPE, v, attention output, gate, up, silu(gate),
                  silu(gate)*up (split over tensor)
              + b*H*t*t*(4 + a) / tp                         attention probabilities (f32
                  softmax output plus its compute-dtype copy; the model's attention is not flash)
    remat="none": L * per_layer
    remat="full": L * b*t*D*a + per_layer                     (only block inputs are saved; one
                  block is recomputed at a time in the backward pass)
    remat="dots": L * b*t*a*(3*D + (q + 2*kv + 2*F)/tp) + per_layer   (matmul outputs saved)
    remat defaults to ModelConfig.remat, the field the model itself reads (one source of truth)
    LoRA (rank r, targeted projections p with output width out_p):
                  lora = b*t*a * sum_p (r + out_p / tp_p)  (x A and the adapter output (x A) B,
                  a separate [b, t, out] tensor before it is added to x W; tp_p = tp for the
                  column-parallel q/k/v/gate/up, 1 for o/down); added to per_layer and, for
                  remat="dots" (both are matmul outputs), to the per-layer saved bytes
    logits naive: 3 * b*t*V*4 / tp                          f32 logits, log-softmax, softmax
    logits fused: 3 * min(block_n, b*t) * min(block_v, V) * 4 + b*t*D*4
                  (three f32 tiles of `rl_jax.kernels.fused_logprob` plus its f32 dh accumulator)

Totals: persistent state (params, optimizer state, optional frozen reference copy) plus the larger
of the two programs' temporaries, since rollout and update run one after the other:

    total = params + reference + opt_state + max(grads + activations + logits, kv_cache)
    kv_cache = 2 * L * B_rollout * S * K * Hd * a / shards   (batch over data*fsdp, K over tensor)

LoRA (`--lora-rank r`, `ModelConfig.lora_rank`; rl_jax/models/lora.py): params are the frozen
base plus float32 adapters; grads and optimizer state cover the adapters only (exact, from the
shapes of `lora.trainable`), and the KL reference is the base with the adapters off, so it costs
nothing (`--reference` adds 0).

Packing (`--pack-mean-len m`, rl_jax/packing.py): the update packs a micro-batch's sequences,
m real tokens each on average, into rows of seq-len slots, so a micro-batch of n sequences runs
ceil(n * m / seq_len) rows instead of n (ideal fill; first-fit-decreasing needs at most a few
more rows). Activations and log-prob temporaries follow the packed rows; a packed row still
attends densely over its seq-len slots (segment masking does not shrink [t, t]).
"""
from __future__ import annotations

import functools
import math
import re
import sys
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import optax

from rl_jax import sharding
from rl_jax.kernels.fused_logprob import xla as fused_xla
from rl_jax.models import lora, qwen3
from rl_jax.models.config import REMAT_POLICIES, ModelConfig

GIB = 1024 ** 3

# name pattern -> (devices per unit in the name, HBM bytes per device). TPU v4/v5p names count
# TensorCores (2 per chip, one JAX device per chip); v5e/v6e names count chips. Vendor figures.
_TOPOLOGY_PATTERNS = (
    (r"v4-(\d+)", 0.5, 32 * GIB),
    (r"v5p-(\d+)", 0.5, 95 * GIB),
    (r"(?:v5e|v5litepod)-(\d+)", 1, 16 * GIB),
    (r"v6e-(\d+)", 1, 32 * GIB),
    (r"(\d+)xH100", 1, 80 * GIB),
    (r"(\d+)xH200", 1, 141 * 10 ** 9),
    (r"(\d+)xA100", 1, 80 * GIB),
)

OPTIMIZERS = {
    "adamw": lambda: optax.adamw(1e-6),
    "adafactor": lambda: optax.adafactor(1e-6),
    "sgd": lambda: optax.sgd(1e-6, momentum=0.9),
    "lion": lambda: optax.lion(1e-6),
}
REMAT = REMAT_POLICIES
LOGPROB = ("fused", "naive")


def parse_topology(name: str) -> tuple[int, int]:
  """'v5e-16' -> (16 devices, 16 GiB); '8xH100' -> (8, 80 GiB)."""
  for pattern, per_unit, hbm in _TOPOLOGY_PATTERNS:
    m = re.fullmatch(pattern, name, flags=re.IGNORECASE)
    if m:
      devices = int(int(m.group(1)) * per_unit)
      if devices < 1:
        break
      return devices, hbm
  raise ValueError(f"unknown topology {name!r}; expected one of v4-N, v5p-N, v5e-N (v5litepod-N), "
                   "v6e-N, NxH100, NxH200, NxA100")


def resolve_mesh(mesh: str | None, num_devices: int | None) -> dict[str, int]:
  """Mesh string ('DxFxT' / 'FxT' / 'F', -1 = fill) -> {axis: size}; default all-fsdp."""
  cfg = sharding.MeshCfg.parse(mesh) if mesh else sharding.MeshCfg(1, -1, 1)
  if num_devices is None:
    if -1 in (cfg.data, cfg.fsdp, cfg.tensor):
      raise ValueError("--mesh with -1 (or no --mesh) needs --topology for the device count")
    num_devices = cfg.data * cfg.fsdp * cfg.tensor
  return cfg.resolve(num_devices)


def _shard_factor(spec, mesh_shape: Mapping[str, int]) -> int:
  """How many ways `spec` splits a leaf: the product of the mesh axes it names."""
  axes = [a for e in spec for a in (e if isinstance(e, tuple) else (e,)) if a is not None]
  return math.prod(mesh_shape[a] for a in axes)


def device_bytes(shapes, specs, mesh_shape: Mapping[str, int]) -> int:
  """Sum over leaves of global bytes / (product of mesh axes that shard the leaf)."""
  leaves = jax.tree.leaves(shapes)
  spec_leaves = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
  total = 0
  for x, spec in zip(leaves, spec_leaves, strict=True):
    nbytes = math.prod(x.shape) * jnp.dtype(x.dtype).itemsize
    total += nbytes // _shard_factor(spec, mesh_shape)
  return total


def _lora_activations(cfg: ModelConfig, b: int, t: int, tp: int) -> int:
  """Per-layer bytes of the LoRA path: x A (r wide) and (x A) B (the projection's out width)."""
  if not cfg.lora_rank:
    return 0
  q, kv = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
  d, f = cfg.hidden_size, cfg.intermediate_size
  out = {"q_proj": q // tp, "k_proj": kv // tp, "v_proj": kv // tp, "o_proj": d,
         "gate_proj": f // tp, "up_proj": f // tp, "down_proj": d}
  a = jnp.dtype(cfg.dtype).itemsize
  return b * t * a * sum(cfg.lora_rank + out[p] for p in cfg.lora_targets)


def _activations(cfg: ModelConfig, b: int, t: int, tp: int, remat: str) -> int:
  """Activation bytes saved for the backward pass (the module docstring's formula)."""
  a = jnp.dtype(cfg.dtype).itemsize
  q, kv = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
  d, f = cfg.hidden_size, cfg.intermediate_size
  per_layer = b * t * a * (4 * d + (3 * q + 3 * kv + 4 * f) // tp)
  per_layer += b * cfg.num_heads * t * t * (4 + a) // tp
  lora_bytes = _lora_activations(cfg, b, t, tp)
  per_layer += lora_bytes
  if remat == "none":
    return cfg.num_layers * per_layer
  if remat == "dots":
    # Matmul outputs with no batch dims are saved: q, k, v, o, gate, up, down and the block input.
    saved = b * t * a * (3 * d + (q + 2 * kv + 2 * f) // tp) + lora_bytes
    return cfg.num_layers * saved + per_layer
  return cfg.num_layers * b * t * d * a + per_layer


def plan(model_cfg: ModelConfig, mesh_shape: Mapping[str, int], *, batch: int, seq_len: int,
         micro_batch: int | None = None, rollout_batch: int | None = None,
         optimizer: str = "adamw", param_dtype: str | None = None, remat: str | None = None,
         logprob: str = "fused", reference: bool = False, pack_mean_len: int | None = None,
         hbm_bytes: int | None = None) -> dict[str, Any]:
  """Per-device bytes of each memory term (see the module docstring for the formulas).

  LoRA comes from `model_cfg.lora_rank` (and `lora_targets`); `pack_mean_len` (mean real
  tokens per sequence) plans the packed update (module docstring)."""
  if optimizer not in OPTIMIZERS:
    raise ValueError(f"optimizer {optimizer!r}: expected one of {sorted(OPTIMIZERS)}")
  remat = model_cfg.remat if remat is None else remat
  if remat not in REMAT:
    raise ValueError(f"remat {remat!r}: expected one of {REMAT}")
  if logprob not in LOGPROB:
    raise ValueError(f"logprob {logprob!r}: expected one of {LOGPROB}")
  micro_batch = batch if micro_batch is None else micro_batch
  rollout_batch = batch if rollout_batch is None else rollout_batch
  if batch <= 0 or seq_len <= 0 or micro_batch <= 0 or rollout_batch <= 0 or batch % micro_batch:
    raise ValueError(f"batch={batch}, micro_batch={micro_batch}, rollout_batch={rollout_batch}, "
                     f"seq_len={seq_len}: need positive sizes and batch % micro_batch == 0")
  mesh_shape = {a: int(mesh_shape.get(a, 1)) for a in sharding.AXES}
  cfg = model_cfg.replace(param_dtype=param_dtype) if param_dtype else model_cfg

  if pack_mean_len is not None and not 0 < pack_mean_len <= seq_len:
    raise ValueError(f"pack_mean_len={pack_mean_len}: need 0 < pack_mean_len <= seq_len "
                     f"({seq_len})")
  params = qwen3.abstract_params(cfg)
  p_specs = sharding.param_specs(params, mesh_shape)
  # Only `lora.trainable(params)` has gradients and optimizer state (all params without LoRA).
  trained = lora.trainable(params)
  t_specs = lora.trainable(p_specs) if cfg.lora_rank else p_specs
  opt = jax.eval_shape(OPTIMIZERS[optimizer]().init, trained)
  o_specs = sharding.opt_state_specs(opt, p_specs, mesh_shape)
  cache = jax.eval_shape(functools.partial(qwen3.init_cache, cfg, rollout_batch, seq_len))
  c_specs = sharding.kv_cache_spec(cache, mesh_shape)

  # Rows per device follow the batch rule, including its fallback to replication.
  micro_spec = sharding.fit_spec(sharding.batch_spec(), (micro_batch, seq_len), mesh_shape,
                                 "batch")
  b = micro_batch // _shard_factor(micro_spec, mesh_shape)
  if pack_mean_len is not None:  # the micro-batch's b sequences packed into full rows
    b = -(-b * pack_mean_len // seq_len)
  tp = mesh_shape["tensor"]
  n_tok = b * seq_len
  logits_naive = 3 * n_tok * cfg.vocab_size * 4 // tp
  logits_fused = (3 * min(fused_xla.DEFAULT_BLOCK_N, n_tok) *
                  min(fused_xla.DEFAULT_BLOCK_V, cfg.vocab_size) * 4 + n_tok * cfg.hidden_size * 4)

  out: dict[str, Any] = dict(
      num_devices=math.prod(mesh_shape.values()), mesh=mesh_shape, rows_per_device=b,
      params_total=sum(math.prod(x.shape) * jnp.dtype(x.dtype).itemsize
                       for x in jax.tree.leaves(params)),
      params=device_bytes(params, p_specs, mesh_shape),
      opt_state=device_bytes(opt, o_specs, mesh_shape),
      activations=_activations(cfg, b, seq_len, tp, remat),
      logits_naive=logits_naive, logits_fused=logits_fused,
      kv_cache=device_bytes(cache, c_specs, mesh_shape))
  out["grads"] = device_bytes(trained, t_specs, mesh_shape)
  out["adapters"] = out["grads"] if cfg.lora_rank else 0
  # The LoRA reference is the base with the adapters off: the same arrays, nothing extra.
  out["reference"] = out["params"] if reference and not cfg.lora_rank else 0
  logits = logits_fused if logprob == "fused" else logits_naive
  out["train_temps"] = out["grads"] + out["activations"] + logits
  out["total"] = (out["params"] + out["reference"] + out["opt_state"] +
                  max(out["train_temps"], out["kv_cache"]))
  out["hbm"] = hbm_bytes
  out["fits"] = None if hbm_bytes is None else out["total"] <= hbm_bytes
  return out


def choose_microbatches(model_cfg: ModelConfig, mesh_shape: Mapping[str, int], *, rows: int,
                        seq_len: int, budget_bytes: int, logprob: str = "fused",
                        remat: str | None = None) -> tuple[int, int]:
  """The fewest micro-batches whose planned per-device temporaries fit `budget_bytes`.

  A micro-batch's temporaries are `activations + logits` of `plan()` (the module docstring's
  formulas, so the remat policy and the log-prob path count). Candidates are the divisors M of
  `rows`; one whose micro-batch still splits over the data axes (data x fsdp) is preferred, so
  the rows stay sharded. Fewer micro-batches mean fewer, larger matmuls, which suits
  accelerators; on a CPU, smaller ones also run faster, since they stay in cache
  (docs/benchmarks.md). When even one row per device does not fit, the most micro-batches are
  used (the planner's `total` then says by how much the run exceeds the budget).

  Returns:
    (M, planned temporaries of one micro-batch in bytes).
  """
  if rows < 1 or budget_bytes <= 0:
    raise ValueError(f"choose_microbatches: need rows >= 1 and budget_bytes > 0, got rows={rows}, "
                     f"budget_bytes={budget_bytes}")
  shards = int(mesh_shape.get("data", 1)) * int(mesh_shape.get("fsdp", 1))
  divisors = [m for m in range(1, rows + 1) if rows % m == 0]
  candidates = [m for m in divisors if (rows // m) % shards == 0] or divisors
  temps = 0
  for m in candidates:
    p = plan(model_cfg, mesh_shape, batch=rows, seq_len=seq_len, micro_batch=rows // m,
             remat=remat, logprob=logprob)
    temps = p["activations"] + (p["logits_fused"] if logprob == "fused" else p["logits_naive"])
    if temps <= budget_bytes:
      return m, temps
  return candidates[-1], temps


if __name__ == "__main__":  # the command line lives in rl_jax/plan_cli.py
  from rl_jax import plan_cli  # pylint: disable=g-import-not-at-top
  sys.exit(plan_cli.main())
