"""DAPO on the tiny arithmetic task (SFT warm start, then DAPO).

    python -m rl_jax.main --config=configs/dapo_tiny_arith.py --workdir=runs/dapo_tiny_arith

`:runlocal` shrinks it for CI.
"""
from rl_jax import config_defaults as common


def get_config(arg=None):
  c = common.base_config()
  c.rl.algorithm = "dapo"
  # DAPO: clip-higher (0.2 / 0.28), token-level loss, dynamic sampling, soft overlong penalty
  # counted in tokens (L_max = max_new_tokens, L_cache = 3).
  c.rl.beta = None
  c.rl.dynamic_sampling = True
  c.rl.max_draws = 4
  c.rl.overlong_max_len = c.max_new_tokens
  c.rl.overlong_cache_len = 3

  def runlocal(c):
    c.rl.max_draws = 8

  return common.finish(c, arg, runlocal)
