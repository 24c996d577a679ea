"""Seed S10, ECD: evolutionary contrastive distillation (arXiv 2410.07513) on a
constraint-instruction world: SFT on evolved instructions, then DPO with random, ECD (previous
round's response) or both kinds of negatives (docs/ecd.md).

Importing this package registers its parts with the core (the config lists it in `imports`):
task "ecd_constraints" (`task`), evaluator "ecd" (`evaluation`) and report "ecd" (`report`).
The world (`world`): `OpTaxonomy`, `Evolver`, `Teacher`, `ConstraintChecker`. DPO is the core's
`preference` stage. Run with the one loop:

    python -m rl_jax.main --config=configs/ecd_tiny.py --workdir=W
"""
from rl_jax.projects.ecd import evaluation, report, task  # noqa: F401
