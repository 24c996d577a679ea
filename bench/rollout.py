"""Rollout throughput: KV-cached `generate` against a no-cache recompute decode, same run.

    python bench/rollout.py              # T = 64 and 256 new tokens, batch 16
    python bench/rollout.py --batch64    # also T = 256 at batch 64 (minutes more on a CPU)
    python bench/rollout.py --quick      # tiny sizes, seconds; what the test runs

Both decoders use the same model, parameters, prompts, PRNG key and sampling knobs, have no stop
tokens (so each produces exactly T tokens per row) and sample with `sample_token` using
`fold_in(key, step)`, so they draw the same tokens; the table's `agree` column reports the
fraction of generated tokens that are identical, as a check that both do the same work.

The baseline is what a decoder without a cache must do under static shapes: at every step it
runs the full `qwen3.forward` over the whole [B, P+T] buffer (future slots masked out) and reads
the logits at the last filled slot, i.e. T full forwards of P+T tokens, O(T (P+T)) token-layers
instead of the cache's O(P + T).

Throughput is B * T generated tokens divided by the wall time of one call (prefill included for
the cached path, which has one). Compile time is excluded: each program is compiled ahead of
time (`lower().compile()`), then timed over `reps` calls, each ended with
`block_until_ready`; the best call is reported (least disturbed by other load on the machine).
See `run_case` for why the slow baseline gets no warm-up call.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.models import qwen3
from rl_jax.models.config import ModelConfig, get_model_config
from rl_jax.sampling.generate import GenerateCfg, generate
from rl_jax.sampling.samplers import sample_token
from rl_jax.types import SampleKnobs

HEADER = ("T", "batch", "cached tok/s", "recompute tok/s", "speedup", "agree")


@functools.partial(jax.jit, static_argnames=("model_cfg", "max_new_tokens"))
def recompute_generate(params, prompt_tokens_BxP: jax.Array, prompt_valid_BxP: jax.Array,
                       key: jax.Array, knobs: SampleKnobs, *, model_cfg: ModelConfig,
                       max_new_tokens: int) -> jax.Array:
  """No-cache baseline: T steps, each a full forward over the static [B, P+T] buffer.

  Step s samples the token of slot P+s from the logits of slot P+s-1 (the last filled one);
  slots not yet generated are invalid, so the causal + validity mask hides them and the result
  equals the cached decode's up to float rounding. Returns the [B, P+T] token buffer.
  """
  batch, prompt_len = prompt_tokens_BxP.shape
  pad = jnp.zeros((batch, max_new_tokens), jnp.int32)
  tokens_BxL = jnp.concatenate([prompt_tokens_BxP.astype(jnp.int32), pad], axis=1)
  valid_BxL = jnp.concatenate([prompt_valid_BxP.astype(bool), pad.astype(bool)], axis=1)

  def step(s, carry):
    tokens_BxL, valid_BxL = carry
    hidden_BxLxD, _ = qwen3.forward(params, tokens_BxL, qwen3.positions_from_mask(valid_BxL),
                                    valid_BxL, cfg=model_cfg)
    last_Bx1xD = jax.lax.dynamic_index_in_dim(hidden_BxLxD, prompt_len + s - 1, axis=1)
    logits_BxV = qwen3.logits(params, last_Bx1xD, cfg=model_cfg)[:, 0]
    token_B, _, _ = sample_token(logits_BxV, jax.random.fold_in(key, s), knobs)
    put = lambda buf, col: jax.lax.dynamic_update_slice_in_dim(buf, col[:, None].astype(buf.dtype),
                                                              prompt_len + s, axis=1)
    return put(tokens_BxL, token_B), put(valid_BxL, jnp.ones_like(token_B, bool))

  tokens_BxL, _ = jax.lax.fori_loop(0, max_new_tokens, step, (tokens_BxL, valid_BxL))
  return tokens_BxL


@dataclasses.dataclass(frozen=True)
class Case:
  new_tokens: int
  batch: int


@dataclasses.dataclass(frozen=True)
class Sizes:
  """model/vocab/prompt_len: the workload; reps: timed calls of the cached decode (after a
  warm-up call); recompute_reps: timed calls of the baseline (no warm-up, see `run_case`)."""
  model: str
  vocab: int
  prompt_len: int
  cases: tuple[Case, ...]
  reps: int
  recompute_reps: int
  temperature: float = 1.0


FULL = Sizes(model="tiny", vocab=512, prompt_len=16, cases=(Case(64, 16), Case(256, 16)), reps=3,
             recompute_reps=1)
BATCH64 = Case(256, 64)  # opt-in (--batch64): its baseline alone takes minutes on 2 CPU cores
QUICK = Sizes(model="tiny", vocab=64, prompt_len=4, cases=(Case(8, 2),), reps=1, recompute_reps=1)


def _best_seconds(fn, reps: int, warmup: bool):
  """(best wall time over `reps` calls, last output); fn must be compiled already."""
  if warmup:
    jax.block_until_ready(fn())
  best, out = float("inf"), None
  for _ in range(reps):
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - start)
  return best, out


def _prompts(key: jax.Array, batch: int, prompt_len: int, vocab: int):
  """Random prompts, left-padded to different lengths (row b keeps at least half its slots)."""
  tok_key, len_key = jax.random.split(key)
  tokens_BxP = jax.random.randint(tok_key, (batch, prompt_len), 1, vocab, jnp.int32)
  lengths_B = jax.random.randint(len_key, (batch,), (prompt_len + 1) // 2, prompt_len + 1)
  valid_BxP = jnp.arange(prompt_len)[None, :] >= (prompt_len - lengths_B)[:, None]
  return jnp.where(valid_BxP, tokens_BxP, 0), valid_BxP


def run_case(params, case: Case, sizes: Sizes, model_cfg: ModelConfig, key: jax.Array) -> dict:
  """Times both decoders on one (T, batch) case; returns one table row as a dict.

  Both programs are compiled ahead of time, so no timed call includes compilation. The cached
  decode gets a warm-up call before its timed calls; the baseline does not, because one of its
  calls lasts seconds to minutes (T full forwards) and a warm-up would double the run time
  for a first-call effect (buffer allocation) of milliseconds.
  """
  prompt_key, sample_key = jax.random.split(key)
  tokens_BxP, valid_BxP = _prompts(prompt_key, case.batch, sizes.prompt_len, sizes.vocab)
  knobs = SampleKnobs.create(temperature=sizes.temperature)
  args = (params, tokens_BxP, valid_BxP, sample_key, knobs)
  gen_cfg = GenerateCfg(max_new_tokens=case.new_tokens, group_size=1, stop_ids=(), pad_id=0)
  cached = generate.lower(*args, model_cfg=model_cfg, cfg=gen_cfg).compile()
  recompute = recompute_generate.lower(*args, model_cfg=model_cfg,
                                       max_new_tokens=case.new_tokens).compile()
  cached_s, rollout = _best_seconds(lambda: cached(*args), sizes.reps, warmup=True)
  recompute_s, tokens_BxL = _best_seconds(lambda: recompute(*args), sizes.recompute_reps,
                                          warmup=False)
  response = slice(sizes.prompt_len, None)
  agree = np.mean(np.asarray(rollout.tokens_BxL)[:, response]
                  == np.asarray(tokens_BxL)[:, response])
  generated = case.batch * case.new_tokens
  return dict(new_tokens=case.new_tokens, batch=case.batch, cached_tok_s=generated / cached_s,
              recompute_tok_s=generated / recompute_s, speedup=recompute_s / cached_s,
              agree=float(agree))


def table_header() -> str:
  return "| " + " | ".join(HEADER) + " |\n|" + "---:|" * len(HEADER)


def table_row(r: dict) -> str:
  return (f"| {r['new_tokens']} | {r['batch']} | {r['cached_tok_s']:.0f} | "
          f"{r['recompute_tok_s']:.0f} | {r['speedup']:.1f}x | {r['agree']:.3f} |")


def _positive(text: str) -> int:
  value = int(text)
  if value <= 0:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
  return value


def main(argv: list[str] | None = None) -> list[dict]:
  """Parses flags, runs every case, prints the markdown table row by row; returns the rows."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds), for the test")
  parser.add_argument("--batch64", action="store_true",
                      help="add T=256 at batch 64 (its baseline takes minutes on 2 CPU cores)")
  parser.add_argument("--reps", type=_positive, default=None, help="timed cached calls")
  parser.add_argument("--recompute-reps", type=_positive, default=None,
                      help="timed baseline calls")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  sizes = QUICK if args.quick else FULL
  if args.batch64:
    sizes = dataclasses.replace(sizes, cases=sizes.cases + (BATCH64,))
  if args.reps is not None:
    sizes = dataclasses.replace(sizes, reps=args.reps)
  if args.recompute_reps is not None:
    sizes = dataclasses.replace(sizes, recompute_reps=args.recompute_reps)
  longest = sizes.prompt_len + max(c.new_tokens for c in sizes.cases)
  model_cfg = get_model_config(sizes.model, vocab_size=sizes.vocab, max_seq_len=max(longest, 256))
  key = jax.random.key(args.seed)
  params = qwen3.init_params(model_cfg, jax.random.fold_in(key, 0))
  print(f"model={sizes.model} (d={model_cfg.hidden_size}, layers={model_cfg.num_layers}, "
        f"vocab={sizes.vocab}) prompt_len={sizes.prompt_len} temperature={sizes.temperature} "
        f"reps={sizes.reps} recompute_reps={sizes.recompute_reps} "
        f"backend={jax.default_backend()} jax={jax.__version__}")
  print(table_header(), flush=True)
  rows = []
  for i, case in enumerate(sizes.cases):
    rows.append(run_case(params, case, sizes, model_cfg, jax.random.fold_in(key, i + 1)))
    print(table_row(rows[-1]), flush=True)
  return rows


if __name__ == "__main__":
  main()
