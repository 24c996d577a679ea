"""The PUGC world, the protocol oracles and the pair rule on constructed cases with
hand-computed outcomes (docs/pugc.md)."""
import numpy as np
import pytest

from rl_jax import intelligence
from rl_jax.projects.pugc import oracles, task, world

POST = ("i went to cafe_luna on monday . the wifi was fast . i cared about the noise . "
        "the staff was friendly . i loved it .")
WORLD = {"cafe_luna": {"wifi": "fast", "price": "cheap", "staff": "friendly", "noise": "loud",
                       "parking": "easy"}}


def q(attr, entity="cafe_luna", template=0):
  return world.Question(entity, attr, template).text


def test_answerability_filter_needs_a_stated_fact_about_the_posts_place():
  f = oracles.FactAnswerabilityFilter()
  queries = [q("wifi"), q("staff", template=1), q("noise"), q("parking"),
             q("wifi", entity="hotel_aria"), "is the wifi good ?"]
  # stated / stated (other template) / named without a value / not mentioned / another place
  # / not a question the filter can read
  assert f.answerable([POST] * len(queries), queries) == [True, True, False, False, False,
                                                          False]


def test_query_generator_asks_about_the_posts_place_and_its_attributes():
  gen = oracles.TemplateQueryGenerator(seed=3, off_topic=0.0)
  posts = [POST.replace("monday", d) for d in world.DAYS]
  first = gen.generate_queries(posts)
  assert first == gen.generate_queries(posts)  # deterministic
  assert first[1:3] == gen.generate_queries(posts[1:3])  # a row never depends on its batch
  parsed = [world.parse_question(x) for x in first]
  assert all(p.entity == "cafe_luna" for p in parsed)
  assert {p.attribute for p in parsed} <= {"wifi", "noise", "staff"}  # what the post names
  drift = oracles.TemplateQueryGenerator(seed=3, off_topic=1.0).generate_queries(
      [POST.replace("monday", d) + " " * i for d in world.DAYS for i in range(8)])
  assert "price" in {world.parse_question(x).attribute for x in drift}


@pytest.mark.parametrize("response,expected", [
    # ref words {cafe_luna, wifi, fast, staff, friendly}: P = 3/3, R = 3/5 -> F1 = 0.75
    ("the wifi at cafe_luna is fast .", 0.75),
    # P = 2/3, R = 2/5 -> F1 = 0.5; one contradiction (wifi slow vs fast): 0.5 - 0.5 = 0
    ("the wifi at cafe_luna is slow .", 0.0),
    # P = 1, R = 1/5 -> F1 = 1/3
    ("fast .", 1 / 3),
    # filler words count: P = 3/6, R = 3/5 -> F1 = 2 * 0.3 / 1.1 = 6/11
    ("the wifi at cafe_luna is fast . i hope this helps .", 6 / 11),
    # an extra fact the post states: P = R = 1
    ("the wifi at cafe_luna is fast . the staff is also friendly .", 1.0),
    # the post does not state the noise: no contradiction, P = 3/5, R = 3/5
    ("the wifi at cafe_luna is fast . the noise is also quiet .", 0.6),
    ("", 0.0),
])
def test_reference_judge_token_f1_minus_contradictions(response, expected):
  judge = oracles.ReferenceJudge(contradiction_penalty=0.5)
  assert judge.score([q("wifi")], [response], [POST])[0] == pytest.approx(expected)


def test_reference_judge_needs_the_reference():
  with pytest.raises(ValueError, match="needs references"):
    oracles.ReferenceJudge().score([q("wifi")], ["fast ."])


def test_no_reference_judge_rewards_length_and_form():
  judge = oracles.LengthFluencyJudge(target_words=12)
  got = judge.score([q("wifi")] * 5, [
      "fast .",                                                          # 2 / 12
      "the wifi at cafe_luna is fast . the staff is also friendly .",   # 13 words: capped at 1
      "the wifi at cafe_luna is fast",                                  # no final ".": 0.5 * 6/12
      "the the wifi .",                                                 # repeated: 0.5 * 4/12
      ""])
  np.testing.assert_allclose(got, [2 / 12, 1.0, 0.25, 4 / 24, 0.0])


def test_oracle_score_knows_the_world():
  qq = world.Question("cafe_luna", "wifi")
  cases = {"fast .": 1.0, "slow .": -1.0, "i hope this helps .": 0.0,
           "fast . slow .": -1.0,  # hedging between values counts as wrong
           "the wifi at cafe_luna is fast . the price is also cheap .": 1.25,
           "the wifi at cafe_luna is fast . the noise is also quiet .": 0.5,
           "the noise is also loud .": 0.25}
  for text, expected in cases.items():
    assert world.oracle_score(WORLD, qq, text) == expected, text
  assert world.answers_correctly(WORLD, qq, "fast .")
  assert not world.answers_correctly(WORLD, qq, "fast . slow .")


def test_posts_state_their_facts_and_parse_back():
  w = world.make_world(4, seed=1)
  for p in world.posts(w, list(w), 30, seed=2, noise=0.0):
    entity, facts = world.parse_post(p.text)
    assert entity == p.entity and facts == dict(p.facts)
    assert all(w[entity][a] == v for a, v in facts.items())  # no noise: every fact is true
  noisy = world.posts(w, list(w), 200, seed=2, noise=1.0)
  assert all(sum(w[p.entity][a] != v for a, v in p.facts) == 1 for p in noisy)


def test_best_worst_pairs_take_first_extremes_and_drop_ties():
  records, ties = task.best_worst_pairs(
      ["p1", "p2", "p3"],
      [["a", "b", "c"], ["d", "e", "f"], ["g", "h", "i"]],
      [[0.2, 0.9, 0.9], [0.5, 0.5, 0.5], [0.1, 0.0, 0.0]])
  assert records == [("p1", "b", "a"), ("p3", "g", "h")] and ties == 1


def test_protocols_go_through_the_content_hash_cache(tmp_path):
  spec = {"cache_dir": str(tmp_path)}

  class Counting(oracles.FactAnswerabilityFilter):
    calls = 0

    def answerable(self, documents, queries):
      Counting.calls += 1
      return super().answerable(documents, queries)

  first = intelligence.build("answerability_filter", spec, Counting())
  assert first.answerable([POST, POST], [q("wifi"), q("price")]) == [True, False]
  second = intelligence.build("answerability_filter", spec, Counting())
  assert second.answerable([POST, POST], [q("wifi"), q("price")]) == [True, False]
  assert Counting.calls == 1 and second.calls.stats.cache_hits == 2
  gen = intelligence.build("query_generator", spec, oracles.TemplateQueryGenerator())
  assert gen.generate_queries([POST]) == oracles.TemplateQueryGenerator().generate_queries([POST])
