"""Checkpoint round trips, retention, save cadence and damage handling on tiny pytrees.

References are the saved values themselves (copied to numpy before saving) and hand-written
expectations for step lists; nothing is compared against the module's own fingerprints.
"""
import json
import logging
import os
import pickle
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from rl_jax import checkpoint as ckpt_lib


def _state(seed: int):
  key = jax.random.key(seed)
  k_w, k_b, k_g = jax.random.split(key, 3)
  params = {"w": jax.random.normal(k_w, (16, 8)),
            "b": jax.random.normal(k_b, (3,)).astype(jnp.bfloat16)}
  opt = optax.adamw(1e-3)
  opt_state = opt.init(params)
  grads = jax.tree.map(lambda p: jax.random.normal(k_g, p.shape).astype(p.dtype), params)
  _, opt_state = opt.update(grads, opt_state, params)  # non-zero mu/nu/count
  return {"train": {"params": params, "opt_state": opt_state, "step": jnp.int32(seed)},
          "key": jax.random.key(seed + 100), "keys_N": jax.random.split(key, 5), "ref": None}


HOST = {"data": {"epoch": 2, "offset": 17}, "sampler": {"seed": 5, "draws": [1, 2, 3]},
        "metrics_offset": 40, "lr_scale": 0.1, "name": "run-a"}


def _bits(x) -> np.ndarray:
  """Raw bit pattern of an array (typed keys through their key data) for bitwise compares."""
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  x = np.asarray(x)
  return x.view(f"uint{8 * x.dtype.itemsize}") if x.dtype.itemsize in (1, 2, 4, 8) else x


def _assert_bitwise(got, want):
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert g.dtype == w.dtype and g.shape == w.shape
    np.testing.assert_array_equal(_bits(g), _bits(w))


def _cfg(tmp_path, **kw):
  kw = {"save_every": 1, "keep": 5, "async_save": False, **kw}
  return ckpt_lib.CheckpointCfg(directory=str(tmp_path / "ckpt"), **kw)


def _no_pickle(*_, **__):
  raise AssertionError("pickle must never be used")


def test_round_trip_is_bitwise_with_typed_keys_and_adamw_state(tmp_path, monkeypatch):
  for name in ("load", "loads", "dump", "dumps"):
    monkeypatch.setattr(pickle, name, _no_pickle)
  state = _state(1)
  with ckpt_lib.Checkpointer(_cfg(tmp_path)) as ckpt:
    assert ckpt.save(10, state, HOST)
  with ckpt_lib.Checkpointer(_cfg(tmp_path)) as ckpt:  # a fresh process resuming
    step, got, host = ckpt.restore_latest(ckpt_lib.abstract_of(state))
  assert step == 10 and host == HOST
  _assert_bitwise(got, state)
  assert got["train"]["params"]["b"].dtype == jnp.bfloat16
  assert isinstance(got["train"]["opt_state"][0], optax.ScaleByAdamState)
  assert jax.dtypes.issubdtype(got["key"].dtype, jax.dtypes.prng_key)
  np.testing.assert_array_equal(jax.random.normal(got["key"], (3,)),
                                jax.random.normal(state["key"], (3,)))
  # The host item is plain JSON on disk.
  assert json.loads((tmp_path / "ckpt" / "10" / "host" / "metadata").read_text()) == HOST


def test_async_save_copies_arrays_before_returning(tmp_path):
  state = _state(2)
  want = jax.tree.map(lambda x: np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(
      x.dtype, jax.dtypes.prng_key) else x), state)
  ckpt = ckpt_lib.Checkpointer(_cfg(tmp_path, async_save=True))
  assert ckpt.save(3, state, HOST)
  for x in jax.tree.leaves(state):  # as if the next train step donated the buffers
    x.delete()
  ckpt.wait()
  fresh = _state(2)
  step, got, host = ckpt.restore_latest(ckpt_lib.abstract_of(fresh))
  ckpt.close()
  assert step == 3 and host == HOST
  got_np = jax.tree.map(lambda x: np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(
      x.dtype, jax.dtypes.prng_key) else x), got)
  _assert_bitwise(got_np, want)


def test_keep_n_retention(tmp_path):
  state = _state(0)
  with ckpt_lib.Checkpointer(_cfg(tmp_path, keep=2, async_save=True)) as ckpt:
    for step in range(1, 6):
      assert ckpt.save(step, state, HOST)
    ckpt.wait()
    assert ckpt.all_steps() == [4, 5]
  assert sorted(p for p in os.listdir(tmp_path / "ckpt") if p.isdigit()) == ["4", "5"]


