"""Seed S8, Hephaestus: agent continual pretraining on a synthetic API universe, the mixing
study over agent share x width, and stages I (mixture) / II (seed trajectories) / SFT
(arXiv 2502.06589; docs/agent_pretraining.md).

Importing this package registers its parts with the core (the config lists it in `imports`):
task "agent_api" (`task`), the corpus sources (`corpus.CORPUS_SOURCES`), evaluator
"agent_pretraining" (`evaluation`), report "agent_pretraining" (`report`) and the config section
`mixing` (`study`). Run with the one loop, or the study driver that calls it per grid point:

    python -m rl_jax.main --config=configs/agent_pretraining_tiny.py --workdir=W
    python -m rl_jax.projects.agent_pretraining.study --config=configs/agent_pretraining_tiny.py \
        --workdir=W
"""
from rl_jax.projects.agent_pretraining import corpus, evaluation, report, study, task  # noqa: F401
