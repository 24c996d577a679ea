"""Memory planner: exact byte counts against hand computations from the published shapes; exit
status; the planner outputs printed in docs/scaling.md are current."""
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import PartitionSpec as P

from rl_jax import plan as planner
from rl_jax import plan_cli
from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config

# Qwen3-4B (HF config.json): V=151936, D=2560, L=36, H=32, K=8, Hd=128, F=9728, tied.
V, D, L, H, K, HD, F = 151_936, 2560, 36, 32, 8, 128, 9728
REPO = pathlib.Path(__file__).resolve().parents[1]
SCALING_MD = REPO / "docs" / "scaling.md"
REGENERATE = "python -m rl_jax.plan --write-docs docs/scaling.md"
# docs/scaling.md's third block: Qwen3-4B without remat and fused log-probs needs 45.43 GiB.
FITS = ["--model", "qwen3_4b", "--topology", "v5e-16", "--mesh", "4x4", "--batch", "64",
        "--micro-batch", "16", "--seq-len", "2048"]
DOES_NOT_FIT = FITS + ["--remat", "none", "--logprob", "naive"]


def _plan(mesh, **kw):
  kw = dict(dict(batch=16, seq_len=256), **kw)
  return planner.plan(get_model_config("qwen3_4b"), mesh, **kw)


def test_unsharded_param_bytes_equal_num_params_in_bf16():
  cfg = get_model_config("qwen3_4b")
  p = _plan(dict(data=1, fsdp=4, tensor=4))
  assert p["params_total"] == cfg.num_params() * 2
  assert cfg.num_params() == 4_022_468_096  # the published "4.0B" incl. embeddings


def test_per_device_param_bytes_on_16_devices_by_hand():
  p = _plan(dict(data=1, fsdp=4, tensor=4))
  kernels = V * D + L * (D * H * HD + 2 * D * K * HD + H * HD * D + 3 * D * F)
  norms = L * (2 * D + 2 * HD) + D
  # Every kernel dim divides 4 (2560, 4096, 1024, 9728, 151936), so kernels split 16 ways.
  assert p["params"] == 2 * kernels // 16 + 2 * norms
  assert p["grads"] == p["params"]
  assert p["opt_state"] == 2 * p["params"] + 4  # AdamW mu + nu (bf16) + int32 count


def test_device_bytes_of_single_leaves():
  shapes = qwen3.abstract_params(get_model_config("qwen3_4b"))
  mesh = dict(data=1, fsdp=4, tensor=4)
  emb = shapes["embed"]["embedding"]
  assert planner.device_bytes(emb, P("tensor", "fsdp"), mesh) == V * D * 2 // 16  # 48,619,520
  assert planner.device_bytes(emb, P("tensor", "fsdp"), mesh) == 48_619_520
  q = shapes["layers"]["attn"]["q_proj"]["kernel"]
  assert planner.device_bytes(q, P(None, "fsdp", "tensor"), mesh) == 36 * 640 * 1024 * 2
  qn = shapes["layers"]["attn"]["q_norm"]["scale"]
  assert planner.device_bytes(qn, P(), mesh) == L * HD * 2


def test_fallback_counts_replicated_bytes():
  # fsdp=3 divides no Qwen3-4B width: everything is replicated except tensor-split dims.
  p = _plan(dict(data=1, fsdp=3, tensor=1))
  assert p["params"] == p["params_total"]


def test_kv_cache_and_logits_terms():
  p = _plan(dict(data=2, fsdp=2, tensor=4), batch=16, seq_len=256, rollout_batch=32)
  # 2 (k and v) * L * B * S * K * Hd * 2 bytes; batch over 4 devices, 8 kv heads over tensor=4.
  assert p["kv_cache"] == 2 * L * 32 * 256 * K * HD * 2 // 16
  assert p["rows_per_device"] == 4
  assert p["logits_naive"] == 3 * 4 * 256 * V * 4 // 4
  on_16 = _plan(dict(data=1, fsdp=1, tensor=16), rollout_batch=32)
  assert on_16["kv_cache"] == 2 * L * 32 * 256 * K * HD * 2  # 8 kv heads % 16: replicated


