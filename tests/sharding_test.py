"""Sharding rules on 8 fake CPU devices: specs, placement, numerics under sharding, fallbacks."""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from rl_jax import sharding as sh
from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config
from rl_jax.types import TrainState

MESHES = [(8, 1, 1), (2, 2, 2), (1, 2, 4)]

# The rule table written out by hand (path -> spec), independent of the regexes.
EXPECTED = {
    "embed/embedding": ("tensor", "fsdp"),
    "layers/attn/q_proj/kernel": (None, "fsdp", "tensor"),
    "layers/attn/k_proj/kernel": (None, "fsdp", "tensor"),
    "layers/attn/v_proj/kernel": (None, "fsdp", "tensor"),
    "layers/attn/o_proj/kernel": (None, "tensor", "fsdp"),
    "layers/mlp/gate_proj/kernel": (None, "fsdp", "tensor"),
    "layers/mlp/up_proj/kernel": (None, "fsdp", "tensor"),
    "layers/mlp/down_proj/kernel": (None, "tensor", "fsdp"),
    "layers/input_norm/scale": (),
    "layers/post_attn_norm/scale": (),
    "layers/attn/q_norm/scale": (),
    "layers/attn/k_norm/scale": (),
    "final_norm/scale": (),
    "lm_head/kernel": ("fsdp", "tensor"),
}


def _flat(tree):
  return {sh.path_str(p): x for p, x in jax.tree.leaves_with_path(
      tree, is_leaf=lambda x: isinstance(x, P))}


@functools.lru_cache(maxsize=None)
def _tiny():
  """Tiny untied model with random numpy weights (init_params is slow to trace on 2 cores)."""
  cfg = get_model_config("tiny", tie_embeddings=False)
  rng = np.random.default_rng(0)

  def fill(path, x):
    if sh.path_str(path).endswith("scale"):  # RMSNorm scales near 1
      return jnp.asarray(1.0 + 0.1 * rng.standard_normal(x.shape), x.dtype)
    return jnp.asarray(rng.standard_normal(x.shape) * x.shape[-2] ** -0.5, x.dtype)

  return cfg, jax.tree.map_with_path(fill, qwen3.abstract_params(cfg))


def _mesh(shape):
  return sh.make_mesh(sh.MeshCfg(*shape))


@pytest.mark.parametrize("shape", MESHES)
def test_tiny_params_sharded_as_the_table_and_roundtrip(shape):
  cfg, params = _tiny()
  mesh = _mesh(shape)
  sizes = dict(zip(("data", "fsdp", "tensor"), shape))
  specs = sh.param_specs(params, mesh)
  flat_specs = _flat(specs)
  assert set(flat_specs) == set(EXPECTED)
  sharded = sh.shard_tree(params, mesh, specs)
  for name, x in _flat(sharded).items():
    want = EXPECTED[name]
    assert tuple(flat_specs[name]) == want, name
    # Local shard shape = global dim / axis size on the sharded dims (tiny dims all divide 8).
    local = list(_flat(params)[name].shape)
    for dim, axis in enumerate(want):
      if axis is not None:
        local[dim] //= sizes[axis]
    assert x.addressable_shards[0].data.shape == tuple(local), name
  for a, b in zip(jax.tree.leaves(jax.device_get(sharded)), jax.tree.leaves(params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@functools.lru_cache(maxsize=None)
def _reference_forward():
  cfg, params = _tiny()
  b, t = 8, 8
  tokens = jax.random.randint(jax.random.key(1), (b, t), 0, cfg.vocab_size)
  valid = jnp.ones((b, t), jnp.int32).at[:2, :3].set(0)  # some left padding
  positions = qwen3.positions_from_mask(valid)
  fwd = jax.jit(functools.partial(qwen3.forward, cfg=cfg))
  return fwd, tokens, positions, valid, fwd(params, tokens, positions, valid)[0]


@pytest.mark.parametrize("shape", MESHES)
def test_forward_matches_unsharded(shape):
  cfg, params = _tiny()
  mesh = _mesh(shape)
  fwd, tokens, positions, valid, ref = _reference_forward()
  data_sh = jax.sharding.NamedSharding(mesh, sh.batch_spec())
  out, _ = fwd(sh.shard_tree(params, mesh, sh.param_specs(params, mesh)),
               *(jax.device_put(x, data_sh) for x in (tokens, positions, valid)))
  np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mesh_shape", [
    dict(data=1, fsdp=16, tensor=1), dict(data=2, fsdp=4, tensor=2),
    dict(data=1, fsdp=3, tensor=5), dict(data=1, fsdp=64, tensor=8)])