def test_save_every_force_and_existing_steps(tmp_path):
  state = _state(0)
  with ckpt_lib.Checkpointer(_cfg(tmp_path, save_every=3)) as ckpt:
    assert [ckpt.should_save(s) for s in range(1, 7)] == [False, False, True, False, False, True]
    assert not ckpt.save(1, state, HOST)
    assert ckpt.save(3, state, HOST)
    assert ckpt.save(4, state, HOST, force=True)
    assert not ckpt.save(3, state, HOST)  # already on disk: left alone
    assert ckpt.all_steps() == [3, 4]
  off = ckpt_lib.CheckpointCfg(directory=str(tmp_path / "off"), save_every=1, enabled=False)
  with ckpt_lib.Checkpointer(off) as ckpt:
    assert not ckpt.save(1, state, HOST, force=True)
    assert ckpt.restore_latest(ckpt_lib.abstract_of(state)) is None
  assert not (tmp_path / "off").exists()


def test_bad_config_and_host_state_are_rejected(tmp_path):
  with pytest.raises(ValueError, match="save_every"):
    ckpt_lib.CheckpointCfg(directory="x", save_every=0)
  with pytest.raises(ValueError, match="keep"):
    ckpt_lib.CheckpointCfg(directory="x", keep=0)
  with ckpt_lib.Checkpointer(_cfg(tmp_path)) as ckpt:
    with pytest.raises(ValueError, match="JSON round trip"):
      ckpt.save(1, _state(0), {"draws": (1, 2)})  # a tuple would come back as a list
    with pytest.raises(ValueError, match="not JSON-serialisable"):
      ckpt.save(1, _state(0), {"rng": np.random.default_rng(0)})
    with pytest.raises(ValueError, match=r"\['step'\]"):
      ckpt.save(1, {"step": 3}, HOST)
    assert ckpt.all_steps() == []


def test_restore_latest_on_empty_or_missing_dir_returns_none(tmp_path):
  abstract = ckpt_lib.abstract_of(_state(0))
  with ckpt_lib.Checkpointer(_cfg(tmp_path)) as ckpt:
    assert ckpt.restore_latest(abstract) is None
  (tmp_path / "empty").mkdir()
  with ckpt_lib.Checkpointer(ckpt_lib.CheckpointCfg(directory=str(tmp_path / "empty"))) as ckpt:
    assert ckpt.restore_latest(abstract) is None


def _array_files(step_dir) -> list:
  """The OCDBT data files of the state item (b-tree nodes with inlined chunks, chunk files)."""
  files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
  assert files, f"no OCDBT data files under {step_dir}"
  return files


