"""Seed S3, QUBRIC: co-designing queries and rubrics (arXiv 2606.03968; docs/qubric.md).

Importing this package registers its parts with the core (the config lists it in `imports`):
task "qubric" (`task`: the entity world of `world`, the query pipeline through the
intelligence protocols with the oracles of `oracles`), prompt source "qubric" (`source`: the
study's arms, validity and learnability retirement), scorer "qubric" (`scoring`: contrastive
rubrics, the consistency and learnability filters, the weighted rubric reward of `rubric`
through the judge), evaluator and report "qubric" (`evaluation`, `report`). Run with the one
loop:

    python -m rl_jax.main --config=configs/qubric_tiny.py --workdir=W
"""
from rl_jax.projects.qubric import evaluation, report, scoring, source, task  # noqa: F401