def test_qwen3_4b_specs_are_valid(mesh_shape):
  shapes = qwen3.abstract_params(get_model_config("qwen3_4b"))
  flat_specs = _flat(sh.param_specs(shapes, mesh_shape))
  for name, x in _flat(shapes).items():
    spec = flat_specs[name]
    for dim, entry in enumerate(spec):
      axes = entry if isinstance(entry, tuple) else (entry,) if entry else ()
      assert x.shape[dim] % math.prod(mesh_shape[a] for a in axes) == 0, (name, spec)
    # Kept axes are the table's axes where the hand-checked size divides, else dropped.
    for dim, axis in enumerate(EXPECTED[name]):
      got = spec[dim] if dim < len(spec) else None
      assert got == (axis if axis and x.shape[dim] % mesh_shape[axis] == 0 else None), name


def test_fallback_by_hand():
  # Qwen3-4B: D=2560, q out=32*128=4096, V=151936 = 2^7 * 1187. fsdp=3 divides none of them;
  # tensor=5 divides D only (never in a tensor slot); tensor=8 divides V and 4096.
  shapes = qwen3.abstract_params(get_model_config("qwen3_4b"))
  s = _flat(sh.param_specs(shapes, dict(data=1, fsdp=3, tensor=8)))
  assert s["embed/embedding"] == P("tensor", None)
  assert s["layers/attn/q_proj/kernel"] == P(None, None, "tensor")
  assert s["layers/attn/o_proj/kernel"] == P(None, "tensor", None)
  s = _flat(sh.param_specs(shapes, dict(data=1, fsdp=5, tensor=3)))
  assert s["embed/embedding"] == P(None, "fsdp")
  assert s["layers/mlp/down_proj/kernel"] == P(None, None, "fsdp")  # 9728 % 3 != 0


def test_unmatched_param_path_raises():
  with pytest.raises(ValueError, match="encoder/proj/kernel"):
    sh.param_specs({"encoder": {"proj": {"kernel": np.zeros((4, 4))}}})


def test_mesh_cfg_sizes_and_errors():
  assert sh.MeshCfg(2, -1, 2).resolve(8) == dict(data=2, fsdp=2, tensor=2)
  assert sh.MeshCfg.parse("4x4") == sh.MeshCfg(1, 4, 4)
  assert sh.MeshCfg.parse("2x-1x1").resolve(8)["fsdp"] == 4
  assert dict(_mesh((1, 2, 4)).shape) == dict(data=1, fsdp=2, tensor=4)
  assert all(t == jax.sharding.AxisType.Auto for t in _mesh((8, 1, 1)).axis_types)
  with pytest.raises(ValueError, match="product 16 != 8"):
    sh.make_mesh(sh.MeshCfg(2, 2, 4))
  with pytest.raises(ValueError, match="not divisible"):
    sh.make_mesh(sh.MeshCfg(3, -1, 1))
  with pytest.raises(ValueError, match="at most one axis"):
    sh.MeshCfg(-1, -1, 1).resolve(8)
  with pytest.raises(ValueError, match="mesh string"):
    sh.MeshCfg.parse("4by4")


