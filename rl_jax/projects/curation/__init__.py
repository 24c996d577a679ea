"""Seed S2, taxonomy-guided recovery of low-tier web data (arXiv 2606.07778; docs/curation.md).

Importing this package registers its parts with the core (the config lists it in `imports`):
task "curation_corpus" (`task`: a tier of the synthetic corpus, optionally filtered, for the
`pretrain` stage), evaluators "curation_probes" (`probes`: the reasoning / coding / knowledge
probe suite) and "curation_annotation" (`study`: teacher, Embedder, multi-task MLP, transformer
classifier, kappa, NMI, throughput), report "curation_study" (`study`: the two-pass compound
filter search, each proxy LM a pretrain-only run of the one loop). Run:

    python -m rl_jax.main --config=configs/curation_tiny.py --workdir=runs/curation
"""
from rl_jax.projects.curation import probes, study, task  # noqa: F401
