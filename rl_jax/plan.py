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

import argparse
import functools
import math
import re
import shlex
import sys
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import optax

from rl_jax import sharding
from rl_jax.kernels.fused_logprob import xla as fused_xla
from rl_jax.models import lora, qwen3
from rl_jax.models.config import (LORA_PROJECTIONS, MODEL_CONFIGS, REMAT_POLICIES, ModelConfig,
                                  get_model_config)

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


def format_plan(p: Mapping[str, Any], header: str = "") -> str:
  """The table `python -m rl_jax.plan` prints for a `plan()` result, under `header`."""
  def row(name, value):
    gib = "" if value is None else f"{value / GIB:10.3f}"
    num = "-" if value is None else f"{value:,}"
    return f"{name:<44}{num:>20}{gib:>12}"

  lines = [header] if header else []
  lines += [f"{'per device':<44}{'bytes':>20}{'GiB':>12}",
            row("params (unsharded, whole model)", p["params_total"]),
            row("params", p["params"])]
  if p["adapters"]:
    lines += [row("  of which LoRA adapters (float32, trained)", p["adapters"]),
              row("grads (adapters only)", p["grads"]),
              row("optimizer state (adapters only)", p["opt_state"])]
  else:
    lines += [row("grads", p["grads"]), row("optimizer state", p["opt_state"])]
  if p["reference"]:
    lines.append(row("reference params (frozen)", p["reference"]))
  lines += [row("activations (saved for backward)", p["activations"]),
            row("logits, naive f32 [B,T,V]", p["logits_naive"]),
            row("logits, fused log-prob kernel", p["logits_fused"]),
            row("kv cache (rollout)", p["kv_cache"]),
            row("total = state + max(train temps, kv cache)", p["total"])]
  if p["hbm"] is not None:
    lines += [row("device HBM", p["hbm"]), row("headroom", p["hbm"] - p["total"]),
              "fits" if p["fits"] else "DOES NOT FIT"]
  return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m rl_jax.plan", description=__doc__.split("\n")[0],
      epilog="Exit status: 0 fits (or no --topology to check against), 1 does not fit in the "
             "topology's HBM (reason on stderr) or --check-docs found stale blocks, 2 usage error.")
  parser.add_argument("--model", choices=sorted(MODEL_CONFIGS), help="required unless --*-docs")
  parser.add_argument("--topology", help="v4-N | v5p-N | v5e-N | v6e-N | NxH100 | NxH200 | NxA100")
  parser.add_argument("--mesh", help="'DxFxT', 'FxT' or 'F' (-1 fills); default: all fsdp")
  parser.add_argument("--batch", type=int, default=32, help="training rows per step (global)")
  parser.add_argument("--micro-batch", type=int, help="rows per micro-batch (default: --batch)")
  parser.add_argument("--rollout-batch", type=int, help="rows per rollout (default: --batch)")
  parser.add_argument("--seq-len", type=int, default=1024, help="prompt + response slots")
  parser.add_argument("--optimizer", default="adamw", choices=sorted(OPTIMIZERS))
  parser.add_argument("--param-dtype", choices=("float32", "bfloat16"))
  parser.add_argument("--remat", choices=REMAT,
                      help="activation rematerialisation (default: the model config's `remat`)")
  parser.add_argument("--logprob", default="fused", choices=LOGPROB)
  parser.add_argument("--reference", action="store_true", help="count a frozen KL reference copy "
                      "(free with LoRA: the base with the adapters off)")
  parser.add_argument("--lora-rank", type=int, default=0,
                      help="LoRA adapters of this rank (0 = full fine-tuning)")
  parser.add_argument("--lora-targets", default=",".join(LORA_PROJECTIONS),
                      help="comma-separated projections with adapters (default all seven)")
  parser.add_argument("--pack-mean-len", type=int,
                      help="packed update: mean real tokens per sequence (default: no packing)")
  docs = parser.add_mutually_exclusive_group()
  docs.add_argument("--write-docs", metavar="MD", help="re-run every `$ python -m rl_jax.plan ...` "
                    "block of this markdown file and rewrite its output in place")
  docs.add_argument("--check-docs", metavar="MD", help="like --write-docs, but only report stale "
                    "blocks (exit 1) and write nothing")
  return parser


