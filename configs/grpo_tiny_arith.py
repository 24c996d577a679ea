"""GRPO on the tiny arithmetic task (SFT warm start, then GRPO).

    python -m rl_jax.main --config=configs/grpo_tiny_arith.py --workdir=runs/grpo_tiny_arith

`:runlocal` shrinks it for CI.
"""
from rl_jax import config_defaults as common


def get_config(arg=None):
  c = common.base_config()
  c.rl.algorithm = "grpo"
  # DeepSeekMath-style: k3 KL to the SFT reference in the loss.
  c.rl.use_kl_loss = True
  c.rl.beta = 0.04
  c.rl.num_epochs = 2  # two passes per rollout batch: the clip actually fires
  return common.finish(c, arg)
