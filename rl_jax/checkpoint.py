"""Orbax checkpoints of {train state, PRNG keys, host-side state}, resume-first and corruption-safe.

One checkpoint step is one Orbax composite directory with three items:

    <directory>/<step>/
      state/   the device pytree (OCDBT/Zarr via `ocp.args.StandardSave`); typed PRNG key
               leaves are stored as their raw `jax.random.key_data` words
      host/    the caller's JSON dict (data-iterator position, sampler state, metric offsets)
      meta/    our JSON manifest: per-leaf path, shape, dtype, key impl and a 32-bit fingerprint
      _CHECKPOINT_METADATA, commit_success.txt   written by Orbax when the step is committed

Resume-first: the trainer calls `restore_latest(abstract_state)` before anything else and
continues from the returned step. Steps are tried newest-first; a step that is partial
(no commit markers), unreadable (truncated or garbage files) or whose restored arrays do not
match the saved fingerprints is skipped with a `logging.warning` naming the step and the
reason. Orbax writes into `<step>.orbax-checkpoint-tmp-*` and renames on commit, so a save
killed half-way never shows up as a step at all.

Why fingerprints: Zarr chunks in OCDBT are not checksummed, so a flipped bit inside an array
chunk restores silently as a wrong number. The fingerprint of an array with raw bit words
w_0..w_{n-1} (its bytes reinterpreted as uint8/16/32) is

    F = sum_i w_i * (2 i + 1)   mod 2**32,

computed on device at save time and again after restore. 2i+1 is odd, hence invertible mod
2**32, so any single changed word changes F; it is an exact integer reduction, so it does
not depend on the sharding or on the reduction order.

No pickle anywhere: restoring refuses directories holding pickle-based files.

Multi-host: every process must call `save`, `restore_latest`, `restore_dir`, `wait` and
`close` (they contain collectives). Orbax writes each array shard from the process that owns
it and writes the JSON items from the primary process only; the keep/skip decision for a
step is agreed across processes so all of them resume from the same step.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

log = logging.getLogger(__name__)

FORMAT = "rl_jax.checkpoint/1"
ITEMS = ("state", "host", "meta")
# Written last by Orbax when it commits a step (both its rename and commit-file protocols).
COMMIT_MARKERS = ("_CHECKPOINT_METADATA", "commit_success.txt")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".joblib")


@dataclasses.dataclass(frozen=True)
class CheckpointCfg:
  """Where and how often to checkpoint.

  directory: root holding one sub-directory per step (local path or gs://...).
  save_every: `should_save(step)` is true when step % save_every == 0.
  keep: number of newest steps kept on disk (None keeps all).
  async_save: write files in a background thread; `save` returns once arrays are on host.
  enabled: False turns every method into a no-op (restore_latest returns None).
  """
  directory: str
  save_every: int = 100
  keep: int | None = 3
  async_save: bool = True
  enabled: bool = True

  def __post_init__(self):
    if not isinstance(self.save_every, int) or self.save_every < 1:
      raise ValueError(f"CheckpointCfg.save_every must be an int >= 1, got {self.save_every!r}")
    if self.keep is not None and (not isinstance(self.keep, int) or self.keep < 1):
      raise ValueError(f"CheckpointCfg.keep must be None or an int >= 1, got {self.keep!r}")
    if self.enabled and not self.directory:
      raise ValueError("CheckpointCfg.directory must be a non-empty path when enabled")


class _BadStep(Exception):
  """A step that cannot be restored because its files are partial or damaged."""


def abstract_of(tree: Any) -> Any:
  """`jax.ShapeDtypeStruct` pytree of `tree` keeping each array's concrete sharding.

  Use this (not `jax.eval_shape`, whose shardings live on an AbstractMesh) to build the
  `abstract_state` for `restore_latest`. Typed PRNG key arrays keep their key dtype.
  """
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def _is_key(x: Any) -> bool:
  return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _path_str(path) -> str:
  return jax.tree_util.keystr(path)


def _fingerprint(x: jax.Array) -> jax.Array:
  """F = sum_i w_i (2i+1) mod 2**32 over the raw bit words w_i of x (see module docstring)."""
  if x.dtype == jnp.bool_:
    x = x.astype(jnp.uint8)
  bits = 8 * jnp.dtype(x.dtype).itemsize
  words = jax.lax.bitcast_convert_type(x, jnp.dtype(f"uint{min(bits, 32)}"))
  words = words.astype(jnp.uint32).ravel()
  weights = 2 * jax.lax.iota(jnp.uint32, words.size) + 1
  return jnp.sum(words * weights, dtype=jnp.uint32)


@jax.jit
def _fingerprints(leaves: list[jax.Array]) -> list[jax.Array]:
  return [_fingerprint(x) for x in leaves]


def _to_key_data(state: Any) -> Any:
  return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)


def _manifest(data_state: Any, key_impls: dict[str, str]) -> dict[str, Any]:
  """Per-leaf path/shape/dtype/key impl/fingerprint of the key-data form of the state."""
  flat = jax.tree_util.tree_flatten_with_path(data_state)[0]
  fps = jax.device_get(_fingerprints([x for _, x in flat]))
  leaves = []
  for (path, x), fp in zip(flat, fps):
    name = _path_str(path)
    leaves.append({"path": name, "shape": list(x.shape), "dtype": jnp.dtype(x.dtype).name,
                   "key_impl": key_impls.get(name), "fingerprint": int(fp)})
  return {"format": FORMAT, "leaves": leaves}


def _check_leaves(state: Any) -> dict[str, str]:
  """Validates the leaves of `state`; returns {path: key impl} for typed PRNG key leaves."""
  key_impls = {}
  for path, x in jax.tree_util.tree_flatten_with_path(state)[0]:
    if not isinstance(x, (jax.Array, np.ndarray)):
      raise ValueError(f"state leaf {_path_str(path)} is a {type(x).__name__}; expected a "
                       "jax.Array or np.ndarray (wrap Python scalars with jnp.asarray)")
    if _is_key(x):
      key_impls[_path_str(path)] = str(jax.random.key_impl(x))
    elif jax.dtypes.canonicalize_dtype(x.dtype) != x.dtype:
      raise ValueError(f"state leaf {_path_str(path)} has dtype {x.dtype}, which JAX would "
                       f"silently turn into {jax.dtypes.canonicalize_dtype(x.dtype)}")
  return key_impls


def _check_host_state(host_state: Any) -> None:
  """host_state must come back from JSON unchanged (no tuples, int keys or non-finite floats)."""
  if not isinstance(host_state, Mapping):
    raise ValueError(f"host_state must be a JSON-serialisable dict, got {type(host_state).__name__}")
  try:
    text = json.dumps(host_state, allow_nan=False)
  except (TypeError, ValueError) as e:
    raise ValueError(f"host_state is not JSON-serialisable: {e}") from e
  if json.loads(text) != host_state:
    raise ValueError("host_state changes in a JSON round trip; use str keys, lists (not "
                     f"tuples) and plain Python numbers: {text[:200]}")


def _data_abstract(abstract_state: Any) -> Any:
  """Maps typed-key ShapeDtypeStructs to the ShapeDtypeStruct of their key data words."""
  def one(path, sds):
    if not (hasattr(sds, "shape") and hasattr(sds, "dtype")):
      raise ValueError(f"abstract_state leaf {_path_str(path)} is a {type(sds).__name__}; "
                       "expected a jax.ShapeDtypeStruct (see checkpoint.abstract_of)")
    sharding = getattr(sds, "sharding", None)
    if isinstance(sharding, NamedSharding) and isinstance(sharding.mesh, jax.sharding.AbstractMesh):
      raise ValueError(f"abstract_state leaf {_path_str(path)} is sharded over an AbstractMesh "
                       "(as jax.eval_shape returns); build it with checkpoint.abstract_of(state) "
                       "so restore lands on concrete devices")
    if not _is_key(sds):
      return jax.ShapeDtypeStruct(sds.shape, sds.dtype, sharding=sharding)
    data = jax.eval_shape(jax.random.key_data, jax.ShapeDtypeStruct(sds.shape, sds.dtype))
    extra = len(data.shape) - len(sds.shape)
    if isinstance(sharding, NamedSharding):  # the key words stay whole on each device
      sharding = NamedSharding(sharding.mesh, P(*sharding.spec, *(None,) * (len(sds.shape)
                               - len(sharding.spec) + extra)), memory_kind=sharding.memory_kind)
    elif sharding is not None and not isinstance(sharding, jax.sharding.SingleDeviceSharding):
      raise ValueError(f"abstract_state key leaf {_path_str(path)} has a {type(sharding).__name__}"
                       "; use a NamedSharding or SingleDeviceSharding")
    return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=sharding)
  return jax.tree_util.tree_map_with_path(one, abstract_state)


def _check_against_manifest(where: str, meta: Any, abstract_state: Any, data_abstract: Any):
  """ValueError if abstract_state does not describe the saved state; _BadStep if meta is junk."""
  try:
    saved = {leaf["path"]: leaf for leaf in meta["leaves"]} if meta["format"] == FORMAT else None
  except (KeyError, TypeError):
    saved = None
  if saved is None:
    raise _BadStep(f"meta item is not an {FORMAT} manifest")
  wanted = jax.tree_util.tree_flatten_with_path(abstract_state)[0]
  data = jax.tree.leaves(data_abstract)
  names = [_path_str(path) for path, _ in wanted]
  if set(names) != set(saved):
    raise ValueError(f"{where} holds leaves that abstract_state does not: "
                     f"{sorted(set(saved) - set(names))[:5]}; abstract_state has leaves the "
                     f"checkpoint lacks: {sorted(set(names) - set(saved))[:5]}")
  for name, (_, sds), d in zip(names, wanted, data):
    leaf = saved[name]
    if tuple(leaf["shape"]) != tuple(d.shape) or leaf["dtype"] != jnp.dtype(d.dtype).name:
      raise ValueError(f"{where} leaf {name}: saved {leaf['dtype']}{leaf['shape']}, "
                       f"abstract_state wants {d.dtype}{list(d.shape)}")
    if _is_key(sds) and jax.eval_shape(lambda x: jax.random.wrap_key_data(
        x, impl=leaf["key_impl"]), d).dtype != sds.dtype:
      raise ValueError(f"{where} leaf {name}: saved key impl {leaf['key_impl']!r} does not "
                       f"match abstract dtype {sds.dtype}")


def _check_no_pickle(directory: epath.Path) -> None:
  if not directory.exists():
    return
  if not directory.is_dir():
    raise ValueError(f"checkpoint path {directory} is a file, not an Orbax checkpoint directory")
  for path in directory.iterdir():
    if path.name.lower().endswith(PICKLE_SUFFIXES):
      raise ValueError(f"refusing to read {path}: a pickle-based file; rl_jax restores only "
                       "Orbax checkpoints and never unpickles")


def _restore_step_dir(step_dir: epath.Path, abstract_state: Any) -> tuple[Any, dict]:
  """Restores one committed step directory; raises _BadStep for damaged data."""
  where = f"checkpoint {step_dir}"
  missing = [m for m in COMMIT_MARKERS + ITEMS if not (step_dir / m).exists()]
  if missing:
    raise _BadStep(f"not a committed Orbax checkpoint (missing {', '.join(missing)})")
  data_abstract = _data_abstract(abstract_state)
  with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as reader:
    try:
      meta = reader.restore(step_dir, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    except Exception as e:  # any read or decode failure of the manifest means damage
      raise _BadStep(f"unreadable meta item ({type(e).__name__}: {e})") from e
    _check_against_manifest(where, meta, abstract_state, data_abstract)
    try:
      restored = reader.restore(step_dir, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(data_abstract), host=ocp.args.JsonRestore()))
    except Exception as e:  # tensorstore/JSON errors from truncated or garbage files
      raise _BadStep(f"unreadable files ({type(e).__name__}: {str(e)[:300]})") from e
  data_state, host_state = restored.state, restored.host
  flat = jax.tree_util.tree_flatten_with_path(data_state)[0]
  saved = {leaf["path"]: leaf for leaf in meta["leaves"]}
  for (path, _), fp in zip(flat, jax.device_get(_fingerprints([x for _, x in flat]))):
    if int(fp) != saved[_path_str(path)]["fingerprint"]:
      raise _BadStep(f"leaf {_path_str(path)} does not match its saved fingerprint")
  state = jax.tree.map(
      lambda sds, x, path: jax.random.wrap_key_data(x, impl=saved[path]["key_impl"])
      if _is_key(sds) else x, abstract_state, data_state,
      jax.tree_util.tree_map_with_path(lambda p, _: _path_str(p), abstract_state))
  if not isinstance(host_state, dict):
    raise _BadStep(f"host item is a {type(host_state).__name__}, not a dict")
  return state, host_state


def _all_processes_ok(ok: bool) -> bool:
  """True only if `ok` holds on every process, so all processes pick the same step."""
  if jax.process_count() == 1:
    return ok
  return bool(np.all(multihost_utils.process_allgather(np.asarray(ok))))


def restore_dir(path: str | os.PathLike, abstract_state: Any) -> tuple[Any, dict]:
  """Restores one step directory (e.g. `<run>/checkpoints/200`) -> (state, host_state).

  Raises ValueError naming `path` if it is not a committed Orbax checkpoint written by this
  module, holds pickle-based files, or is damaged. All processes must call it.
  """
  step_dir = epath.Path(path)
  if not step_dir.is_dir():
    raise ValueError(f"{step_dir} is not an Orbax checkpoint directory (missing or not a dir)")
  _check_no_pickle(step_dir)
  try:
    return _restore_step_dir(step_dir, abstract_state)
  except _BadStep as e:
    raise ValueError(f"cannot restore {step_dir}: {e}") from e


class Checkpointer:
  """Periodic, retained, optionally async checkpoints of (step, state, host_state).

  `state` is any JAX pytree (TrainState with params/opt_state/step, typed PRNG keys, None
  subtrees); `host_state` is a JSON dict. Every process must call every method.
  """

  def __init__(self, cfg: CheckpointCfg):
    self.cfg = cfg
    self._bad_steps: set[int] = set()
    self._manager = None
    self.directory = None
    if not cfg.enabled:
      return
    directory = cfg.directory if "://" in cfg.directory else os.path.abspath(cfg.directory)
    self.directory = epath.Path(directory)
    _check_no_pickle(self.directory)
    self._manager = ocp.CheckpointManager(self.directory, options=ocp.CheckpointManagerOptions(
        enable_async_checkpointing=cfg.async_save, create=True,
        preservation_policy=ocp.checkpoint_managers.LatestN(cfg.keep)))

  @property
  def enabled(self) -> bool:
    return self.cfg.enabled

  def should_save(self, step: int) -> bool:
    return self.cfg.enabled and step % self.cfg.save_every == 0

  def save(self, step: int, state: Any, host_state: Mapping[str, Any], force: bool = False) -> bool:
    """Saves `state` and `host_state` as `step` if `should_save(step)` or `force`.

    Returns True if a save was started. With async_save the arrays are copied to host before
    this returns (so the caller may donate them); files land in the background (`wait()`).
    A step that already exists is left alone (False), unless `restore_latest` found it damaged,
    in which case it is replaced.
    """
    if not self.cfg.enabled:
      return False
    if self._manager is None:
      raise RuntimeError(f"Checkpointer for {self.directory} is closed")
    if not isinstance(step, (int, np.integer)) or step < 0:
      raise ValueError(f"save step must be an int >= 0, got {step!r}")
    if not (force or self.should_save(step)):
      return False
    _check_host_state(host_state)
    key_impls = _check_leaves(state)
    if step in self._manager.all_steps():
      if step not in self._bad_steps:
        log.info("checkpoint step %d already exists in %s; not saving it again", step,
                 self.directory)
        return False
      log.warning("replacing damaged checkpoint step %d in %s", step, self.directory)
      self._manager.delete(step)
    self._bad_steps.discard(step)
    data_state = _to_key_data(state)
    meta = _manifest(data_state, key_impls)
    return bool(self._manager.save(int(step), force=True, args=ocp.args.Composite(
        state=ocp.args.StandardSave(data_state), host=ocp.args.JsonSave(dict(host_state)),
        meta=ocp.args.JsonSave(meta))))

  def restore_latest(self, abstract_state: Any) -> tuple[int, Any, dict] | None:
    """Newest restorable (step, state, host_state), or None if no step exists.

    `abstract_state` is a pytree of jax.ShapeDtypeStruct with concrete shardings (see
    `abstract_of`); arrays are read straight into those shardings, typed keys come back typed.
    Damaged steps are skipped with a warning. Raises ValueError if `abstract_state` does not
    describe the saved state, if the directory holds pickle files, or if steps exist but
    none of them can be restored (starting from scratch over them would lose the run).
    """
    if not self.cfg.enabled:
      return None
    if self._manager is None:
      raise RuntimeError(f"Checkpointer for {self.directory} is closed")
    self.wait()
    _check_no_pickle(self.directory)
    self._manager.reload()
    steps = sorted(self._manager.all_steps(), reverse=True)
    reasons = []
    for step in steps:
      step_dir = self.directory / str(step)
      _check_no_pickle(step_dir)
      try:
        state, host_state = _restore_step_dir(step_dir, abstract_state)
        error = None
      except _BadStep as e:
        error = str(e)
      if _all_processes_ok(error is None):
        return step, state, host_state
      error = error or "another process could not restore it"
      log.warning("skipping checkpoint step %d in %s: %s", step, self.directory, error)
      self._bad_steps.add(step)
      reasons.append(f"step {step}: {error}")
    if reasons:
      raise ValueError(f"no restorable checkpoint in {self.directory}; " + "; ".join(reasons))
    return None

  def all_steps(self) -> list[int]:
    """Steps saved (or being saved) in the directory, oldest first."""
    return sorted(self._manager.all_steps()) if self._manager is not None else []

  def wait(self) -> None:
    """Blocks until every async save has been committed (raises if one failed)."""
    if self._manager is not None:
      self._manager.wait_until_finished()

  def close(self) -> None:
    if self._manager is not None:
      self._manager.close()
      self._manager = None

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
