"""The ECD world: exact constraint checks on hand-written responses, the teacher's solutions,
hard negatives that miss exactly the newest constraint, the taxonomy, and the task's pairs."""
import collections

import numpy as np
import pytest

from rl_jax.projects.ecd import task as ecd_task
from rl_jax.projects.ecd import world
from rl_jax.projects.ecd.world import Constraint, Instruction


def test_checker_on_hand_written_responses():
  check = world.ConstraintChecker().check
  ins = Instruction("fruit", (Constraint("include", "plum"), Constraint("count", "3"),
                              Constraint("upper"), Constraint("sorted"),
                              Constraint("end", "!")))
  assert check(ins, "APPLE MANGO PLUM !") == [True, True, True, True, True]
  assert check(ins, "APPLE MANGO PLUM") == [True, True, True, True, False]
  assert check(ins, "MANGO APPLE PLUM !") == [True, True, True, False, True]
  assert check(ins, "apple MANGO PLUM !") == [True, True, False, True, True]
  assert check(ins, "APPLE PLUM !") == [True, False, True, True, True]
  assert check(ins, "APPLE MANGO PEACH !") == [False, True, True, True, True]
  assert check(ins, "") == [False, False, False, False, False]
  numbered = Instruction("city", (Constraint("numbered"), Constraint("avoid", "rome"),
                                  Constraint("reversed"), Constraint("also", "sport")))
  assert check(numbered, "1. oslo 2. golf 3. cairo") == [True, True, True, True]
  assert check(numbered, "1. oslo 3. golf 2. cairo") == [False, True, True, True]
  assert check(numbered, "oslo golf cairo") == [False, True, True, True]
  assert check(numbered, "1. rome 2. oslo 3. cairo") == [True, False, True, False]
  assert check(numbered, "1. cairo 2. golf 3. oslo") == [True, True, False, True]


def test_teacher_solves_by_hand():
  t = world.Teacher()
  assert t.respond(Instruction("fruit")) == "mango apple plum"
  ins = Instruction("fruit", (Constraint("avoid", "apple"), Constraint("include", "peach"),
                              Constraint("count", "4"), Constraint("numbered"),
                              Constraint("end", "?")))
  assert t.respond(ins) == "1. peach 2. mango 3. plum 4. cherry ?"
  ins = Instruction("tool", (Constraint("also", "color"), Constraint("upper"),
                             Constraint("sorted")))
  assert t.respond(ins) == "AXE RED SAW"


def test_chains_are_hard_negatives_and_cover_the_taxonomy():
  checker = world.ConstraintChecker()
  categories = collections.Counter()
  for chain in world.chains(300, 5, seed=3):
    assert [r.instruction.level for r in chain] == list(range(6))
    for r in chain:
      assert all(checker.check(r.instruction, r.response))  # the teacher is always right
      categories[r.category] += 1
    for ins, good, bad in world.hard_negative_pairs(chain):
      verdict = checker.check(ins, bad)
      assert all(verdict[:-1]) and not verdict[-1]  # misses exactly the newest constraint
      assert good != bad
  assert set(categories) - {""} == set(world.OpTaxonomy)
  # The hierarchical draw gives every category a share (uniform over the valid ones).
  assert min(categories[c] for c in world.OpTaxonomy) > 0.1 * 300 * 5


def test_evolution_is_deterministic_and_one_constraint_per_round():
  a = world.evolve_chain("sport", 5, np.random.default_rng(7))
  b = world.evolve_chain("sport", 5, np.random.default_rng(7))
  assert a == b
  for x, y in zip(a, a[1:]):
    assert y.instruction.constraints[:-1] == x.instruction.constraints
    assert y.category in world.OpTaxonomy
    assert y.instruction.constraints[-1].op in world.OpTaxonomy[y.category]


def test_task_pairs_and_held_out_levels():
  t = ecd_task.ecd_task(seed=0, train_chains=30, eval_per_level=5)
  assert len(t.train) == 30 * 6 and len(t.eval) == 25
  assert collections.Counter(i.level for i in t.eval) == {k: 5 for k in range(1, 6)}
  train = set(t.train)
  assert not any(i in train for i in t.eval if i.level >= 2)
  hard, easy, both = (t.preference_pairs(n) for n in ("ecd", "random", "both"))
  assert len(hard) == len(easy) == 30 * 5 and both == hard + easy
  assert all(good != bad for _, good, bad in both)
  tok = t.tokenizer
  for prompt, good, bad in both[:20]:
    assert tok.decode(tok.encode(good)) == good
    assert len(tok.encode(prompt)) <= 12 and len(tok.encode(good)) + 1 <= 12
  with pytest.raises(ValueError, match="negatives must be one of"):
    t.preference_pairs("hard")
  with pytest.raises(ValueError, match="unknown word 'BANANAS'"):
    tok.encode("BANANAS")