def run(argv) -> tuple[str, dict[str, Any], str | None]:
  """Planner command-line arguments (no --*-docs) -> (printed table, plan dict, topology).

  Raises `ValueError` for arguments the planner rejects (argparse errors still exit with 2).
  The output depends on the arguments only, never on the machine it runs on: no device is queried.
  """
  args = _parser().parse_args(argv)
  if args.write_docs or args.check_docs:
    raise ValueError("--write-docs / --check-docs cannot be combined with a planner command")
  if args.model is None:
    raise ValueError("--model is required")
  devices, hbm = parse_topology(args.topology) if args.topology else (None, None)
  mesh_shape = resolve_mesh(args.mesh, devices)
  cfg = get_model_config(args.model)
  if args.lora_rank:
    cfg = cfg.replace(lora_rank=args.lora_rank, lora_targets=args.lora_targets)
  p = plan(cfg, mesh_shape, batch=args.batch, seq_len=args.seq_len,
           micro_batch=args.micro_batch, rollout_batch=args.rollout_batch,
           optimizer=args.optimizer, param_dtype=args.param_dtype, remat=args.remat,
           logprob=args.logprob, reference=args.reference, pack_mean_len=args.pack_mean_len,
           hbm_bytes=hbm)
  dtype = args.param_dtype or cfg.param_dtype
  header = (f"model={args.model} ({cfg.num_params():,} params, {dtype})  "
            f"mesh={p['mesh']} ({p['num_devices']} devices"
            f"{', ' + args.topology if args.topology else ''})\n"
            f"batch={args.batch} micro_batch={args.micro_batch or args.batch} "
            f"rows/device={p['rows_per_device']} seq_len={args.seq_len} "
            f"optimizer={args.optimizer} remat={args.remat or cfg.remat} logprob={args.logprob}")
  if args.lora_rank or args.pack_mean_len:
    header += "\n" + " ".join(
        ([f"lora_rank={cfg.lora_rank} ({cfg.num_adapter_params():,} adapter params on "
          f"{len(cfg.lora_targets)} projections)"] if args.lora_rank else []) +
        ([f"packed: mean_len={args.pack_mean_len} -> {p['rows_per_device']} packed rows/device"]
         if args.pack_mean_len else []))
  return format_plan(p, header), p, args.topology


# ---- Runnable docs: fenced blocks whose first line is `$ python -m rl_jax.plan ...` (a trailing
# backslash continues the command) hold that command's exact stdout below the command lines.
DOC_PROMPT = "$ python -m rl_jax.plan"


def doc_blocks(text: str) -> list[tuple[int, int, list[str]]]:
  """Planner blocks of a markdown text: (first output line, closing-fence line, argv), 0-based."""
  lines, blocks, i = text.split("\n"), [], 0
  while i < len(lines):
    if not lines[i].lstrip().startswith("```"):
      i += 1
      continue
    end = next((j for j in range(i + 1, len(lines)) if lines[j].lstrip().startswith("```")), None)
    if end is None:
      raise ValueError(f"line {i + 1}: code fence is never closed")
    if i + 1 < end and lines[i + 1].startswith(DOC_PROMPT + " "):
      j, cmd = i + 1, lines[i + 1][2:]
      while cmd.endswith("\\") and j + 1 < end:
        j += 1
        cmd = cmd[:-1] + " " + lines[j].strip()
      if cmd.endswith("\\"):
        raise ValueError(f"line {j + 1}: command continues past its code block")
      blocks.append((j + 1, end, shlex.split(cmd)[3:]))
    i = end + 1
  return blocks


def update_docs(text: str, source: str = "<markdown>") -> tuple[str, list[str]]:
  """Re-run every planner block of `text` -> (regenerated text, commands whose output changed)."""
  lines, stale = text.split("\n"), []
  blocks = doc_blocks(text)
  if not blocks:
    raise ValueError(f"{source}: no code block starts with {DOC_PROMPT!r}")
  for start, end, argv in reversed(blocks):
    command = "python -m rl_jax.plan " + shlex.join(argv)
    try:
      out = run(argv)[0].split("\n")
    except ValueError as e:
      raise ValueError(f"{source}:{start}: `{command}`: {e}") from None
    except SystemExit:  # argparse has printed the usage error
      raise ValueError(f"{source}:{start}: `{command}`: bad arguments (usage above)") from None
    if lines[start:end] != out:
      stale.append(command)
      lines[start:end] = out
  return "\n".join(lines), stale[::-1]


def main(argv=None) -> int:
  """CLI entry point; returns the exit status (see the parser's epilog)."""
  parser = _parser()
  args = parser.parse_args(argv)
  path = args.write_docs or args.check_docs
  if path:
    defaults = vars(parser.parse_args([]))
    extra = [k for k, v in vars(args).items() if k not in ("write_docs", "check_docs")
             and v != defaults[k]]
    if extra:
      parser.error(f"--write-docs / --check-docs run the commands written in {path}; drop "
                   + ", ".join("--" + k.replace("_", "-") for k in extra))
    try:
      with open(path, encoding="utf-8") as f:
        new, stale = update_docs(f.read(), path)
    except (OSError, ValueError) as e:
      parser.error(str(e))
    for command in stale:
      print(f"{'rewrote' if args.write_docs else 'stale'}: {command}", file=sys.stderr)
    if args.write_docs and stale:
      with open(path, "w", encoding="utf-8") as f:
        f.write(new)
    if args.check_docs and stale:
      print(f"{path}: {len(stale)} stale planner block(s); regenerate with "
            f"`python -m rl_jax.plan --write-docs {path}`", file=sys.stderr)
      return 1
    return 0
  try:
    text, p, topology = run(argv)
  except ValueError as e:
    parser.error(str(e))
  print(text)
  if p["fits"] is False:
    print(f"{parser.prog}: does not fit: needs {p['total'] / GIB:.3f} GiB per device, {topology} "
          f"has {p['hbm'] / GIB:.3f} GiB ({(p['total'] - p['hbm']) / GIB:.3f} GiB over)",
          file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
