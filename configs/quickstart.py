"""Quickstart: tiny Qwen3-style model, SFT on worked additions, then GRPO. ~3.5 min on 2 CPU cores.

    python -m rl_jax.main --config=configs/quickstart.py --workdir=runs/quickstart

Prints held-out greedy accuracy after SFT and after RL, and the RL training reward rising.
`--config=configs/quickstart.py:runlocal` shrinks it to seconds (what the CI test runs).
Any field can be overridden: `--config.rl.steps=60 --config.rl.learning_rate=1e-4`.
"""
from rl_jax import config_defaults as common


def get_config(arg=None):
  c = common.base_config()
  c.rl.algorithm = "grpo"
  return common.finish(c, arg)
