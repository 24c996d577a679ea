"""Seed S4, multi-step tool orchestration with constrained synthesis and graduated rewards
(arXiv 2603.24709; docs/tool_orchestration.md).

Importing this package registers its parts with the core (the config lists it in `imports`):
task "tool_orchestration" (`task`), scorer "tool_orchestration" (`scoring`), evaluator and
report "tool_orchestration" (`evaluation`, `report`). The environment is `api.CachedApiEnv`,
run by the core's multi-turn "tool" rollout. Run with the one loop:

    python -m rl_jax.main --config=configs/tool_orchestration_tiny.py --workdir=W
"""
from rl_jax.projects.tool_orchestration import evaluation, report, scoring, task  # noqa: F401
