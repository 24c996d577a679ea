"""Seed S5, SWAP: step-wise adaptive length penalties on verbose chain-of-thought arithmetic
(docs/swap.md).

Importing this package registers its parts with the core (the config lists it in `imports`):
task "swap_verbose_arith" (`task`), evaluator "swap" (`evaluation`), report "swap" (`report`).
SWAP itself is the core's "swap" rollout and advantage (`rl_jax.algorithms.swap`). Run with the
one loop:

    python -m rl_jax.main --config=configs/swap_tiny_arith.py --workdir=W
    python -m rl_jax.projects.swap.report W [W2 W3]       # the seed table
"""
from rl_jax.projects.swap import evaluation, report, task  # noqa: F401
