"""Update tokens/s with and without sequence packing, on a batch of mixed lengths, same run.

    python bench/packing.py [--rows 64] [--prompt 32] [--response 224] [--reps 5]
    python bench/packing.py --quick     # tiny sizes, seconds (the test)

One compiled update step (`rl_jax.update.update_step_fn`: GRPO's per-sequence token mean, one
AdamW step, 2 micro-batches) on the same rollout-shaped batch: prompts of P/4 .. P tokens
(left-padded) and responses of 8 .. N tokens (right-padded), drawn uniformly (fixed numpy seed),
so about half the [B, P + N] slots are padding. "unpacked" runs the step on the slot layout;
"packed" packs each micro-batch's sequences into rows of P + N slots first (`rl_jax.packing`,
host time included) and runs the same step on the packed rows. Tokens/s counts the batch's real
(valid) tokens; the ratio packed / unpacked is the speed-up. Timings alternate packed and
unpacked (the order swapped every repetition, so load on the machine hits both alike); the
first call of each compiles and is not timed; per layout the median. The loss of the two is
checked equal (packing changes no number beyond float order: tests/algorithms/packing_test.py).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rl_jax import optim, packing  # noqa: E402
from rl_jax.algorithms import losses  # noqa: E402
from rl_jax.models import qwen3  # noqa: E402
from rl_jax.models.config import get_model_config  # noqa: E402
from rl_jax.types import Batch  # noqa: E402
from rl_jax.update import UpdateCfg, UpdateKnobs, init_train_state, update_step_fn  # noqa: E402

HEADER = ("layout", "rows x slots", "s/update", "tokens/s")
QUICK_MODEL = dict(num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=2, head_dim=16,
                   intermediate_size=192)


def mixed_batch(rows: int, prompt: int, response: int, vocab: int, seed: int = 0) -> Batch:
  """Left-padded prompts of P/4..P tokens, responses of 8..N (min N) tokens, random ids."""
  rng = np.random.default_rng(seed)
  prompt_len = rng.integers(max(prompt // 4, 1), prompt + 1, size=rows)
  resp_len = rng.integers(min(8, response), response + 1, size=rows)
  idx = np.arange(prompt + response)[None]
  valid = (idx >= prompt - prompt_len[:, None]) & (idx < prompt + resp_len[:, None])
  mask = valid & (idx >= prompt)
  tokens = np.where(valid, rng.integers(1, vocab, size=valid.shape), 0)
  old = np.where(mask, -rng.uniform(0.5, 4.0, size=valid.shape), 0.0)
  return Batch(tokens_BxL=jnp.asarray(tokens, jnp.int32), valid_BxL=jnp.asarray(valid),
               loss_mask_BxL=jnp.asarray(mask, jnp.float32),
               old_logp_BxL=jnp.asarray(old, jnp.float32), ref_logp_BxL=None,
               advantages_B=jnp.asarray(rng.normal(size=rows), jnp.float32))


def _default(value, fallback):
  """The flag's value when given (0 included, so it is refused), else the size's default."""
  return fallback if value is None else value


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rows", type=int, default=None, help="sequences per update (64; quick 16)")
  parser.add_argument("--prompt", type=int, default=None, help="prompt slots P (32; quick 8)")
  parser.add_argument("--response", type=int, default=None, help="response slots N (224; quick 24)")
  parser.add_argument("--reps", type=int, default=None, help="timed calls per layout (5; quick 2)")
  parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds (the test)")
  args = parser.parse_args(argv)
  q = args.quick
  rows = _default(args.rows, 16 if q else 64)
  prompt = _default(args.prompt, 8 if q else 32)
  response = _default(args.response, 24 if q else 224)
  reps = _default(args.reps, 2 if q else 5)
  for name, value in (("--rows", rows), ("--prompt", prompt), ("--response", response),
                      ("--reps", reps)):
    if value < 1:
      parser.error(f"{name} must be >= 1, got {value}")
  cfg = get_model_config("tiny", vocab_size=256, max_seq_len=prompt + response,
                         **(QUICK_MODEL if q else {}))
  params = qwen3.init_params(cfg, jax.random.PRNGKey(0))
  ucfg = UpdateCfg(model=cfg, loss=losses.LossCfg("token", "seq_mean_token_mean"),
                   optim=optim.OptimCfg(warmup_steps=0), num_microbatches=2)
  knobs = UpdateKnobs.create(losses.LossKnobs.create(eps_low=0.2), 1e-4)
  batch = mixed_batch(rows, prompt, response, cfg.vocab_size)
  step = jax.jit(lambda s, b: update_step_fn(s, b, knobs, cfg=ucfg))  # no donation: reused state
  state = init_train_state(params, ucfg)
  real_tokens = int(np.sum(batch.valid_BxL))

  def run(layout):
    t0 = time.perf_counter()
    b = packing.pack_batch(batch, num_microbatches=2) if layout == "packed" else batch
    _, metrics = step(state, b)
    jax.block_until_ready(metrics)
    return time.perf_counter() - t0, b, float(metrics["loss/total"])

  layouts = ("unpacked", "packed")
  first = {name: run(name) for name in layouts}  # compiles
  times = {name: [] for name in layouts}
  for rep in range(reps):
    for name in (layouts if rep % 2 == 0 else layouts[::-1]):
      times[name].append(run(name)[0])
  seconds = {name: statistics.median(t) for name, t in times.items()}
  shapes = {"unpacked": batch.tokens_BxL.shape,
            "packed": first["packed"][1].packed.tokens_RxT.shape}
  result = {"seconds": seconds, "tokens_per_s": {n: real_tokens / s for n, s in seconds.items()},
            "shapes": shapes, "real_tokens": real_tokens, "reps": reps,
            "loss": {n: first[n][2] for n in layouts}}
  result["ratio"] = result["tokens_per_s"]["packed"] / result["tokens_per_s"]["unpacked"]
  print(f"update step, {rows} sequences of P={prompt} + N={response} slots ({real_tokens} real "
        f"tokens, {real_tokens / (rows * (prompt + response)):.0%} of the slots), "
        f"{cfg.num_layers} layers x d={cfg.hidden_size}, 2 micro-batches, "
        f"{jax.device_count()} {jax.devices()[0].platform} device(s); median of {reps}")
  print("| " + " | ".join(HEADER) + " |")
  print("|---|---:|---:|---:|")
  for name in layouts:
    r, t = shapes[name]
    print(f"| {name} | {r} x {t} | {seconds[name]:.4f} | {result['tokens_per_s'][name]:.0f} |")
  print(f"packed / unpacked tokens/s: {result['ratio']:.3f}")
  print(f"loss packed {result['loss']['packed']:.6f} vs unpacked {result['loss']['unpacked']:.6f}")
  return result


if __name__ == "__main__":
  main()