# A failed tensorstore read can leave an Orbax callback for an already closed event loop.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("damage", ["garbage", "truncate", "bitflip", "swapped"])
def test_damaged_latest_step_falls_back_with_warning(tmp_path, caplog, damage):
  old, new = _state(1), _state(2)
  with ckpt_lib.Checkpointer(_cfg(tmp_path)) as ckpt:
    ckpt.save(1, old, {"at": 1})
    ckpt.save(2, new, {"at": 2})
  step_dir = tmp_path / "ckpt" / "2"
  if damage == "swapped":
    # Well-formed array files holding other values (what silent bit rot looks like to Orbax,
    # whose chunks carry no checksum): only the saved fingerprints can tell.
    with ckpt_lib.Checkpointer(_cfg(tmp_path / "other")) as ckpt:
      ckpt.save(2, _state(3), {"at": 2})
    shutil.rmtree(step_dir / "state")
    shutil.copytree(tmp_path / "other" / "ckpt" / "2" / "state", step_dir / "state")
  else:
    for path in _array_files(step_dir):
      data = bytearray(path.read_bytes())
      if damage == "garbage":
        data = bytearray(b"\x5a" * len(data))
      elif damage == "truncate":
        data = data[: len(data) // 2]
      else:
        data[len(data) // 2] ^= 0x10
      path.write_bytes(bytes(data))
  caplog.set_level(logging.WARNING, logger="rl_jax.checkpoint")
  with ckpt_lib.Checkpointer(_cfg(tmp_path)) as ckpt:
    step, got, host = ckpt.restore_latest(ckpt_lib.abstract_of(old))
    warnings = [r.getMessage() for r in caplog.records if r.name == "rl_jax.checkpoint"]
    assert step == 1 and host == {"at": 1}
    _assert_bitwise(got, old)
    assert len(warnings) == 1 and "step 2" in warnings[0], warnings
    if damage == "swapped":
      assert "fingerprint" in warnings[0]
    # Re-reaching step 2 replaces the damaged copy instead of keeping it forever.
    assert ckpt.save(2, new, {"at": 2})
    assert ckpt.restore_latest(ckpt_lib.abstract_of(old))[0] == 2


def test_partial_steps_are_ignored(tmp_path, caplog):
  state = _state(1)
  root = tmp_path / "ckpt"
  with ckpt_lib.Checkpointer(_cfg(tmp_path)) as ckpt:
    ckpt.save(5, state, {"at": 5})
  # A save killed before Orbax's rename-on-commit: a tmp-suffixed directory.
  shutil.copytree(root / "5", root / "9.orbax-checkpoint-tmp-1712345678")
  # A step directory copied without its commit markers (interrupted rsync, say).
  shutil.copytree(root / "5", root / "7")
  for marker in ("_CHECKPOINT_METADATA", "commit_success.txt"):
    os.remove(root / "7" / marker)
  caplog.set_level(logging.WARNING, logger="rl_jax.checkpoint")
  with ckpt_lib.Checkpointer(_cfg(tmp_path)) as ckpt:
    assert 9 not in ckpt.all_steps()
    step, got, host = ckpt.restore_latest(ckpt_lib.abstract_of(state))
  assert step == 5 and host == {"at": 5}
  _assert_bitwise(got, state)
  warnings = [r.getMessage() for r in caplog.records if r.name == "rl_jax.checkpoint"]
  assert len(warnings) == 1 and "step 7" in warnings[0] and "commit_success.txt" in warnings[0]


def test_all_steps_damaged_raises_instead_of_starting_over(tmp_path):
  with ckpt_lib.Checkpointer(_cfg(tmp_path)) as ckpt:
    ckpt.save(1, _state(1), HOST)
  os.remove(tmp_path / "ckpt" / "1" / "commit_success.txt")
  with ckpt_lib.Checkpointer(_cfg(tmp_path)) as ckpt:
    with pytest.raises(ValueError, match="no restorable checkpoint.*step 1"):
      ckpt.restore_latest(ckpt_lib.abstract_of(_state(1)))


def test_abstract_mismatch_is_a_caller_error_not_damage(tmp_path):
  state = _state(1)
  with ckpt_lib.Checkpointer(_cfg(tmp_path)) as ckpt:
    ckpt.save(1, state, HOST)
    wrong = ckpt_lib.abstract_of(state)
    wrong["train"]["params"]["w"] = jax.ShapeDtypeStruct((5, 3), jnp.float32)
    with pytest.raises(ValueError, match=r"\['w'\].*\[16, 8\]"):
      ckpt.restore_latest(wrong)
    with pytest.raises(ValueError, match="AbstractMesh|abstract_of|leaves"):
      ckpt.restore_latest({"other": jax.ShapeDtypeStruct((1,), jnp.float32)})


def test_pickle_files_and_non_orbax_paths_are_refused(tmp_path):
  state = _state(1)
  with ckpt_lib.Checkpointer(_cfg(tmp_path)) as ckpt:
    ckpt.save(1, state, HOST)
  step_file = tmp_path / "ckpt" / "1" / "optimizer.pt"
  step_file.write_bytes(b"\x80\x04N.")  # pickle of None
  with ckpt_lib.Checkpointer(_cfg(tmp_path)) as ckpt:
    with pytest.raises(ValueError, match="optimizer.pt"):
      ckpt.restore_latest(ckpt_lib.abstract_of(state))
  with pytest.raises(ValueError, match="optimizer.pt"):
    ckpt_lib.restore_dir(tmp_path / "ckpt" / "1", ckpt_lib.abstract_of(state))
  step_file.unlink()
  (tmp_path / "ckpt" / "model.pkl").write_bytes(b"\x80\x04N.")
  with pytest.raises(ValueError, match="model.pkl"):
    ckpt_lib.Checkpointer(_cfg(tmp_path))
  other = tmp_path / "hf_export"
  other.mkdir()
  (other / "config.json").write_text("{}")
  with pytest.raises(ValueError, match="hf_export.*not a committed Orbax checkpoint"):
    ckpt_lib.restore_dir(other, ckpt_lib.abstract_of(state))
  with pytest.raises(ValueError, match="does_not_exist"):
    ckpt_lib.restore_dir(tmp_path / "does_not_exist", ckpt_lib.abstract_of(state))
  got, host = ckpt_lib.restore_dir(tmp_path / "ckpt" / "1", ckpt_lib.abstract_of(state))
  assert host == HOST
  _assert_bitwise(got, state)


def test_restore_into_sharded_target_on_8_devices(tmp_path):
  assert jax.device_count() == 8
  mesh = jax.make_mesh((8,), ("x",))
  sharding = NamedSharding(mesh, P("x"))
  state = {"w_8x4": jnp.arange(32, dtype=jnp.float32).reshape(8, 4),
           "keys_8": jax.random.split(jax.random.key(3), 8)}  # saved from one device
  with ckpt_lib.Checkpointer(_cfg(tmp_path, async_save=True)) as ckpt:
    ckpt.save(1, state, HOST)
    ckpt.wait()
    abstract = {name: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)
                for name, x in state.items()}
    _, got, _ = ckpt.restore_latest(abstract)
    with pytest.raises(ValueError, match="abstract_of"):
      ckpt.restore_latest(jax.eval_shape(lambda: got))  # AbstractMesh shardings
  _assert_bitwise(got, state)
  assert got["w_8x4"].sharding == sharding and got["keys_8"].sharding == sharding
  shards = got["w_8x4"].addressable_shards
  assert len(shards) == 8 and {s.data.shape for s in shards} == {(1, 4)}
  for s in shards:  # row i lives on the device that owns slice i
    np.testing.assert_array_equal(np.asarray(s.data), np.arange(32.).reshape(8, 4)[s.index])
