"""LoRA adapters: the adapted projection against a numpy formula, merge == base + adapters,
adapters off == the base model, only adapters train (RL, SFT, preference steps), sharding
rules, HF / PEFT export, and a `:runlocal` LoRA config through rl_jax.main."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rl_jax import logprobs, main, optim, sharding
from rl_jax.algorithms import losses
from rl_jax.models import lora, qwen3, weights
from rl_jax.models.config import get_model_config
from rl_jax.preference_step import PairBatch, PreferenceCfg, PreferenceKnobs, make_preference_step
from rl_jax.sft import SFTCfg, sft_step
from rl_jax.types import Batch, TrainState
from rl_jax.update import UpdateCfg, UpdateKnobs, init_train_state, update_step

BASE = get_model_config("tiny", vocab_size=40, num_layers=2, hidden_size=32, num_heads=2,
                        num_kv_heads=1, head_dim=16, intermediate_size=48, max_seq_len=32)
CFG = BASE.replace(lora_rank=4, lora_alpha=8.0)
B, L = 4, 12


def _with_random_adapters(params, seed=1):
  """Adapters as after training: B drawn at random too (at init B = 0 and they do nothing)."""
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map_with_path(
      lambda p, x: jnp.asarray(rng.normal(0, 0.3, x.shape), x.dtype)
      if p[-1].key == "lora_b" else x, params)


def _tokens(seed=0):
  rng = np.random.default_rng(seed)
  tokens = jnp.asarray(rng.integers(1, 40, (B, L)), jnp.int32)
  valid = np.ones((B, L), bool)
  valid[0, :3] = False  # left padding
  return tokens, jnp.asarray(valid)


def _logits(params, cfg, tokens, valid):
  h, _ = qwen3.forward(params, tokens, qwen3.positions_from_mask(valid), valid, cfg=cfg)
  return np.asarray(qwen3.logits(params, h, cfg=cfg))


PARAMS = _with_random_adapters(qwen3.init_params(CFG, jax.random.key(0)))


def test_adapted_projection_is_x_w_plus_scaled_x_a_b():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 3, 32)).astype(np.float32)
  q = PARAMS["layers"]["attn"]["q_proj"]
  w, a, b = (np.asarray(q[k][1]) for k in ("kernel", "lora_a", "lora_b"))
  linear = qwen3.Linear(32, 32, cfg=CFG, rngs=nnx.Rngs(0), name="q_proj")
  linear.kernel.value, linear.lora_a.value, linear.lora_b.value = map(jnp.asarray, (w, a, b))
  expected = x @ w + (8.0 / 4) * (x @ a) @ b
  np.testing.assert_allclose(np.asarray(linear(jnp.asarray(x))), expected, rtol=1e-5, atol=1e-6)
  assert a.shape == (32, 4) and b.shape == (4, 32)


def test_init_adapters_leave_the_model_unchanged_and_base_init_is_the_same():
  fresh = qwen3.init_params(CFG, jax.random.key(0))
  base_params = qwen3.init_params(BASE, jax.random.key(0))
  for x, y in zip(jax.tree.leaves(lora.base(fresh, CFG)[0]), jax.tree.leaves(base_params)):
    np.testing.assert_array_equal(x, y)
  assert not np.any(np.asarray(fresh["layers"]["mlp"]["down_proj"]["lora_b"]))
  tokens, valid = _tokens()
  np.testing.assert_array_equal(_logits(fresh, CFG, tokens, valid),
                                _logits(base_params, BASE, tokens, valid))
  assert lora.adapters(fresh)["layers"]["mlp"]["gate_proj"]["lora_a"].dtype == jnp.float32
  assert CFG.num_adapter_params() == sum(x.size for x in jax.tree.leaves(lora.adapters(fresh)))
  # 2 layers * r=4 * (q 32+32, k 32+16, v 32+16, o 32+32, gate/up 32+48 each, down 48+32)
  assert CFG.num_adapter_params() == 2 * 4 * (64 + 48 + 48 + 64 + 80 + 80 + 80)


def test_merged_weights_give_the_logits_of_base_plus_adapters():
  tokens, valid = _tokens()
  adapted = _logits(PARAMS, CFG, tokens, valid)
  merged, merged_cfg = lora.merge(PARAMS, CFG)
  assert merged_cfg.lora_rank == 0 and not lora.has_adapters(merged)
  base_logits = _logits(lora.base(PARAMS, CFG)[0], BASE, tokens, valid)
  assert np.abs(adapted - base_logits).max() > 0.1  # the adapters do change the model
  np.testing.assert_allclose(_logits(merged, merged_cfg, tokens, valid), adapted, rtol=0,
                             atol=1e-5)
  # The merged kernel by hand: W + s A B.
  q = PARAMS["layers"]["attn"]["q_proj"]
  np.testing.assert_allclose(
      merged["layers"]["attn"]["q_proj"]["kernel"],
      np.asarray(q["kernel"]) + 2.0 * np.einsum("lir,lro->lio", q["lora_a"], q["lora_b"]),
      rtol=1e-6, atol=1e-6)


def test_reference_logprobs_with_adapters_off_equal_the_base_models():
  base_params = qwen3.init_params(BASE, jax.random.key(0))  # the model before any adapter
  tokens, valid = _tokens(3)
  ref_params, ref_cfg = lora.base(PARAMS, CFG)
  ref = logprobs.reference_logprobs(ref_params, tokens, valid, cfg=ref_cfg)
  expected = logprobs.reference_logprobs(base_params, tokens, valid, cfg=BASE)
  np.testing.assert_array_equal(np.asarray(ref), np.asarray(expected))
  adapted = logprobs.reference_logprobs(PARAMS, tokens, valid, cfg=CFG)
  assert np.abs(np.asarray(adapted - expected)).max() > 1e-2
  # No copy: the reference's kernels are the policy's own arrays.
  assert ref_params["layers"]["attn"]["q_proj"]["kernel"] is PARAMS["layers"]["attn"]["q_proj"][
      "kernel"]


def _check_only_adapters_moved(before, after):
  moved = []
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(before), jax.tree.leaves(after)):
    if path[-1].key in lora.ADAPTER_LEAVES:
      moved.append(not np.array_equal(x, y))
    else:
      np.testing.assert_array_equal(x, y, err_msg=sharding.path_str(path))
  assert any(moved)


def test_rl_update_trains_only_adapters_with_adam_state_for_adapters_only():
  tokens, valid = _tokens()
  mask = jnp.asarray(np.tile((np.arange(L) >= 6).astype(np.float32), (B, 1)))
  logp = logprobs.token_logprobs(PARAMS, tokens, valid, cfg=CFG)
  batch = Batch(tokens_BxL=tokens, valid_BxL=valid, loss_mask_BxL=mask, old_logp_BxL=logp,
                ref_logp_BxL=logp, advantages_B=jnp.asarray([1.0, -1.0, 0.5, -0.5]))
  cfg = UpdateCfg(model=CFG, loss=losses.LossCfg(), optim=optim.OptimCfg(), num_microbatches=2)
  before = jax.tree.map(np.asarray, PARAMS)
  state = init_train_state(jax.tree.map(jnp.copy, PARAMS), cfg)
  adapter_bytes = sum(x.nbytes for x in jax.tree.leaves(lora.adapters(PARAMS)))
  opt_bytes = sum(x.nbytes for x in jax.tree.leaves(state.opt_state) if x.ndim)
  assert opt_bytes == 2 * adapter_bytes  # Adam mu and nu of the adapters, nothing of the base
  knobs = UpdateKnobs.create(losses.LossKnobs.create(eps_low=0.2, eps_high=0.2), 1e-2)
  state, metrics = update_step(state, batch, knobs, cfg=cfg)
  assert float(metrics["grad/norm"]) > 0
  _check_only_adapters_moved(before, jax.tree.map(np.asarray, state.params))


def test_sft_and_preference_steps_train_only_adapters():
  tokens, valid = _tokens(1)
  mask = jnp.asarray(np.tile((np.arange(L) >= 6).astype(np.float32), (B, 1)))
  opt = optim.OptimCfg()
  before = jax.tree.map(np.asarray, PARAMS)
  fresh = lambda: TrainState(jnp.int32(0), jax.tree.map(jnp.copy, PARAMS),
                             optim.make_optimizer(opt).init(PARAMS))
  state, m = sft_step(fresh(), tokens, valid, mask, jnp.float32(1e-2), cfg=SFTCfg(CFG, opt))
  assert float(m["grad/norm"]) > 0
  _check_only_adapters_moved(before, jax.tree.map(np.asarray, state.params))
  tokens2, _ = _tokens(2)
  pairs = PairBatch(tokens, valid, mask, tokens2, valid, mask, jnp.zeros(B), jnp.zeros(B))
  knobs = PreferenceKnobs.create(beta=0.1, learning_rate=1e-2)
  state, m = make_preference_step(PreferenceCfg(CFG, opt))(fresh(), pairs, knobs)
  assert float(m["grad/norm"]) > 0
  _check_only_adapters_moved(before, jax.tree.map(np.asarray, state.params))


def test_adapter_sharding_follows_the_kernel_on_the_non_rank_dim():
  mesh = dict(data=1, fsdp=2, tensor=2)
  specs = sharding.param_specs(PARAMS, mesh)
  P = jax.sharding.PartitionSpec
  assert specs["layers"]["attn"]["q_proj"]["lora_a"] == P(None, "fsdp", None)
  assert specs["layers"]["attn"]["q_proj"]["lora_b"] == P(None, None, "tensor")
  assert specs["layers"]["mlp"]["down_proj"]["lora_a"] == P(None, "tensor", None)
  assert specs["layers"]["mlp"]["down_proj"]["lora_b"] == P(None, None, "fsdp")
  state = init_train_state(PARAMS, UpdateCfg(model=CFG, loss=losses.LossCfg(),
                                             optim=optim.OptimCfg()))
  st = sharding.train_state_specs(state, mesh)
  mu = jax.tree.leaves(st.opt_state, is_leaf=lambda x: isinstance(x, P))
  assert P(None, None, "tensor") in mu and P(None, "tensor", None) in mu  # moments mirror them


def test_export_merges_into_hf_safetensors_and_peft_layout(tmp_path):
  tokens, valid = _tokens(4)
  weights.save_hf_checkpoint(str(tmp_path / "hf"), PARAMS, CFG)
  cfg, loaded = weights.load_hf_checkpoint(str(tmp_path / "hf"))
  assert cfg.lora_rank == 0 and not lora.has_adapters(loaded)
  np.testing.assert_allclose(_logits(loaded, cfg, tokens, valid),
                             _logits(PARAMS, CFG, tokens, valid), rtol=0, atol=1e-5)
  lora.save_peft_adapter(str(tmp_path / "peft"), PARAMS, CFG, base_model="base")
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  tensors = load_file(str(tmp_path / "peft" / "adapter_model.safetensors"))
  assert len(tensors) == 2 * 2 * 7  # A and B, 2 layers, 7 projections
  a = tensors["base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"]
  b = tensors["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"]
  assert a.shape == (4, 48) and b.shape == (32, 4)  # torch [out, in]: A is [r, in], B [out, r]
  np.testing.assert_array_equal(a, np.asarray(PARAMS["layers"]["mlp"]["down_proj"]["lora_a"][1]).T)
  config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
  assert (config["r"], config["lora_alpha"], config["peft_type"]) == (4, 8.0, "LORA")
  # Loading a checkpoint with a LoRA override: the frozen base plus fresh (zero-B) adapters.
  cfg2, with_adapters = weights.load_hf_checkpoint(str(tmp_path / "hf"), lora_rank=2)
  assert cfg2.lora_rank == 2 and lora.has_adapters(with_adapters)
  np.testing.assert_array_equal(_logits(with_adapters, cfg2, tokens, valid),
                                _logits(loaded, cfg, tokens, valid))


def test_bad_lora_settings_are_refused():
  with pytest.raises(ValueError, match="lora_targets must be a non-empty subset"):
    BASE.replace(lora_rank=2, lora_targets=("qkv",))
  with pytest.raises(ValueError, match="lora_rank must be >= 0"):
    BASE.replace(lora_rank=-1)
  assert BASE.replace(lora_targets="q_proj, v_proj").lora_targets == ("q_proj", "v_proj")


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
  """configs/lora_quickstart.py:runlocal through rl_jax.main (once for this module)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  import pathlib  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(__file__).resolve().parents[2] / "configs" / "lora_quickstart.py"
  spec = importlib.util.spec_from_file_location("configs_lora_quickstart", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("runlocal").to_dict()
  workdir = tmp_path_factory.mktemp("lora_run")
  return main.run(config, str(workdir), show_progress=False), workdir


def test_runlocal_lora_config_trains_adapters_and_leaves_the_base_unchanged(lora_run):
  summary, workdir = lora_run
  final = jax.tree.map(np.asarray, summary["final_params"])
  _, start = weights.load_hf_checkpoint("arith_tiny_sft")  # the bundled base
  base_final, _ = lora.base(final, CFG)
  assert jax.tree.structure(base_final) == jax.tree.structure(start)
  for x, y in zip(jax.tree.leaves(base_final), jax.tree.leaves(start)):
    np.testing.assert_array_equal(x, y)
  b_leaves = [x for p, x in jax.tree_util.tree_leaves_with_path(lora.adapters(final))
              if p[-1].key == "lora_b"]
  assert len(b_leaves) == 7 and all(np.abs(x).max() > 0 for x in b_leaves)  # B left 0
  records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  norms = [r["grad/norm"] for r in records if r.get("stage") == "rl" and "grad/norm" in r]
  assert len(norms) == 2 and all(n > 0 for n in norms)
  config = json.load(open(os.path.join(workdir, "config.json")))
  assert config["model"]["overrides"]["lora_rank"] == 8
