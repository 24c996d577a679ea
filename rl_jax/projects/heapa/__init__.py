"""Seed S6, HeaPA: heap sampling with on-policy query augmentation (arXiv 2601.22448) on the
arithmetic task (docs/heapa.md).

The pool itself is the core prompt source "heapa" (`rl_jax.algorithms.heapa`); importing this
package registers what uses the arithmetic task's structure (the config lists it in `imports`):
augmenters "arith_policy" (the current policy writes the new numbers) and "arith_perturb" (a
programmatic perturber standing in for it), the exact validator "arith_exact" (`augment`) and
the study report "heapa" (`report`). Run the study with the one loop:

    for arm in uniform dynamic heap heap_aug heap_aug_path; do
      python -m rl_jax.main --config=configs/heapa_tiny_arith.py:$arm --workdir=runs/heapa/$arm
    done
"""
from rl_jax.projects.heapa import augment, report  # noqa: F401
