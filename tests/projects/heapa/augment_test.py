"""HeaPA's arithmetic augmenters and exact validator (rl_jax/projects/heapa/augment.py)."""
import types

import numpy as np
import pytest

from rl_jax.envs.arithmetic import ArithmeticTask
from rl_jax.projects.heapa import augment

TASK = ArithmeticTask(3, 2)


def test_carries_by_hand():
  assert augment.carries([12, 34, 51]) == 0      # 2+4+1=7, 1+3+5=9
  assert augment.carries([19, 1, 0]) == 1        # 9+1=10 -> carry; 1+0+0+1=2
  assert augment.carries([99, 99, 99]) == 2      # 27 -> carry 2; 9*3+2=29 -> carry 2
  assert augment.carries([55, 55]) == 2          # 10 -> 1; 5+5+1=11 -> 1
  assert augment.relative_difficulty([12, 34, 51], [99, 99, 99]) == 3.0


def _validator(held_out=()):
  ctx = types.SimpleNamespace(task=types.SimpleNamespace(
      eval=[TASK.make_problem(o) for o in held_out]))
  return augment.ExactValidator(ctx=ctx)


def test_exact_validator_verdicts():
  v = _validator(held_out=[(1, 2, 3)])
  ok = v({"operands": [12, 34, 56], "shape": [3, 2], "parent": [12, 34, 55]})
  assert ok.status == "ok" and augment.decode(ok.problem).answer == "201"  # 102 reversed
  assert v({"text": "21+43+65=", "shape": [3, 2], "parent": [1, 1, 1]}).problem == {
      "operands": [12, 34, 56], "shape": [3, 2]}
  assert v({"operands": [12, 34, 100], "shape": [3, 2]}).status == "unsolvable"
  assert v({"operands": [12, -3, 10], "shape": [3, 2]}).status == "unsolvable"
  assert v({"operands": [12, 34], "shape": [3, 2]}).status == "invalid"
  assert v({"operands": [12, 34, "5"], "shape": [3, 2]}).status == "invalid"
  assert v({"text": "21+43+6=", "shape": [3, 2]}).status == "invalid"
  assert v({"text": "2,1+43", "shape": [3, 2]}).status == "invalid"
  assert v({"operands": [1, 2, 3]}).status == "invalid"  # no shape
  assert v({"operands": [1, 2, 3], "shape": [3, 2], "parent": [1, 2, 3]}).status == "duplicate"
  assert v({"operands": [1, 2, 3], "shape": [3, 2], "parent": [1, 2, 4]}).status == "heldout"


def test_perturber_changes_only_numbers_and_reports_carry_difficulty():
  parents = TASK.sample(200, 0)
  variants, info = augment.PerturbAugmenter(change_prob=0.5, max_shift=30).propose(
      parents, np.random.default_rng(0))
  assert info == {} and len(variants) == 200
  v = _validator()
  statuses = [v(x.payload).status for x in variants]
  assert set(statuses) <= {"ok", "unsolvable"}
  assert 0 < statuses.count("unsolvable") < 100  # shifts past 0 or 99 are refused, not kept
  for p, x in zip(parents, variants):
    ops = x.payload["operands"]
    changed = [a != b for a, b in zip(ops, p.operands)]
    assert any(changed) and all(abs(a - b) <= 30 for a, b in zip(ops, p.operands))
    if all(0 <= o < 100 for o in ops):
      assert x.difficulty == pytest.approx(
          (augment.carries(ops) + 1) / (augment.carries(p.operands) + 1))
  with pytest.raises(ValueError, match="change_prob"):
    augment.PerturbAugmenter(change_prob=0.0)
