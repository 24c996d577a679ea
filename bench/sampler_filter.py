"""Per-token sampling cost: `sample_token` (the top-k / top-p sort skipped when both are off)
against the same sampler that always runs the filter, same run.

    python bench/sampler_filter.py           # [128, 2292] (Translate-R1 rollouts), [16, 32000]
    python bench/sampler_filter.py --quick   # tiny sizes, seconds; what the test runs

`filter_logits` sorts every row of the [B, V] logits to find the top-k threshold and the
nucleus; with top_k = 0 and top_p = 1 (plain temperature sampling, the RL default) the sort
changes nothing, yet an unconditional filter pays for it at every decode step. `sample_token`
now takes a `lax.cond` on the traced knobs and skips it; the baseline here is the sampler with
the filter always on (what `sample_token` did before). Both draw with the same key, so the
`agree` column is the fraction of identical tokens: 1 unless a tail token that the always-on
nucleus cut (cumulative mass rounding to 1 in f32) would have been drawn.

A row with top_p = 0.9 shows the filtered path still pays the sort (ratio ~1). Times are the
best of `reps` calls of an ahead-of-time compiled program (`block_until_ready` each).
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.sampling.samplers import filter_logits, sample_token
from rl_jax.types import SampleKnobs

HEADER = ("batch", "vocab", "top_p", "sample_token ms", "always-filter ms", "speedup", "agree")
FULL = ((128, 2292, 1.0), (16, 32000, 1.0), (128, 2292, 0.9))
QUICK = ((4, 64, 1.0), (4, 64, 0.9))


def always_filter_sample(logits_BxV: jax.Array, key: jax.Array, knobs: SampleKnobs):
  """The baseline: `sample_token` with `filter_logits` run unconditionally."""
  filtered = filter_logits(logits_BxV, knobs)
  token_B = jnp.where(knobs.temperature > 0, jax.random.categorical(key, filtered, axis=-1),
                      jnp.argmax(logits_BxV, axis=-1)).astype(jnp.int32)
  logp_sample = jnp.take_along_axis(jax.nn.log_softmax(filtered, axis=-1), token_B[:, None],
                                    axis=-1)[:, 0]
  return token_B, logp_sample


def _best_ms(fn, args, reps: int) -> tuple[float, tuple]:
  out = jax.block_until_ready(fn(*args))  # warm-up
  best = float("inf")
  for _ in range(reps):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - start)
  return 1e3 * best, out


def run_case(batch: int, vocab: int, top_p: float, reps: int, draws: int) -> dict:
  logits_BxV = 3.0 * jax.random.normal(jax.random.key(0), (batch, vocab), jnp.float32)
  knobs = SampleKnobs.create(temperature=1.0, top_p=top_p)
  args = (logits_BxV, jax.random.key(1), knobs)
  fast = jax.jit(sample_token).lower(*args).compile()
  slow = jax.jit(always_filter_sample).lower(*args).compile()
  fast_ms, _ = _best_ms(fast, args, reps)
  slow_ms, _ = _best_ms(slow, args, reps)
  same = []
  for d in range(draws):  # several keys, so `agree` covers batch * draws tokens
    a = (logits_BxV, jax.random.key(100 + d), knobs)
    same.append(np.asarray(fast(*a)[0]) == np.asarray(slow(*a)[0]))
  return dict(batch=batch, vocab=vocab, top_p=top_p, fast_ms=fast_ms, slow_ms=slow_ms,
              speedup=slow_ms / fast_ms, agree=float(np.mean(same)))


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="tiny sizes (the test)")
  args = parser.parse_args(argv)
  cases, reps, draws = (QUICK, 2, 4) if args.quick else (FULL, 20, 20)
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, "
        f"devices {[d.device_kind for d in jax.devices()]}")
  print("| " + " | ".join(HEADER) + " |")
  print("|" + "---:|" * len(HEADER))
  rows = []
  for batch, vocab, top_p in cases:
    r = run_case(batch, vocab, top_p, reps, draws)
    rows.append(r)
    print(f"| {batch} | {vocab} | {top_p:g} | {r['fast_ms']:.2f} | {r['slow_ms']:.2f} | "
          f"{r['speedup']:.2f}x | {r['agree']:.4f} |", flush=True)
  return rows


if __name__ == "__main__":
  main()
