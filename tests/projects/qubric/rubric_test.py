"""QUBRIC's rubric reward, contrastive rubric, judge, and the consistency and learnability
filters, against hand-computed values on constructed answers and reward distributions."""
import numpy as np
import pytest

from rl_jax import intelligence
from rl_jax.projects.qubric import oracles, rubric, world
from rl_jax.projects.qubric.scoring import QubricScorer
from rl_jax.projects.qubric.source import QubricSource
from rl_jax.projects.qubric.task import Problem, build_items

# price weight size battery durability noise speed warranty style support
ENTITY = world.Entity(("cheap", "heavy", "small", "week", "rugged", "loud", "fast", "year",
                       "bold", "phone"))


def test_rubric_reward_matches_hand_computed_weighted_scores():
  w = [1.0, 0.7, 0.3, -0.5]  # essential, important, optional, pitfall
  assert rubric.rubric_reward([1, 1, 1, 0], w) == pytest.approx(1.0)
  assert rubric.rubric_reward([1, 0, 1, 0], w) == pytest.approx(1.3 / 2.0)
  assert rubric.rubric_reward([1, 0, 0, 1], w) == pytest.approx(0.5 / 2.0)
  assert rubric.rubric_reward([0, 0.5, 0, 0], w) == pytest.approx(0.35 / 2.0)  # graded score
  assert rubric.rubric_reward([0, 0, 0, 1], w) == 0.0  # -0.25 clipped at 0
  assert rubric.rubric_reward([0, 0, 1, 0], [1.0, 0.7, 0.3, 0.0]) == pytest.approx(0.15)
  with pytest.raises(ValueError, match="positive weight"):
    rubric.rubric_reward([1], [-0.5])
  with pytest.raises(ValueError, match="2 scores for 3 criteria"):
    rubric.rubric_reward([1, 0], [1, 1, 1])


def test_contrastive_rubric_and_world_judge_by_hand():
  prompt = world.prompt(ENTITY, world.scenario_query("budget_buyer"))
  good = oracles.WorldTeacher().answer(prompt)
  assert good == "price=cheap durability=rugged warranty=year"
  bad = "price=cheap weight=light style=bold"  # misses two key points, one false statement
  made = oracles.ContrastiveRubricOracle().generate_rubrics(
      [prompt], ['{"bad": "%s", "good": "%s"}' % (bad, good)])[0]
  assert [(c["criterion"], c["weight"]) for c in made] == [
      ("states price=cheap", 0.7), ("states durability=rugged", 1.0),
      ("states warranty=year", 1.0), ("states a wrong value", -0.5)]
  judge = oracles.WorldJudge()
  crit = [c["criterion"] for c in made]
  answers = [good, bad, "durability=rugged award=gold", "warranty=lifetime price=cheap", ""]
  scores = judge.score([prompt] * 5, answers, criteria=[crit] * 5)
  assert scores == [[1, 1, 1, 0], [1, 0, 0, 1], [0, 1, 0, 1], [1, 0, 0, 1], [0, 0, 0, 0]]
  # Hand-computed R = sum w s / (0.7 + 1 + 1):
  expected = [1.0, (0.7 - 0.5) / 2.7, (1.0 - 0.5) / 2.7, (0.7 - 0.5) / 2.7, 0.0]
  got = [rubric.rubric_reward(s, [c["weight"] for c in made]) for s in scores]
  np.testing.assert_allclose(got, expected, atol=1e-12)
  # The generic rubric: any true statement counts 0.3 of 3.0, whatever the scenario needs;
  # speed=slow is false (the pitfall).
  generic = oracles.generic_rubric()
  s = judge.score([prompt], ["style=bold noise=loud speed=slow"],
                  criteria=[[c["criterion"] for c in generic]])[0]
  assert rubric.rubric_reward(s, [c["weight"] for c in generic]) == pytest.approx(
      (0.3 + 0.3 - 0.5) / 3.0)
  s = judge.score([prompt], ["style=bold noise=loud"], criteria=[[c["criterion"] for c in
                                                                  generic]])[0]
  assert rubric.rubric_reward(s, [c["weight"] for c in generic]) == pytest.approx(0.6 / 3.0)
  with pytest.raises(ValueError, match="unknown criterion"):
    judge.score([prompt], [good], criteria=[["is helpful"]])


def test_fabricated_reference_is_never_verifiable():
  prompt = world.prompt(ENTITY, world.fabricated_query("award"))
  reference = oracles.WorldTeacher().answer(prompt)  # plays along: a made-up value
  assert reference.startswith("award=")
  crit = [c["criterion"] for c in oracles.contrastive_rubric(reference, "price=cheap")]
  everything = [world.statement("award", v) for v in world.FABRICATED["award"]]
  scores = oracles.WorldJudge().score([prompt] * 3, everything, criteria=[crit] * 3)
  assert [s[0] for s in scores] == [0.0, 0.0, 0.0]  # even the reference's own statement


def test_consistency_filter():
  assert rubric.consistent(0.6, 0.4)
  assert not rubric.consistent(0.5, 0.5)  # a rubric that cannot tell them apart is dropped
  assert not rubric.consistent(0.2, 0.9)


