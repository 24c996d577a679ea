"""Wall time of one full RL step (rollout + host rewards + update) for the quickstart config.

    python bench/rl_step.py [--steps 5] [--prompts 64] [--group 8]

Prints the median over `--steps` steps (after one warm-up step that compiles) of the three parts
and their share; the numbers go in docs/benchmarks.md with the machine. No SFT: a random policy
of the same shapes costs the same per step (responses run to the same 10-token budget).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import quickstart  # noqa: E402
from rl_jax import experiment, trainer, tasks  # noqa: E402
from rl_jax.algorithms import advantages  # noqa: E402
from rl_jax.data.encoding import decode_responses, encode_prompts  # noqa: E402
from rl_jax.sampling.generate import generate  # noqa: E402
from rl_jax.tokenizers import load_tokenizer  # noqa: E402
from rl_jax.types import Batch  # noqa: E402
from rl_jax.update import init_train_state, train_on_rollout  # noqa: E402


def main(argv=None):
  parser = argparse.ArgumentParser()
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--prompts", type=int, default=64)
  parser.add_argument("--group", type=int, default=8)
  args = parser.parse_args(argv)
  c = quickstart.get_config()
  c.rl.prompts_per_step, c.rl.group_size = args.prompts, args.group
  exp = experiment.from_config_dict(c)
  tok = load_tokenizer(exp.tokenizer)
  task_kwargs = dict(exp.task)
  task = tasks.make_task(task_kwargs.pop("name"), **task_kwargs)
  model_cfg, params = trainer.build_model(exp, tok.vocab_size, jax.random.key(0))
  ctx = trainer._rl_context(exp, task, tok, model_cfg)  # pylint: disable=protected-access
  state = init_train_state(params, ctx.update_cfg)
  g = exp.rl.group_size
  parts = {"rollout": [], "host": [], "update": []}
  for step in range(args.steps + 1):
    problems = task.sample_rl(exp.rl.prompts_per_step, np.random.default_rng(step))
    t0 = time.perf_counter()
    toks, valid = encode_prompts(tok, [task.prompt_fn(p) for p in problems], exp.prompt_len)
    rollout = jax.block_until_ready(generate(state.params, jnp.asarray(toks), jnp.asarray(valid),
                                             jax.random.key(step), ctx.sample_knobs,
                                             model_cfg=model_cfg, cfg=ctx.gen_cfg))
    t1 = time.perf_counter()
    host = jax.device_get(rollout)
    texts = decode_responses(tok, host.tokens_BxL, host.loss_mask_BxL, exp.prompt_len,
                             ctx.gen_cfg.stop_ids)
    rewards = task.rewards([p for p in problems for _ in range(g)], texts)
    adv = advantages.group_advantages(jnp.asarray(rewards), group_size=g, normalize="std")
    t2 = time.perf_counter()
    batch = Batch(rollout.tokens_BxL, rollout.valid_BxL, rollout.loss_mask_BxL,
                  rollout.logp_policy_BxL, jnp.zeros_like(rollout.logp_policy_BxL), adv)
    state, metrics = train_on_rollout(state, batch, ctx.update_knobs, jax.random.key(step),
                                      cfg=ctx.update_cfg, group_size=g)
    jax.block_until_ready(metrics)
    t3 = time.perf_counter()
    if step:  # step 0 compiles
      for name, dt in (("rollout", t1 - t0), ("host", t2 - t1), ("update", t3 - t2)):
        parts[name].append(dt)
  med = {k: statistics.median(v) for k, v in parts.items()}
  total = sum(med.values())
  print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__}, backend {jax.default_backend()}")
  print(f"batch: {exp.rl.prompts_per_step} prompts x G={g}, P={exp.prompt_len}, "
        f"N={exp.max_new_tokens}; median of {args.steps} steps")
  print("| part | seconds | share |\n|---|---:|---:|")
  for k, v in med.items():
    print(f"| {k} | {v:.3f} | {100 * v / total:.0f}% |")
  print(f"| total | {total:.3f} | 100% |")
  return med


if __name__ == "__main__":
  main()
