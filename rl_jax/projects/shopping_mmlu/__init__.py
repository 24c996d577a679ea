"""Seed S9, Shopping MMLU (arXiv 2410.20745): a synthetic shop world of about twenty mini-tasks
over the benchmark's five task types and four skills, a tiny model multitask-trained on it
through the one loop, and the benchmark's per-skill report before and after (docs/eval.md).

Importing this package registers task "shop_world" (`task`), evaluator "shop_world" and report
"shop_world" (`evaluation`). The benchmark harness itself is core: rl_jax/eval/suites.py,
rl_jax/eval/shopping_mmlu.py and the evaluation command rl_jax/eval/__main__.py.

    python -m rl_jax.main --config=configs/shop_world_tiny.py --workdir=W
"""
from rl_jax.projects.shopping_mmlu import evaluation, task  # noqa: F401
