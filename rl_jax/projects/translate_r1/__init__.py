"""Seed S1, Translate-R1: learning when to translate, confidence-gated GSPO with a
cost-sensitive translate tool, on a cipher-language world (docs/translate_r1.md).

Importing this package registers its parts with the core (the config lists it in `imports`):
task "translate_r1_cipher" (`task`), scorer "translate_r1_episode" (`scoring`), evaluator and
report "translate_r1" (`evaluation`, `report`). The gate itself is the core's "gated" advantage
(`rl_jax.algorithms.advantage_parts`). Run with the one loop:

    python -m rl_jax.main --config=configs/gated_gspo_tiny_cipher.py --workdir=W
    python -m rl_jax.projects.translate_r1.report W [W2 W3]     # the seed table
"""
from rl_jax.projects.translate_r1 import evaluation, report, scoring, task  # noqa: F401
