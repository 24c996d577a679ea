"""Wall time of one RL step of the training loop against the pre-refactor RL iteration, same run.

    python bench/rl_step.py [--steps 5] [--prompts 64] [--group 8]
    python bench/rl_step.py --quick      # the runlocal model, 4 prompts x G=4, 2 steps (the test)

new: the RL stage of `rl_jax.main` as `rl_jax.stages.rl.run_rl` drives it (`build_context`,
  `build_rl`, the stage's `make_update_step`, then `rl_iteration` per step) for the quickstart
  config with `timing=True`, so the update is blocked on inside the step.
old: the RL iteration before the stage refactor, reproduced here (`OldRLStep`: what the removed
  `rl_jax/rl_step.py` ran for this config): encode prompts -> `generate` -> task rewards ->
  `group_advantages` -> a `Batch` with zero reference log-probs -> `train_on_rollout` with the
  default jitted `update_step` -> `jax.block_until_ready`, the state re-placed on the mesh.

Both start from the same params, draw the same prompts (the stage's prompt source) and use the
same keys (the stage key of step s, split into rollout and update keys), so their first rollouts
are identical (checked, the last line). Steps are interleaved (old and new alternate, the order
swapped every step, so load on the machine hits both alike); step 0 of each compiles and is not
timed. Per part the median over `--steps` steps: rollout (prompts, generate, detokenise, rewards),
update (`train_on_rollout`, blocked on) and total (the whole step, wall clock); the ratio new/old
per part. No SFT: a random policy of the same shapes costs the same per step.

    python bench/rl_step.py --update-flops [--quick] [--reps 3]

The update's achieved FLOP/s against a dense matmul measured in the same run: the compiled update
step (`rl_jax.update.update_step_fn`, GRPO loss, one AdamW step) on the GRPO workload of
bench/peers.py (its 29.4M-parameter Qwen3, 16 prompts x G=8 = 128 rows of 32 + 64 tokens), for
the training defaults (fused log-probs, micro-batches chosen by memory) and for naive log-probs
in one micro-batch. Work counted: 6 x tokens x (matmul parameters + the unembedding) plus the
attention's two matmuls (QK^T, PV: 4 x t^2 x H x Hd per row and layer, x3 for the backward) --
the work of one forward and backward, whatever remat recomputes. The matmul reference is the
best of a square [2048]^3 product and the update's own MLP shape [rows*t, D] x [D, F], timed
before and after the updates (best of both), so "% of matmul" compares like with like.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import quickstart  # noqa: E402
from rl_jax import experiment, sharding  # noqa: E402
from rl_jax.algorithms import advantages  # noqa: E402
from rl_jax.data.encoding import decode_responses, encode_prompts  # noqa: E402
from rl_jax.sampling.generate import GenerateCfg, generate  # noqa: E402
from rl_jax.stages import rl as rl_stage  # noqa: E402
from rl_jax.stages.context import build_context  # noqa: E402
from rl_jax.types import Batch  # noqa: E402
from rl_jax.update import init_train_state, make_update_step, train_on_rollout  # noqa: E402

PARTS = ("rollout", "update", "total")
HEADER = ("part", "old s/step", "new s/step", "new/old")


class OldRLStep:
  """The pre-refactor RL iteration (no dynamic sampling, no KL, as the quickstart runs it), on
  the parts of an `RLSetup` that describe the same work: its prompt source, knobs and configs."""

  def __init__(self, setup: rl_stage.RLSetup):
    ctx, r = setup.ctx, setup.section
    self.setup, self.ctx, self.section = setup, ctx, r
    tok = ctx.tokenizer
    self.gen_cfg = GenerateCfg(max_new_tokens=ctx.exp.max_new_tokens, group_size=r.group_size,
                               stop_ids=(tok.eos_id,), pad_id=tok.pad_id)
    self.source_state = setup.init_part_state()["source"]
    self.last_tokens = None  # the last rollout's tokens (the agreement check)

  def __call__(self, state, step: int, key: jax.Array):
    """One step: (state, {"rollout": s, "update": s}); the update is blocked on."""
    ctx, r, g = self.ctx, self.section, self.section.group_size
    rollout_key, update_key = jax.random.split(key)  # as `rl_iteration` (same keys)
    t0 = time.perf_counter()
    problems, _ = self.setup.source.sample(self.source_state, r.prompts_per_step, step, 0)
    tokens, valid = encode_prompts(ctx.tokenizer, [ctx.task.prompt_fn(p) for p in problems],
                                   ctx.exp.prompt_len)
    placed = sharding.shard_batch({"prompt_tokens": tokens, "prompt_valid": valid}, ctx.mesh)
    rollout = sharding.to_host(generate(state.params, placed["prompt_tokens"],
                                        placed["prompt_valid"], jax.random.fold_in(rollout_key, 0),
                                        self.setup.sample_knobs, model_cfg=ctx.model_cfg,
                                        cfg=self.gen_cfg))
    texts = decode_responses(ctx.tokenizer, rollout.tokens_BxL, rollout.loss_mask_BxL,
                             ctx.exp.prompt_len, self.gen_cfg.stop_ids)
    rewards = ctx.task.rewards([p for p in problems for _ in range(g)], texts)
    t_rollout = time.perf_counter() - t0
    self.last_tokens = rollout.tokens_BxL

    adv_B = np.asarray(advantages.group_advantages(jnp.asarray(rewards), group_size=g,
                                                   normalize=r.adv_normalize))
    rows = sharding.shard_batch(
        {"tokens": rollout.tokens_BxL, "valid": rollout.valid_BxL,
         "loss_mask": rollout.loss_mask_BxL, "old_logp": rollout.logp_policy_BxL,
         "advantages": adv_B}, ctx.mesh)
    ref_logp = sharding.shard_batch(np.zeros(np.shape(rollout.tokens_BxL), np.float32), ctx.mesh)
    batch = Batch(tokens_BxL=rows["tokens"], valid_BxL=rows["valid"],
                  loss_mask_BxL=rows["loss_mask"], old_logp_BxL=rows["old_logp"],
                  ref_logp_BxL=ref_logp, advantages_B=rows["advantages"])
    t1 = time.perf_counter()
    state, _ = train_on_rollout(state, batch, self.setup.update_knobs, update_key,
                                cfg=self.setup.update_cfg, num_epochs=r.num_epochs,
                                num_minibatches=r.num_minibatches, group_size=g, mesh=ctx.mesh,
                                drop_zero_advantage=r.drop_zero_advantage)
    jax.block_until_ready(state.params)
    t_update = time.perf_counter() - t1
    state = sharding.shard_train_state(state, ctx.mesh)
    return state, {"rollout": t_rollout, "update": t_update}


class _Recording:
  """Wraps a rollout part and keeps its last output's tokens (step 0 only: the agreement)."""

  def __init__(self, rollout):
    self.rollout, self.last_tokens = rollout, None

  def __call__(self, *args, **kwargs):
    out = self.rollout(*args, **kwargs)
    self.last_tokens = np.asarray(out.rollout.tokens_BxL)
    return out


