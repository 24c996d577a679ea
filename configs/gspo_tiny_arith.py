"""GSPO on the tiny arithmetic task (SFT warm start, then GSPO).

    python -m rl_jax.main --config=configs/gspo_tiny_arith.py --workdir=runs/gspo_tiny_arith

`:runlocal` shrinks it for CI.
"""
from rl_jax import config_defaults as common


def get_config(arg=None):
  c = common.base_config()
  c.rl.algorithm = "gspo"
  # GSPO: sequence-level ratio with its own tiny epsilons (paper: 3e-4 / 4e-4), 4 mini-batches
  # per rollout batch as in the paper, so later mini-batches are off-policy and clipping matters.
  c.rl.beta = None
  c.rl.num_minibatches = 4

  def runlocal(c):
    c.rl.num_minibatches = 2

  return common.finish(c, arg, runlocal)