def test_remat_and_totals():
  full = _plan(dict(data=1, fsdp=16, tensor=1), remat="full")
  none = _plan(dict(data=1, fsdp=16, tensor=1), remat="none")
  assert none["activations"] > 10 * full["activations"]
  # rows/device = 1: full remat saves L block inputs (t*D bf16) plus one block's working set.
  assert full["activations"] - L * 256 * D * 2 == none["activations"] // L
  assert full["total"] == full["params"] + full["opt_state"] + max(
      full["grads"] + full["activations"] + full["logits_fused"], full["kv_cache"])
  ref = _plan(dict(data=1, fsdp=16, tensor=1), reference=True)
  assert ref["total"] == full["total"] + full["params"]


def test_topologies():
  assert planner.parse_topology("v5e-16") == (16, 16 * 2 ** 30)
  assert planner.parse_topology("v5p-64") == (32, 95 * 2 ** 30)
  assert planner.parse_topology("v4-8")[0] == 4
  assert planner.parse_topology("8xH100") == (8, 80 * 2 ** 30)
  with pytest.raises(ValueError, match="unknown topology"):
    planner.parse_topology("v9-3")
  assert planner.resolve_mesh("4x4", 16) == dict(data=1, fsdp=4, tensor=4)
  assert planner.resolve_mesh(None, 32) == dict(data=1, fsdp=32, tensor=1)
  with pytest.raises(ValueError, match="product 9 != 16"):
    planner.resolve_mesh("3x3", 16)


def test_cli_prints_table(capsys):
  assert plan_cli.main(["--model", "qwen3_4b", "--topology", "v5e-16", "--mesh", "4x4",
                       "--batch", "16", "--seq-len", "256"]) == 0
  out = capsys.readouterr().out
  assert "503,176,192" in out  # params per device, = the hand computation above
  assert "device HBM" in out and "fits" in out
  with pytest.raises(SystemExit):
    plan_cli.main(["--model", "qwen3_4b", "--topology", "tpu-16"])


def _cli(*argv):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "rl_jax.plan", *argv], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)


def test_exit_status_is_0_when_it_fits_and_1_when_it_does_not():
  fits = _cli(*FITS)
  assert fits.returncode == 0, fits.stderr
  assert fits.stdout.rstrip().endswith("\nfits")
  assert "does not fit" not in fits.stderr
  over = _cli(*DOES_NOT_FIT)
  assert over.returncode == 1, over.stderr
  assert over.stdout.rstrip().endswith("DOES NOT FIT")  # the table is still printed
  reason = over.stderr.strip().splitlines()[-1]
  assert reason == ("python -m rl_jax.plan: does not fit: needs 45.430 GiB per device, v5e-16 "
                    "has 16.000 GiB (29.430 GiB over)")


def test_exit_status_without_topology_and_on_usage_errors(capsys):
  assert plan_cli.main(["--model", "tiny", "--mesh", "2x2", "--batch", "4", "--seq-len", "32"]) == 0
  usage_errors = ([], ["--model", "tiny", "--mesh", "-1"],
                  ["--write-docs", "x.md", "--model", "tiny"])
  for argv in usage_errors:
    with pytest.raises(SystemExit) as e:
      plan_cli.main(argv)
    assert e.value.code == 2
  assert "drop --model" in capsys.readouterr().err


def test_docs_scaling_planner_outputs_are_current():
  lines = SCALING_MD.read_text().split("\n")
  blocks = plan_cli.doc_blocks("\n".join(lines))
  assert len(blocks) >= 3
  for start, end, argv in blocks:
    text, _, _ = plan_cli.run(argv)
    assert lines[start:end] == text.split("\n"), (
        f"docs/scaling.md:{start}: the output of `python -m rl_jax.plan {' '.join(argv)}` is "
        f"stale; regenerate with `{REGENERATE}`")


