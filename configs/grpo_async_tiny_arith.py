"""Asynchronous GRPO on the tiny arithmetic task: one-step off-policy, packed updates.

    python -m rl_jax.main --config=configs/grpo_async_tiny_arith.py --workdir=runs/grpo_async

The quickstart experiment (SFT warm start, then GRPO) with the rollout of step t + 1 generated
while update t runs (`rl.off_policy_steps = 1`: every batch after the first is one update stale)
and the decoupled PPO loss with token-level truncated importance weights min(pi_prox / mu, 2)
on the stale samples (docs/async_rl.md). The update packs each mini-batch's sequences several
to a row (`rl.pack_sequences`: the same loss and gradient as unpacked, docs/benchmarks.md).
On a machine with several devices, `--config.rl.rollout_devices=N` gives the rollout the first N
devices and training the rest (they then run at the same time); with 0 (the default here, any
device count) rollout and update interleave on the whole mesh.
`:runlocal` shrinks it for CI (the bundled SFT checkpoint, 3 RL steps of 4 prompts x G=4).
"""
from rl_jax import config_defaults as common


def get_config(arg=None):
  c = common.base_config()
  c.rl.algorithm = "grpo"
  c.rl.off_policy_steps = 1  # k: a batch is at most k updates stale
  c.rl.rollout_devices = 0  # 0: interleave on the whole mesh; N: N rollout devices
  c.rl.importance_level = "token"  # token | sequence | geometric
  c.rl.importance_mode = "truncate"  # truncate (TIS) | mask
  c.rl.importance_cap = 2.0  # C: w = min(pi_prox / mu, C)
  c.rl.pack_sequences = True  # several responses per row in the update's forward pass

  def runlocal(c):
    c.rl.steps = 3  # steps 1 and 2 train on stale batches

  return common.finish(c, arg, runlocal)
