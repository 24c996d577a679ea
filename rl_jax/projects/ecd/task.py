"""The ECD task: SFT data (every round's instruction and teacher response), preference pairs with
random, ECD (hard) or both kinds of negatives, and the strict-accuracy reward (docs/ecd.md).

Task "ecd_constraints" (config `task`):
  train: every round I^(0..T) of `train_chains` evolved chains (SFT pairs (I^(t), R^(t)));
  eval: `eval_per_level` instructions at each level 1..T, from chains evolved with another
    seed; at levels >= 2 an instruction also present in train is left out (level 1 has only
    ~190 distinct instructions, most of which the train chains cover, so it may overlap);
  reward_fn: 1 if every constraint is satisfied (prompt-level strict accuracy), else 0;
  preference_pairs(negatives): for every t >= 1 of every train chain, chosen = R^(t) and
    rejected =
      "ecd":    R^(t-1), the previous round's response (the hard negative: misses only the
                newest constraint);
      "random": the teacher's response to a random other train instruction of level >= 1
                (an easy negative, drawn from `default_rng([seed, 2])`);
      "both":   both pairs of every t (twice as many pairs).
"""
from __future__ import annotations

import numpy as np

from rl_jax.projects.ecd import world
from rl_jax.tasks import TASKS, TaskData
from rl_jax.tokenizers import WordTokenizer

NEGATIVES = ("random", "ecd", "both")


def random_negative_pairs(rounds, seed: int):
  """(I, R, R') with R' the response to a random other instruction (R' != R)."""
  rng = np.random.default_rng([seed, 2])
  pool = [r for r in rounds if r.instruction.level >= 1]
  out = []
  for r in pool:
    while True:
      other = pool[rng.integers(len(pool))]
      if other.response != r.response:
        break
    out.append((r.instruction, r.response, other.response))
  return out


@TASKS.register("ecd_constraints")
def ecd_task(*, seed: int, train_chains: int = 240, rounds: int = 5, eval_per_level: int = 60,
             world_seed: int = 0) -> TaskData:
  """train_chains: evolved chains for SFT and pairs; rounds: T (levels 1..T);
  eval_per_level: held-out instructions per level; world_seed: seed of the evolution draws
  (train chain i from default_rng([1000 * world_seed, i]), eval chain i from
  default_rng([1000 * world_seed + 1, i])); `seed` (the run's) draws the random negatives."""
  teacher, checker = world.Teacher(), world.ConstraintChecker()
  train_ch = world.chains(train_chains, rounds, world_seed * 1000 + 0)
  train = [r for ch in train_ch for r in ch]
  seen = {r.instruction for r in train}
  eval_rounds, by_level, i = [], {k: 0 for k in range(1, rounds + 1)}, 0
  while any(v < eval_per_level for v in by_level.values()):
    chain = world.evolve_chain(sorted(world.TOPICS)[i % len(world.TOPICS)], rounds,
                               np.random.default_rng([world_seed * 1000 + 1, i]))
    i += 1
    for r in chain[1:]:
      k = r.instruction.level
      if (k == 1 or r.instruction not in seen) and by_level[k] < eval_per_level:
        eval_rounds.append(r)
        by_level[k] += 1
        seen.add(r.instruction)
    if i > 20 * eval_per_level * rounds:
      raise ValueError("ecd_constraints: could not draw enough held-out instructions")
  held_out = [r.instruction for r in eval_rounds]

  def pairs(negatives: str = "ecd"):
    if negatives not in NEGATIVES:
      raise ValueError(f"preference.pairs.negatives must be one of {NEGATIVES}, got "
                       f"{negatives!r}")
    hard = [p for ch in train_ch for p in world.hard_negative_pairs(ch)]
    easy = random_negative_pairs(train, seed)
    chosen = {"ecd": hard, "random": easy, "both": hard + easy}[negatives]
    return [(ins.render(), good, bad) for ins, good, bad in chosen]

  def reward(ins: world.Instruction, text: str) -> float:
    return float(all(checker.check(ins, text)))

  return TaskData("ecd_constraints", [r.instruction for r in train], held_out,
                  prompt_fn=lambda ins: ins.render(), completion_fn=teacher.respond,
                  reward_fn=reward,
                  tokenizer=WordTokenizer(world.vocabulary(), name="ECD world"),
                  preference_pairs=pairs)