def build(args):
  c = quickstart.get_config("runlocal" if args.quick else None)
  c.rl.prompts_per_step, c.rl.group_size = args.prompts, args.group
  c.timing = True  # rl_iteration blocks on the update, as the old iteration did
  exp = experiment.from_config_dict(c)
  # The workdir is never written: the bench runs no stage through the loop (no metrics, no
  # checkpoints), only the stage's step.
  ctx = build_context(exp, os.path.join(tempfile.gettempdir(), "bench_rl_step"),
                      show_progress=False)
  setup = rl_stage.build_rl(ctx, exp.rl)
  fresh = lambda: sharding.shard_train_state(
      init_train_state(jax.tree.map(jnp.copy, ctx.init_params), setup.update_cfg), ctx.mesh)
  new_state, old_state = fresh(), fresh()  # own buffers: each update donates its state
  setup.step_fn = make_update_step(setup.update_cfg,
                                   sharding.state_shardings(new_state, ctx.mesh))
  return exp, ctx, setup, new_state, old_state


# bench/peers.py's model (its FULL sizes): the GRPO workload the issue compares with TRL.
FLOPS_MODEL = dict(vocab_size=8192, hidden_size=512, num_layers=8, num_heads=8, num_kv_heads=4,
                   head_dim=64, intermediate_size=1536, tie_embeddings=True)
FLOPS_QUICK_MODEL = dict(vocab_size=256, hidden_size=64, num_layers=2, num_heads=4,
                         num_kv_heads=2, head_dim=16, intermediate_size=192, tie_embeddings=True)
FLOPS_HEADER = ("update", "micro-batches", "s/update", "GFLOP/s", "% of matmul")


def update_flop_count(cfg, rows: int, seq_len: int) -> float:
  """FLOPs of one forward + backward over rows x seq_len tokens (module docstring)."""
  d, f, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
  q, kv = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
  matmul_params = cfg.num_layers * (d * q + 2 * d * kv + q * d + 3 * d * f) + d * v
  attention = cfg.num_layers * 4 * seq_len ** 2 * q  # per row, forward
  return 6.0 * rows * seq_len * matmul_params + 3.0 * rows * attention


