"""Paper-only code: one package per seed system (its world, task, scorer, evaluator, report).

Projects register parts with the core registries and ship a config in configs/; the core never
imports a project (tests/loop_test.py checks it), a config names it in `imports`.
"""