def test_docs_scaling_prose_quotes_the_blocks():
  # x.xxx GiB figures in the prose of the planner section must be printed in one of its blocks.
  section = SCALING_MD.read_text().split("## Memory planner")[1].split("\n## ")[0]
  printed = {m for block in re.findall(r"```.*?```", section, flags=re.S)
             for m in re.findall(r"-?\d+\.\d{3}$", block, flags=re.M)}
  prose = re.sub(r"```.*?```", "", section, flags=re.S)
  quoted = re.findall(r"(\d+\.\d{3}) GiB", prose)
  assert quoted, "the planner section quotes no figures: update this test"
  missing = [q for q in quoted if q not in printed]
  assert not missing, f"docs/scaling.md quotes {missing} GiB, which no planner block prints"


TINY = "--model tiny --mesh 2x2 --batch 4 --seq-len 32"
MARKDOWN = """# Doc

```
$ python -m rl_jax.plan --model tiny --mesh 2x2 \\
    --batch 4 --seq-len 32
stale output
```

```
$ launch/tpu_pod.sh --dry-run
left alone
```
"""


def test_update_docs_rewrites_only_planner_blocks():
  new, stale = plan_cli.update_docs(MARKDOWN)
  assert stale == [f"python -m rl_jax.plan {TINY}"]
  expected = plan_cli.run(TINY.split())[0]
  assert new == MARKDOWN.replace("stale output", expected)
  assert "\\\n    --batch 4" in new  # the command lines are kept as written
  assert plan_cli.update_docs(new) == (new, [])


def test_write_and_check_docs_cli(tmp_path, capsys):
  md = tmp_path / "doc.md"
  md.write_text(MARKDOWN)
  assert plan_cli.main(["--check-docs", str(md)]) == 1
  assert md.read_text() == MARKDOWN  # --check-docs writes nothing
  assert f"regenerate with `python -m rl_jax.plan --write-docs {md}`" in capsys.readouterr().err
  assert plan_cli.main(["--write-docs", str(md)]) == 0
  assert plan_cli.main(["--check-docs", str(md)]) == 0
  assert "stale output" not in md.read_text()


def test_docs_errors_name_the_place():
  with pytest.raises(ValueError, match="line 1: code fence is never closed"):
    plan_cli.doc_blocks("```\n$ python -m rl_jax.plan --model tiny\n")
  with pytest.raises(ValueError, match="no code block starts with"):
    plan_cli.update_docs("# nothing to run\n", "x.md")
  with pytest.raises(ValueError, match=r"x.md:2: .*--mesh -1.*needs --topology"):
    plan_cli.update_docs("```\n$ python -m rl_jax.plan --model tiny --mesh -1\nold\n```\n", "x.md")


def test_remat_field_moves_planned_and_compiled_activation_bytes_together():
  """ModelConfig.remat is read by the model and by the planner: XLA's temporaries of a compiled
  backward pass and the planner's activation bytes fall in the same order, by similar amounts."""
  b, t = 8, 256
  compiled, planned = {}, {}
  for remat in ("none", "dots", "full"):
    cfg = get_model_config("tiny", vocab_size=64, num_layers=4, hidden_size=256,
                           intermediate_size=1024, max_seq_len=t, remat=remat)
    valid = jnp.ones((b, t), bool)

    def loss(p, toks, cfg=cfg, valid=valid):
      h, _ = qwen3.forward(p, toks, qwen3.positions_from_mask(valid), valid, cfg=cfg)
      return jnp.sum(h.astype(jnp.float32) ** 2)

    c = jax.jit(jax.grad(loss)).lower(qwen3.abstract_params(cfg),
                                      jax.ShapeDtypeStruct((b, t), jnp.int32)).compile()
    compiled[remat] = c.memory_analysis().temp_size_in_bytes
    planned[remat] = planner.plan(cfg, dict(data=1, fsdp=1, tensor=1), batch=b,
                                   seq_len=t)["activations"]
  assert compiled["none"] > compiled["dots"] > compiled["full"], compiled
  assert planned["none"] > planned["dots"] > planned["full"], planned
  ratio = (compiled["none"] - compiled["full"]) / (planned["none"] - planned["full"])
  assert 0.5 < ratio < 3.0, (compiled, planned)


