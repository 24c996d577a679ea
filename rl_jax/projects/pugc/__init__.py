"""Seed S7, PUGC: implicit preferences from user-generated content (ACL 2025, arXiv 2506.04463)
on a synthetic world of places and visitor posts: SFT, then DPO on pairs of the SFT policy's own
samples, judged with the post as reference or (the baseline) without (docs/pugc.md).

Importing this package registers its parts with the core (the config lists it in `imports`):
task "pugc_ugc" (`task`: the pair pipeline `UgcPairs`), evaluator "pugc" (`evaluation`) and
report "pugc" (`report`). The world (`world`), the protocol oracles (`oracles`:
QueryGenerator, AnswerabilityFilter, the reference-guided and no-reference Judges) and the
length-controlled win rate (`winrate`). DPO is the core's `preference` stage, which hands the
pair provider the SFT policy as a sampler. Run with the one loop:

    python -m rl_jax.main --config=configs/pugc_tiny.py --workdir=W
"""
from rl_jax.projects.pugc import evaluation, report, task  # noqa: F401