@pytest.mark.parametrize("rewards, keep", [
    ([0.0] * 8, False),                  # always failed (the fabricated control)
    ([1.0] * 8, False),                  # always passed
    ([0.0, 1.0] * 4, True),              # mean 0.5, std 0.5
    ([0.0] * 7 + [1.0], True),           # mean 0.125 > 0.1, std sqrt(7)/8 = 0.33
    ([0.0] * 7 + [0.7], False),          # mean 0.0875 < 0.1
    ([1.0] * 7 + [0.0], True),           # mean 0.875 < 0.9, std 0.33
    ([1.0] * 9 + [0.0], False),          # mean 0.9: not < p_high
    ([0.48, 0.52] * 4, False),           # mean 0.5, std 0.02 <= sigma_min 0.05
    ([0.44, 0.56] * 4, True),            # std 0.06 > 0.05
])
def test_learnability_filter_on_constructed_distributions(rewards, keep):
  assert rubric.learnable(rewards, 0.1, 0.9, 0.05) is keep


class _Out:
  def __init__(self, texts):
    self.texts = texts


def _world_items(n=2):
  entities = [ENTITY, world.Entity(("fair",) + ENTITY.values[1:])][:n]
  return build_items(entities, ["budget_buyer", "traveler"][:n], kappa=1.0,
                     intelligence_spec=None, prefix="t")


def test_scorer_filters_on_constructed_groups():
  """Two pairs of the full arm, G = 4: the first group's rewards vary (kept); the second's are
  all equal (unlearnable: replaced by their mean, so the advantage is 0); a pair whose policy
  answer already matches the teacher's is inconsistent."""
  items = _world_items()
  judge = intelligence.build("judge", None, oracles.WorldJudge())
  gen = intelligence.build("rubric_generator", None, oracles.ContrastiveRubricOracle())
  scorer = QubricScorer(judge, gen, group_size=4, p_low=0.1, p_high=0.9, sigma_min=0.05)
  a, b = Problem(items[0], "full"), Problem(items[1], "full")
  # a: budget_buyer key points price=cheap durability=rugged warranty=year.
  texts_a = ["price=cheap style=bold", "price=cheap durability=rugged warranty=year",
             "weight=heavy", "price=fair"]
  # b: traveler key points weight=heavy size=small battery=week; every sample misses them all.
  texts_b = ["noise=loud"] * 4
  scores = scorer([a] * 4 + [b] * 4, _Out(texts_a + texts_b))
  # a's rubric contrasts the teacher with texts_a[0]: price important (0.7), the other two
  # essential (1.0), pitfall -0.5; denominator 2.7.
  expected_a = [0.7 / 2.7, 1.0, 0.0, 0.0]  # "price=fair" is false: (0 - 0.5)/2.7 -> 0
  np.testing.assert_allclose(scores.reward_B[:4], expected_a, rtol=1e-6)
  np.testing.assert_array_equal(scores.extras["qubric/kept"], [1, 1, 1, 1, 0, 0, 0, 0])
  np.testing.assert_allclose(scores.extras["correct"][:4], [1 / 3, 1.0, 0.0, 0.0], rtol=1e-6)
  assert scores.metrics["qubric/unlearnable_pairs"] == 1.0
  np.testing.assert_allclose(scores.reward_B[4:], 0.0)
  # A later visit keeps the verdicts; a new pair whose sampled answer equals the teacher's
  # gets a rubric that cannot prefer the teacher: inconsistent.
  c = Problem(build_items([world.Entity(("costly",) + ENTITY.values[1:])], ["gamer"],
                          kappa=1.0, intelligence_spec=None, prefix="u")[0], "full")
  perfect = c.reference
  scores = scorer([c] * 4, _Out([perfect, "speed=fast", "", "style=bold"]))
  assert scores.metrics["qubric/inconsistent_pairs"] == 1.0
  assert np.ptp(scores.reward_B) == 0.0 and scores.extras["qubric/kept"].sum() == 0


def test_source_retires_constant_first_visit_groups_only_for_learnability_arms():
  class Ctx:
    seed = 0
    task = type("T", (), {"train": [Problem(it, "full") for it in _world_items()],
                          "name": "qubric"})()
  for arm, retired in (("full", [1]), ("original_generic", [])):
    source = QubricSource(Ctx(), "rl", arm)
    state = source.init_state()
    problems, state = source.sample(state, 2, 0, 0)
    assert {p.arm for p in problems} == {arm}
    index_b = state["last"].index(1)
    rewards = np.zeros((2, 4), np.float32)
    rewards[1 - index_b] = [0.0, 0.5, 1.0, 0.5]
    state = source.observe(state, problems, rewards.reshape(-1), 4)
    assert state["retired"] == retired
    assert source.metrics(state)["qubric/retired_pairs"] == len(retired)


def test_fabricated_rewrites_fail_the_validity_check():
  items = _world_items()
  assert all(it.valid["scenario"] and not it.valid["fabricated"] for it in items)
  assert items[0].prompts["scenario"].endswith("tell me about it for a budget_buyer")
  assert items[0].references["scenario"] == "price=cheap durability=rugged warranty=year"
  assert items[1].references["scenario"] == "weight=heavy size=small battery=week"