def _hand_temporaries(cfg, rows_per_device: int, t: int) -> int:
  """remat="none" activations + fused log-prob tiles by the module docstring's formula, written
  out by hand (f32 compute, tensor=1)."""
  d, f, q, kv = cfg.hidden_size, cfg.intermediate_size, cfg.num_heads * cfg.head_dim, \
      cfg.num_kv_heads * cfg.head_dim
  per_layer = rows_per_device * t * 4 * (4 * d + 3 * q + 3 * kv + 4 * f)
  per_layer += rows_per_device * cfg.num_heads * t * t * (4 + 4)
  n_tok = rows_per_device * t
  from rl_jax.kernels.fused_logprob import xla as fused_xla
  tiles = 3 * min(fused_xla.DEFAULT_BLOCK_N, n_tok) * min(fused_xla.DEFAULT_BLOCK_V,
                                                          cfg.vocab_size) * 4
  return cfg.num_layers * per_layer + tiles + n_tok * d * 4


@pytest.mark.parametrize("mesh,budget_rows,expected", [
    ({"data": 1}, 1000, 1),      # everything fits: one micro-batch
    ({"data": 1}, 40, 2),        # 64 rows do not fit, 32 do
    ({"data": 1}, 9, 8),         # 8 rows per micro-batch
    ({"data": 1}, 0.5, 64),      # not even one row: the most micro-batches
    ({"data": 4}, 9, 2),         # 32-row micro-batches are 8 rows per device, which fit
    ({"data": 4}, 0.5, 16),      # one row per device is the finest split that stays sharded
])
def test_choose_microbatches_is_the_fewest_that_fit_the_budget(mesh, budget_rows, expected):
  cfg = get_model_config("tiny", remat="none", dtype="float32", param_dtype="float32")
  per_row = _hand_temporaries(cfg, 1, 32)
  # The budget is given in rows' worth of temporaries (a row's bytes grow slightly sub-linearly
  # through the fixed tiles, so k rows need at most k * per_row).
  m, temps = planner.choose_microbatches(cfg, mesh, rows=64, seq_len=32,
                                         budget_bytes=int(budget_rows * per_row))
  assert m == expected
  shards = mesh["data"]
  assert temps == _hand_temporaries(cfg, 64 // m // shards, 32)


def test_choose_microbatches_rejects_bad_sizes():
  cfg = get_model_config("tiny")
  with pytest.raises(ValueError, match="rows >= 1 and budget_bytes > 0"):
    planner.choose_microbatches(cfg, {}, rows=0, seq_len=8, budget_bytes=1)
  with pytest.raises(ValueError, match="rows >= 1 and budget_bytes > 0"):
    planner.choose_microbatches(cfg, {}, rows=8, seq_len=8, budget_bytes=0)


# ---- LoRA, packing and the Qwen3-4B-on-16-GB plan (docs/scaling.md) ----
QWEN3_4B_LORA = ["--model", "qwen3_4b", "--topology", "v5e-1", "--batch", "16", "--micro-batch",
                 "1", "--rollout-batch", "16", "--seq-len", "1280", "--remat", "full",
                 "--logprob", "fused"]


def test_lora_plan_counts_adapters_only_for_grads_and_adam_by_hand():
  cfg = get_model_config("qwen3_4b", lora_rank=16)
  one = dict(data=1, fsdp=1, tensor=1)
  p = planner.plan(cfg, one, batch=16, seq_len=1280, micro_batch=1, reference=True)
  # r * (in + out) per projection: q 2560+4096, k and v 2560+1024, o 4096+2560, gate and up
  # 2560+9728, down 9728+2560; 36 layers, rank 16, float32.
  adapters = 36 * 16 * (6656 + 2 * 3584 + 6656 + 3 * 12288)
  assert adapters == 33_030_144 == cfg.num_adapter_params()
  assert p["adapters"] == p["grads"] == 4 * adapters
  assert p["opt_state"] == 2 * 4 * adapters + 4  # Adam mu, nu of the adapters + the count
  assert p["params"] == 2 * cfg.num_params() + 4 * adapters  # frozen bf16 base + adapters
  assert p["reference"] == 0  # the base with the adapters off: no copy
  full = planner.plan(cfg.replace(lora_rank=0), one, batch=16, seq_len=1280, micro_batch=1)
  assert full["grads"] == full["params"] == 2 * cfg.num_params()


def test_packing_plans_the_packed_rows():
  cfg = get_model_config("qwen3_4b")
  one = dict(data=1, fsdp=1, tensor=1)
  packed = planner.plan(cfg, one, batch=16, seq_len=1280, micro_batch=4, pack_mean_len=640)
  assert packed["rows_per_device"] == 2  # 4 sequences of 640 tokens fill 2 rows of 1280
  two_rows = planner.plan(cfg, one, batch=16, seq_len=1280, micro_batch=2)
  assert packed["activations"] == two_rows["activations"]
  assert planner.plan(cfg, one, batch=16, seq_len=1280, micro_batch=4,
                      pack_mean_len=641)["rows_per_device"] == 3  # 2564 tokens: 3 rows
  with pytest.raises(ValueError, match="pack_mean_len=2000"):
    planner.plan(cfg, one, batch=16, seq_len=1280, pack_mean_len=2000)


def test_qwen3_4b_grpo_with_lora_fits_one_16gb_device_and_full_finetuning_does_not():
  text, lora_plan, _ = plan_cli.run(QWEN3_4B_LORA + ["--lora-rank", "16", "--reference"])
  assert lora_plan["fits"] and lora_plan["total"] < 11 * 2 ** 30
  # The documented breakdown is this command's output (docs/scaling.md).
  assert text.split("\n")[2].startswith("lora_rank=16 (33,030,144 adapter params")
  _, full_plan, _ = plan_cli.run(QWEN3_4B_LORA)
  assert not full_plan["fits"] and full_plan["total"] > 30 * 2 ** 30


def test_lora_plan_is_consistent_with_compiled_memory_analysis():
  """A scaled-down Qwen3 (f32, remat="full", fused log-probs, LoRA r=8) through the real update
  step: the compiled program's arguments are exactly the planned state (params, adapters' Adam
  state) plus the batch, and its temporaries are within 2x of the planned train temporaries."""
  import functools  # pylint: disable=g-import-not-at-top
  from rl_jax import optim  # pylint: disable=g-import-not-at-top
  from rl_jax.algorithms import losses  # pylint: disable=g-import-not-at-top
  from rl_jax.types import Batch  # pylint: disable=g-import-not-at-top
  from rl_jax.update import UpdateCfg, UpdateKnobs, init_train_state, update_step_fn  # noqa
  b, t, m = 8, 128, 2
  cfg = get_model_config("tiny", vocab_size=512, num_layers=4, hidden_size=256, num_heads=4,
                         num_kv_heads=2, head_dim=64, intermediate_size=768, max_seq_len=t,
                         remat="full", lora_rank=8)
  ucfg = UpdateCfg(model=cfg, loss=losses.LossCfg(use_kl_loss=True), optim=optim.OptimCfg(),
                   num_microbatches=m, logprob_impl="xla")
  state = jax.eval_shape(lambda: init_train_state(qwen3.init_params(cfg, jax.random.key(0)),
                                                  ucfg))
  f32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  batch = Batch(tokens_BxL=jax.ShapeDtypeStruct((b, t), jnp.int32),
                valid_BxL=jax.ShapeDtypeStruct((b, t), jnp.bool_), loss_mask_BxL=f32(b, t),
                old_logp_BxL=f32(b, t), ref_logp_BxL=f32(b, t), advantages_B=f32(b))
  knobs = jax.eval_shape(lambda: UpdateKnobs.create(losses.LossKnobs.create(), 1e-3))
  compiled = jax.jit(functools.partial(update_step_fn, cfg=ucfg)).lower(
      state, batch, knobs).compile().memory_analysis()
  p = planner.plan(cfg, dict(data=1, fsdp=1, tensor=1), batch=b, seq_len=t, micro_batch=b // m)
  nbytes = lambda tree: sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))
  step_and_batch = 4 + nbytes(batch) + nbytes(knobs)
  # The optimizer's injected hyper-parameters are 3 scalars the planner's plain AdamW lacks.
  extra = compiled.argument_size_in_bytes - step_and_batch - (p["params"] + p["opt_state"])
  assert 0 <= extra <= 16, (compiled, p)
  ratio = compiled.temp_size_in_bytes / p["train_temps"]
  assert 0.5 < ratio < 2.0, (compiled.temp_size_in_bytes, p["train_temps"])
