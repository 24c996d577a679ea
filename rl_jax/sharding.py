"""Device mesh, parameter/optimizer/batch/KV-cache PartitionSpecs, and resharding.

One 3-axis mesh serves every program:

    data    pure data parallelism (parameters replicated; gradients all-reduced)
    fsdp    data parallelism with parameters, gradients and optimizer state sharded (ZeRO-3)
    tensor  Megatron tensor parallelism (attention heads / MLP hidden units split)

The batch axis of every activation is split over ("data", "fsdp"); parameters are split over
"fsdp" on one dim and "tensor" on another, chosen by a regex table over the parameter path
(big_vision style, `PARAM_RULES`). Column-parallel kernels (q/k/v/gate/up, [L, in, out]) put
"tensor" on `out`; row-parallel kernels (o/down) put it on `in`, so the intermediate activation
of an attention or MLP block stays split over "tensor" and only the block output needs a
reduce-scatter/all-reduce (Shoeybi et al. 2019, "Megatron-LM", arXiv 1909.08053).

Divisibility: a dim whose size is not a multiple of its mesh axes falls back to replication
(longest dividing prefix of a multi-axis entry, else None) and the fallback is logged, so odd
shapes (a 2-KV-head model on tensor=4) cost memory instead of crashing the launch.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
import re
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from rl_jax.models.qwen3 import KVCache

log = logging.getLogger(__name__)

AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# (regex over the "/"-joined parameter path, spec). First match wins; every rule is anchored so a
# new parameter kind never silently inherits a spec meant for another.
PARAM_RULES: tuple[tuple[str, P], ...] = (
    (r"^embed/embedding$", P("tensor", "fsdp")),                              # [V, D]
    (r"^layers/attn/(q|k|v)_proj/kernel$", P(None, "fsdp", "tensor")),         # [L, D, out]
    (r"^layers/mlp/(gate|up)_proj/kernel$", P(None, "fsdp", "tensor")),        # [L, D, F]
    (r"^layers/attn/o_proj/kernel$", P(None, "tensor", "fsdp")),               # [L, H*Hd, D]
    (r"^layers/mlp/down_proj/kernel$", P(None, "tensor", "fsdp")),             # [L, F, D]
    # LoRA adapters (rl_jax.models.lora): A [L, in, r], B [L, r, out] split like their kernel
    # on the in / out dim, rank replicated, so x A and (x A) B follow the kernel's layout.
    (r"^layers/attn/(q|k|v)_proj/lora_a$", P(None, "fsdp", None)),
    (r"^layers/mlp/(gate|up)_proj/lora_a$", P(None, "fsdp", None)),
    (r"^layers/attn/(q|k|v)_proj/lora_b$", P(None, None, "tensor")),
    (r"^layers/mlp/(gate|up)_proj/lora_b$", P(None, None, "tensor")),
    (r"^layers/(attn/o|mlp/down)_proj/lora_a$", P(None, "tensor", None)),
    (r"^layers/(attn/o|mlp/down)_proj/lora_b$", P(None, None, "fsdp")),
    (r"^(layers/)?(input_norm|post_attn_norm|attn/q_norm|attn/k_norm|final_norm)/scale$", P()),
    (r"^lm_head/kernel$", P("fsdp", "tensor")),                                # [D, V]
)

MeshShape = Mapping[str, int]


@dataclasses.dataclass(frozen=True)
class MeshCfg:
  """Mesh axis sizes; -1 on (at most) one axis means "all remaining devices"."""
  data: int = 1
  fsdp: int = -1
  tensor: int = 1

  @classmethod
  def parse(cls, text: str) -> "MeshCfg":
    """Parses "DxFxT" (data/fsdp/tensor), "FxT" (fsdp/tensor) or "F" (fsdp); -1 fills once."""
    try:
      sizes = [int(s) for s in text.lower().split("x")]
    except ValueError:
      sizes = []
    if not 1 <= len(sizes) <= 3:
      raise ValueError(f"mesh string {text!r}: expected 'DxFxT', 'FxT' or 'F' with integer sizes")
    sizes = [1] * (3 - len(sizes)) + sizes
    return cls(*sizes)

  def resolve(self, num_devices: int) -> dict[str, int]:
    """Concrete {axis: size} whose product is `num_devices`; ValueError otherwise."""
    sizes = dict(data=self.data, fsdp=self.fsdp, tensor=self.tensor)
    bad = {k: v for k, v in sizes.items() if v == 0 or v < -1}
    if bad:
      raise ValueError(f"MeshCfg sizes must be positive or -1 (fill), got {bad}")
    fill = [k for k, v in sizes.items() if v == -1]
    if len(fill) > 1:
      raise ValueError(f"MeshCfg: at most one axis may be -1, got {fill} in {sizes}")
    known = math.prod(v for v in sizes.values() if v != -1)
    if fill:
      if num_devices % known:
        raise ValueError(f"MeshCfg {sizes}: {num_devices} devices are not divisible by the fixed "
                         f"axes' product {known}, so '{fill[0]}' = -1 cannot be filled")
      sizes[fill[0]] = num_devices // known
    if math.prod(sizes.values()) != num_devices:
      raise ValueError(f"MeshCfg {sizes}: product {math.prod(sizes.values())} != {num_devices} "
                       "devices; make data*fsdp*tensor equal the device count or use -1 on one "
                       "axis")
    return sizes


def make_mesh(mesh_cfg: MeshCfg, devices: Sequence[Any] | None = None) -> Mesh:
  """A ("data", "fsdp", "tensor") mesh over `devices` (default: all devices, every process).

  Axis types are `AxisType.Auto` on purpose: the model is written with plain `jnp.dot` and no
  sharding annotations, so with JAX 0.10's default Explicit axes a matmul over an fsdp-sharded
  contracting dim raises `ShardingTypeError`. Auto axes give pjit/GSPMD behaviour: shardings
  are propagated from the sharded inputs and XLA inserts the all-gathers / reduce-scatters,
  which keeps the model code sharding-agnostic and lets trainer and sampler share it.
  """
  devices = list(jax.devices() if devices is None else devices)
  sizes = mesh_cfg.resolve(len(devices))
  # jax.make_mesh orders devices by physical topology (ICI rings on TPU) for us.
  return jax.make_mesh(tuple(sizes[a] for a in AXES), AXES,
                       axis_types=(AxisType.Auto,) * len(AXES), devices=devices)


def mesh_shape_of(mesh: Mesh | MeshShape) -> dict[str, int]:
  return dict(mesh.shape) if isinstance(mesh, Mesh) else dict(mesh)


def path_str(path) -> str:
  """The key path joined by "/": DictKey -> key, attribute -> name, sequence index -> index."""
  parts = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return "/".join(parts)


def _axes_of(entry) -> tuple[str, ...]:
  if entry is None:
    return ()
  return tuple(entry) if isinstance(entry, (tuple, list)) else (entry,)


@functools.lru_cache(maxsize=None)
def _warn_once(fmt: str, *args) -> None:
  # Specs are recomputed for params, grads and every optimizer copy: say each fallback once.
  log.warning(fmt, *args)


def fit_spec(spec: P, shape: Sequence[int], mesh_shape: MeshShape, name: str = "") -> P:
  """Drops mesh axes from dims they do not divide (logged), so the spec is always valid."""
  if len(spec) > len(shape):
    raise ValueError(f"{name or 'array'}: spec {spec} has {len(spec)} entries but the shape "
                     f"{tuple(shape)} has rank {len(shape)}")
  out = []
  for dim, entry in enumerate(spec):
    axes = _axes_of(entry)
    unknown = [a for a in axes if a not in mesh_shape]
    if unknown:
      raise ValueError(f"{name or 'array'}: spec {spec} names mesh axes {unknown} that are not "
                       f"in the mesh {dict(mesh_shape)}")
    keep = axes
    while keep and shape[dim] % math.prod(mesh_shape[a] for a in keep):
      keep = keep[:-1]
    if keep != axes:
      _warn_once("sharding: %s dim %d (size %d) is not divisible by mesh axes %s %s; using %s",
                 name or "array", dim, shape[dim], axes,
                 tuple(mesh_shape[a] for a in axes), keep or "replication")
    out.append(None if not keep else keep[0] if len(keep) == 1 else keep)
  return P(*out)


def spec_for_path(path: str, rules: Sequence[tuple[str, P]] = PARAM_RULES) -> P:
  for pattern, spec in rules:
    if re.search(pattern, path):
      return spec
  raise ValueError(f"no sharding rule matches parameter {path!r}; add a (regex, PartitionSpec) "
                   "entry to rl_jax.sharding.PARAM_RULES")


def param_specs(params_or_shapes, mesh: Mesh | MeshShape | None = None,
                rules: Sequence[tuple[str, P]] = PARAM_RULES):
  """Same-structure tree of PartitionSpecs for params (arrays or ShapeDtypeStructs).

  With `mesh` (a Mesh or {axis: size}) each spec is `fit_spec`-ed to the leaf's shape.
  """
  mesh_shape = None if mesh is None else mesh_shape_of(mesh)

  def one(path, leaf):
    name = path_str(path)
    spec = spec_for_path(name, rules)
    if mesh_shape is None:
      return spec
    return fit_spec(spec, np.shape(leaf), mesh_shape, name)

  return jax.tree.map_with_path(one, params_or_shapes)


def opt_state_specs(opt_state_shapes, param_specs_tree, mesh: Mesh | MeshShape | None = None):
  """Specs for an optax state: param-shaped leaves mirror their parameter's spec.

  A state leaf matches a parameter when its key path *ends with* the parameter's path (optax
  nests `mu`/`nu`/`trace` trees that mirror params inside tuples/namedtuples) and the spec's rank
  fits the leaf. Scalars (step counts) and unmatched leaves (e.g. Adafactor's factored row/column
  statistics) are replicated; unmatched non-scalars are logged because they cost memory.
  """
  mesh_shape = None if mesh is None else mesh_shape_of(mesh)
  by_path = {path_str(p): s for p, s in jax.tree.leaves_with_path(param_specs_tree)}

  def one(path, leaf):
    shape = np.shape(leaf)
    if not shape:
      return P()
    keys = path_str(path).split("/")
    for i in range(len(keys)):
      spec = by_path.get("/".join(keys[i:]))
      if spec is not None and len(spec) <= len(shape):
        name = "/".join(keys[i:])  # the parameter's name, so fallbacks are reported once
        return spec if mesh_shape is None else fit_spec(spec, shape, mesh_shape, name)
    log.info("sharding: optimizer leaf %s %s matches no parameter; replicated",
             path_str(path), shape)
    return P()

  return jax.tree.map_with_path(one, opt_state_shapes)


def train_state_specs(state_shapes, mesh: Mesh | MeshShape | None = None):
  """Specs for a `TrainState(step, params, opt_state)` (step replicated)."""
  p_specs = param_specs(state_shapes.params, mesh)
  return state_shapes.replace(step=P(), params=p_specs,
                              opt_state=opt_state_specs(state_shapes.opt_state, p_specs, mesh))


def shard_train_state(state, mesh: Mesh):
  """Places a `TrainState` on `mesh` with `train_state_specs` (a no-op for leaves already there).

  Also what pins a state back after a jitted step: with Auto axes XLA may return small leaves
  (norm scales and their optimizer moments) sharded differently from how they went in, which
  would recompile the next step and defeat buffer donation.
  """
  return shard_tree(state, mesh, train_state_specs(state, mesh))


def state_shardings(state, mesh: Mesh):
  """NamedShardings of a `TrainState` under `train_state_specs`: the `out_shardings` of the
  jitted steps, so a step returns the state in the layout the next step takes."""
  return named_shardings(mesh, train_state_specs(state, mesh))


def batch_spec() -> P:
  """Leading batch axis split over data and fsdp; other axes replicated."""
  return P(BATCH_AXES)


def batch_specs(batch_shapes, mesh: Mesh | MeshShape):
  """`batch_spec()` fitted to every leaf of a batch pytree (scalars replicated)."""
  mesh_shape = mesh_shape_of(mesh)
  return jax.tree.map_with_path(
      lambda p, x: fit_spec(batch_spec(), np.shape(x), mesh_shape, path_str(p))
      if np.ndim(x) else P(), batch_shapes)


def shard_batch(tree, mesh: Mesh | None):
  """Places a pytree of host rows on `mesh` with `batch_specs` (rows over data and fsdp).

  `mesh=None` puts the arrays on the default device instead (single-device runs). On a
  multi-process mesh every process must pass the same host values (SPMD host loop).
  """
  if mesh is None:
    return jax.tree.map(jnp.asarray, tree)
  return shard_tree(tree, mesh, batch_specs(tree, mesh))


def to_host(tree):
  """numpy copy of every array leaf, whole on every process.

  `jax.device_get` cannot read an array with shards on other processes' devices; those leaves
  are gathered with `multihost_utils.process_allgather`, a collective, so on a multi-process
  mesh every process must call this at the same point of the host loop.
  """
  def one(x):
    if isinstance(x, jax.Array) and not (x.is_fully_addressable or x.is_fully_replicated):
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))
  return jax.tree.map(one, tree)


def kv_cache_spec(cache_shapes: KVCache, mesh: Mesh | MeshShape) -> KVCache:
  """[L, B, S, K, Hd] caches: batch over data+fsdp, KV heads over tensor when divisible."""
  mesh_shape = mesh_shape_of(mesh)
  spec = P(None, BATCH_AXES, None, "tensor", None)
  return KVCache(*(fit_spec(spec, np.shape(x), mesh_shape, f"kv_cache/{n}")
                   for n, x in zip(KVCache._fields, cache_shapes)))


def without_axes(specs, axes: Sequence[str] = ("fsdp",)):
  """Specs with `axes` removed (replicated over them): e.g. a sampler layout without FSDP, so
  decode steps do not all-gather every weight on every token (Tunix's `is_sampling=True`)."""
  drop = set(axes)

  def one(spec: P) -> P:
    out = []
    for entry in spec:
      keep = tuple(a for a in _axes_of(entry) if a not in drop)
      out.append(None if not keep else keep[0] if len(keep) == 1 else keep)
    return P(*out)

  return jax.tree.map(one, specs, is_leaf=lambda x: isinstance(x, P))


def named_shardings(mesh: Mesh, specs):
  return jax.tree.map(lambda s: NamedSharding(mesh, s), specs,
                      is_leaf=lambda x: isinstance(x, P))


def shard_tree(tree, mesh: Mesh, specs):
  """Places `tree` on `mesh` with `specs` (same structure). Host values must be identical on
  every process when the mesh spans several."""
  return jax.device_put(tree, named_shardings(mesh, specs))


def reshard(tree, target_shardings, donate: bool = False):
  """Moves arrays to new shardings (e.g. trainer FSDP layout -> sampler TP layout).

  `jax.device_put` between NamedShardings lowers to collectives on the devices, never through
  the host. With `donate=True` the source buffers are freed, so the two layouts do not coexist.
  """
  return jax.device_put(tree, target_shardings, donate=donate)