def matmul_gflops(m: int, k: int, n: int, reps: int) -> float:
  """Best-of-`reps` f32 GFLOP/s of one jitted [m, k] x [k, n] product."""
  a = jnp.asarray(np.random.default_rng(0).normal(size=(m, k)), jnp.float32)
  b = jnp.asarray(np.random.default_rng(1).normal(size=(k, n)), jnp.float32)
  f = jax.jit(jnp.matmul)
  f(a, b).block_until_ready()
  best = float("inf")
  for _ in range(reps):
    t0 = time.perf_counter()
    f(a, b).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return 2.0 * m * k * n / best / 1e9


def time_update(cfg, rows: int, seq_len: int, logprob_impl: str, num_microbatches: int,
                reps: int) -> float:
  """Best-of-`reps` seconds of one compiled GRPO update step on random tokens."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  import functools  # pylint: disable=g-import-not-at-top
  from rl_jax import optim  # pylint: disable=g-import-not-at-top
  from rl_jax.algorithms import losses  # pylint: disable=g-import-not-at-top
  from rl_jax.models import qwen3  # pylint: disable=g-import-not-at-top
  from rl_jax.update import UpdateCfg, UpdateKnobs, update_step_fn  # pylint: disable=g-import-not-at-top
  pre = losses.preset("grpo")
  ucfg = UpdateCfg(model=cfg, loss=dataclasses.replace(pre.cfg, use_kl_loss=False),
                   optim=optim.OptimCfg(), num_microbatches=num_microbatches,
                   logprob_impl=logprob_impl)
  state = init_train_state(qwen3.init_params(cfg, jax.random.key(0)), ucfg)
  rng = np.random.default_rng(0)
  prompt = seq_len // 3
  batch = Batch(tokens_BxL=jnp.asarray(rng.integers(0, cfg.vocab_size, (rows, seq_len)),
                                       jnp.int32),
                valid_BxL=jnp.ones((rows, seq_len), bool),
                loss_mask_BxL=jnp.asarray(np.arange(seq_len)[None] >= prompt, jnp.float32)
                * jnp.ones((rows, 1), jnp.float32),
                old_logp_BxL=jnp.full((rows, seq_len), -9.0, jnp.float32), ref_logp_BxL=None,
                advantages_B=jnp.asarray(rng.normal(size=rows), jnp.float32))
  knobs = UpdateKnobs.create(losses.LossKnobs.create(**{**pre.knobs, "beta": 0.0}), 1e-6)
  step = jax.jit(functools.partial(update_step_fn, cfg=ucfg), donate_argnums=(0,)).lower(
      state, batch, knobs).compile()
  state, _ = step(state, batch, knobs)  # warm-up
  jax.block_until_ready(state)
  best = float("inf")
  for _ in range(reps):
    t0 = time.perf_counter()
    state, _ = step(state, batch, knobs)
    jax.block_until_ready(state)
    best = min(best, time.perf_counter() - t0)
  return best


def run_update_flops(quick: bool, reps: int) -> dict:
  """The update's GFLOP/s for the defaults and for naive / one micro-batch, vs a matmul."""
  from rl_jax import plan as plan_lib  # pylint: disable=g-import-not-at-top
  from rl_jax.models.config import get_model_config  # pylint: disable=g-import-not-at-top
  cfg = get_model_config("tiny", **(FLOPS_QUICK_MODEL if quick else FLOPS_MODEL))
  rows, seq_len = (8, 16) if quick else (128, 96)
  budget = int(experiment.RLSection().microbatch_budget_mib * 2**20)
  auto_m, _ = plan_lib.choose_microbatches(cfg, {"data": 1}, rows=rows, seq_len=seq_len,
                                           budget_bytes=budget)
  shapes = ((2048, 2048, 2048), (rows * seq_len, cfg.hidden_size, cfg.intermediate_size))
  matmul = max(matmul_gflops(*shape, reps) for shape in shapes)
  variants = (("defaults (auto log-prob, by memory)", "auto", auto_m), ("naive log-prob", "naive", 1))
  seconds = {label: time_update(cfg, rows, seq_len, impl, m, reps) for label, impl, m in variants}
  matmul = max(matmul, max(matmul_gflops(*shape, reps) for shape in shapes))
  work = update_flop_count(cfg, rows, seq_len)
  print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__}, backend {jax.default_backend()}; load average "
        f"{os.getloadavg()[0]:.2f}")
  print(f"update: {rows} rows x {seq_len} tokens, model {cfg.num_params() / 1e6:.1f}M params, "
        f"{work / 1e12:.3f} TFLOP per update; matmul reference {matmul:.0f} GFLOP/s (best of "
        f"{[list(s) for s in shapes]}, before and after); best of {reps} updates")
  print("| " + " | ".join(FLOPS_HEADER) + " |\n|---|---:|---:|---:|---:|")
  result = {"matmul_gflops": matmul, "flops": work, "rows": {}}
  for label, _, m in variants:
    gflops = work / seconds[label] / 1e9
    result["rows"][label] = dict(microbatches=m, seconds=seconds[label], gflops=gflops,
                                 share=gflops / matmul)
    print(f"| {label} | {m} | {seconds[label]:.3f} | {gflops:.1f} | {100 * gflops / matmul:.1f}% |")
  return result


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=None, help="timed steps (default 5; quick 2)")
  parser.add_argument("--prompts", type=int, default=None, help="prompts per step (64; quick 4)")
  parser.add_argument("--group", type=int, default=None, help="samples per prompt (8; quick 4)")
  parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds (the test)")
  parser.add_argument("--update-flops", action="store_true",
                      help="instead: the update's GFLOP/s vs a matmul (module docstring)")
  parser.add_argument("--reps", type=int, default=3, help="timed calls (--update-flops; best)")
  args = parser.parse_args(argv)
  if args.update_flops:
    if args.reps < 1:
      parser.error(f"--reps must be >= 1, got {args.reps}")
    return run_update_flops(args.quick, args.reps)
  defaults = (2, 4, 4) if args.quick else (5, 64, 8)
  for name, default in zip(("steps", "prompts", "group"), defaults):
    if getattr(args, name) is None:
      setattr(args, name, default)
    if getattr(args, name) < 1:
      parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")

  exp, ctx, setup, new_state, old_state = build(args)
  old_step = OldRLStep(setup)
  recorder = setup.rollout = _Recording(setup.rollout)
  part_state = setup.init_part_state()
  stage_key = ctx.stage_key("rl")
  times = {"old": {p: [] for p in PARTS}, "new": {p: [] for p in PARTS}}
  same_first = None

  def run_new(step, key):
    nonlocal new_state, part_state
    t0 = time.perf_counter()
    new_state, part_state, m = rl_stage.rl_iteration(setup, new_state, None, part_state, step,
                                                     key)
    total = time.perf_counter() - t0
    return {"rollout": m["time/rollout_s"], "update": m["time/update_s"], "total": total}

  def run_old(step, key):
    nonlocal old_state
    t0 = time.perf_counter()
    old_state, parts = old_step(old_state, step, key)
    return {**parts, "total": time.perf_counter() - t0}

  for step in range(args.steps + 1):
    key = jax.random.fold_in(stage_key, step)  # the key `run_rl` gives step `step`
    order = (("new", run_new), ("old", run_old))
    results = dict((name, fn(step, key)) for name, fn in (order if step % 2 else order[::-1]))
    if step == 0:  # compiles; both from the same params with the same prompts and keys
      same_first = bool(np.array_equal(recorder.last_tokens, old_step.last_tokens))
      setup.rollout = recorder.rollout  # timed steps run the stage's own rollout part
      continue
    for name in ("old", "new"):
      for p in PARTS:
        times[name][p].append(results[name][p])

  med = {name: {p: statistics.median(v) for p, v in parts.items()}
         for name, parts in times.items()}
  ratio = {p: med["new"][p] / med["old"][p] for p in PARTS}
  r = exp.rl
  print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__}, backend {jax.default_backend()}, "
        f"{len(jax.devices())} device(s)")
  print(f"batch: {r.prompts_per_step} prompts x G={r.group_size}, P={exp.prompt_len}, "
        f"N={exp.max_new_tokens}, model {ctx.model_cfg.num_params():,} params; median of "
        f"{args.steps} interleaved steps each (after 1 compiling step)")
  print("| " + " | ".join(HEADER) + " |\n|---|---:|---:|---:|")
  for p in PARTS:
    print(f"| {p} | {med['old'][p]:.4f} | {med['new'][p]:.4f} | {ratio[p]:.3f} |")
  print(f"first rollout identical (same params, prompts, keys): {'yes' if same_first else 'NO'}")
  return {"old": med["old"], "new": med["new"], "ratio": ratio, "steps": args.steps,
          "same_first_rollout": same_first}


if __name__ == "__main__":
  main()
