"""Shared config pieces. Every field is documented in `rl_jax/experiment.py`."""
from __future__ import annotations

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """Defaults shared by the tiny arithmetic experiments (a 2-core CPU runs them in minutes)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.tokenizer = "arith_char"
  c.task = ml_collections.ConfigDict(dict(name="arithmetic", num_operands=3, num_digits=2,
                                          train_size=1200, eval_size=200))
  c.prompt_len = 10
  c.max_new_tokens = 10
  c.logprob_impl = "naive"
  c.log_every = 1
  c.model = ml_collections.ConfigDict(dict(name="tiny", hf_checkpoint="", overrides={}))
  c.sft = ml_collections.ConfigDict(dict(steps=600, batch_size=64, learning_rate=1e-3,
                                         warmup_steps=20, schedule="cosine"))
  c.rl = ml_collections.ConfigDict(dict(
      algorithm="grpo", steps=100, prompts_per_step=64, group_size=8, num_epochs=1,
      num_minibatches=1, num_microbatches=1, temperature=1.0, top_p=1.0, top_k=0,
      eps_low=None, eps_high=None, eps_c=None, beta=0.0, kl_estimator=None, use_kl_loss=False,
      agg=None, adv_normalize=None, learning_rate=2e-4, warmup_steps=15, schedule="constant",
      weight_decay=0.0, max_grad_norm=1.0, dynamic_sampling=False, max_draws=4,
      overlong_max_len=0, overlong_cache_len=0, drop_zero_advantage=0))
  c.eval = ml_collections.ConfigDict(dict(every=20, batch_size=200))
  c.checkpoint = ml_collections.ConfigDict(dict(every=0, keep=2, async_save=True))
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
  return c


def shrink_for_ci(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`runlocal`: the same experiment, small enough for a CI test (seconds, not minutes)."""
  c.task.train_size = 64
  c.task.eval_size = 16
  c.sft.steps = 4
  c.sft.batch_size = 16
  c.rl.steps = 2
  c.rl.prompts_per_step = 4
  c.rl.group_size = 4
  c.rl.num_minibatches = 1
  c.rl.num_microbatches = 2
  c.eval.batch_size = 16
  c.model.overrides = {"num_layers": 1, "hidden_size": 32, "num_heads": 2, "num_kv_heads": 1,
                       "head_dim": 16, "intermediate_size": 64}
  return c


def finish(c: ml_collections.ConfigDict, arg, runlocal=None) -> ml_collections.ConfigDict:
  """Applies the config-file argument: None (full run) or "runlocal" (shrink_for_ci, then the
  experiment-specific `runlocal(c)` tweaks); anything else is an error."""
  if arg == "runlocal":
    shrink_for_ci(c)
    if runlocal is not None:
      runlocal(c)
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; valid: 'runlocal'")
  return c