def test_opt_state_specs_mirror_params_and_replicate_scalars():
  cfg, params = _tiny()
  specs = sh.param_specs(params)
  opt = jax.eval_shape(optax.adamw(1e-3).init, params)
  ospecs = sh.opt_state_specs(opt, specs)
  adam = ospecs[0]
  assert adam.count == P()
  assert _flat(adam.mu) == _flat(specs) == _flat(adam.nu)
  # A rank-2 statistic under a rank-3 parameter's path (Adafactor-style) is replicated.
  odd = {"v_row": {"layers": {"attn": {"q_proj": {"kernel": np.zeros((3, 128))}}}}}
  assert _flat(sh.opt_state_specs(odd, specs)) == {"v_row/layers/attn/q_proj/kernel": P()}
  state = TrainState(step=jnp.int32(0), params=params, opt_state=opt)
  st_specs = sh.train_state_specs(state, dict(data=1, fsdp=2, tensor=4))
  assert st_specs.step == P() and st_specs.opt_state[0].mu["embed"]["embedding"] == P(
      "tensor", "fsdp")


def test_batch_and_kv_cache_specs():
  cfg, _ = _tiny()  # K = 2 kv heads
  cache = jax.eval_shape(lambda: qwen3.init_cache(cfg, 8, 16))
  on_4 = sh.kv_cache_spec(cache, dict(data=1, fsdp=2, tensor=4))
  assert on_4.k_LxBxSxKxH == P(None, ("data", "fsdp"), None, None, None)  # 2 % 4 != 0
  on_2 = sh.kv_cache_spec(cache, dict(data=2, fsdp=2, tensor=2))
  assert on_2.v_LxBxSxKxH == P(None, ("data", "fsdp"), None, "tensor", None)
  # Batch 6 on data=2 x fsdp=4: only the "data" prefix divides it.
  odd = sh.kv_cache_spec(jax.eval_shape(lambda: qwen3.init_cache(cfg, 6, 16)),
                         dict(data=2, fsdp=4, tensor=1))
  assert odd.k_LxBxSxKxH[1] == "data"
  assert sh.batch_spec() == P(("data", "fsdp"))
  bspecs = sh.batch_specs({"tokens": np.zeros((8, 5)), "n": np.zeros(())},
                          dict(data=2, fsdp=2, tensor=2))
  assert bspecs == {"tokens": P(("data", "fsdp")), "n": P()}


def test_reshard_to_sampler_layout():
  _, params = _tiny()
  mesh = _mesh((1, 2, 4))
  specs = sh.param_specs(params, mesh)
  trainer = sh.shard_tree(params, mesh, specs)
  sampler_specs = sh.without_axes(specs, ("fsdp",))
  assert sampler_specs["layers"]["attn"]["o_proj"]["kernel"] == P(None, "tensor", None)
  sampler = sh.reshard(trainer, sh.named_shardings(mesh, sampler_specs))
  q = sampler["layers"]["attn"]["q_proj"]["kernel"]
  assert q.sharding.spec == P(None, None, "tensor")
  assert q.addressable_shards[0].data.shape == (3, 128, 128 // 4)
  np.testing.assert_array_equal(np.asarray(q), np.asarray(params["layers"]["attn"]["q_proj"]
                                                           ["kernel"]))


def test_fit_spec_fallback_is_logged(caplog):
  with caplog.at_level("WARNING", logger="rl_jax.sharding"):
    spec = sh.fit_spec(P(("data", "fsdp"), "tensor"), (6, 8), dict(data=2, fsdp=4, tensor=3),
                       "test/odd_leaf")
  assert spec == P("data", None)
  assert "test/odd_leaf dim 0" in caplog.text and "test/odd_leaf dim 1" in caplog.text
  with pytest.raises(ValueError, match="rank 1"):
    sh.fit_spec(P(None, "fsdp"), (4,), dict(fsdp=2), "short")
  with pytest.raises(ValueError, match="not in the mesh"):
    sh.fit_spec(P("model"), (4,), dict(fsdp=2), "unknown_axis")
