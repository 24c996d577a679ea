"""The shop world: its rules, its items' truths, the splits and the word tokenizer."""
import collections

import pytest

from rl_jax.eval import suites
from rl_jax.projects.shopping_mmlu import task as task_lib
from rl_jax.projects.shopping_mmlu import world as shop


@pytest.fixture(scope="module")
def world():
  return shop.ShopWorld(0, num_products=96)


@pytest.fixture(scope="module")
def splits(world):
  return task_lib.build_splits(world, 12, 4, seed=0)


def test_twenty_tasks_over_five_types_and_four_skills():
  specs = shop.task_specs()
  assert len(specs) == 20
  assert {t for _, t, _, _, _ in specs.values()} == {"multiple_choice", "retrieval", "ranking",
                                                     "ner", "generation"}
  assert collections.Counter(s for s, *_ in specs.values()) == {
      "concept": 4, "knowledge": 4, "behavior": 4, "multilingual": 8}


def test_compatibility_edges_are_symmetric():
  assert shop.compatible_categories("phone") == ["case", "charger"]
  assert shop.compatible_categories("case") == ["phone"]
  assert shop.compatible_categories("shoe") == []


def test_cipher_is_a_bijection_per_language(world):
  for lang in shop.LANGS:
    table = world.cipher[lang]
    assert len(set(table.values())) == len(table)
    assert not set(table.values()) & set(table)
  assert world.encode("zorva red 12, case", "kai") == (
      f"{world.cipher['kai']['zorva']} {world.cipher['kai']['red']} 12, "
      f"{world.cipher['kai']['case']}")


def test_every_completion_scores_one_under_its_metric(splits):
  for it in splits[0] + splits[1]:
    assert task_lib.item_reward(it, it.completion) == pytest.approx(1.0), it


def test_truths_follow_the_world_rules(world, splits):
  by_title = {p.title: p for p in world.products}
  for it in splits[0]:
    if it.task == "retrieval_compatible":
      device = by_title[it.prompt.split("which fits ")[1].split(" ?")[0]]
      cands = [c.strip() for c in it.prompt.split("? ")[1].replace(" answer :", "").split(". ")]
      titles = [" ".join(c.split()[:4]) for c in cands[1:]]
      fits = [j + 1 for j, t in enumerate(titles)
              if by_title[t].brand == device.brand
              and by_title[t].category in shop.compatible_categories(device.category)]
      assert fits == it.truth
    if it.task == "mc_price_per_unit":
      words = it.prompt.split()
      price, units = int(words[words.index("costs") + 1]), int(words[words.index("for") + 1])
      choice = dict(zip(words[words.index("?") + 1::2], words[words.index("?") + 2::2]))
      assert int(choice[it.completion + "."]) * units == price


def test_splits_are_disjoint_and_tokenizer_round_trips(world, splits):
  train, held_out = splits
  assert not {it.prompt for it in train} & {it.prompt for it in held_out}
  tok = task_lib.ShopTokenizer(world.vocabulary())
  for it in train[:200]:
    assert tok.unk_id not in tok.encode(it.prompt)
    assert tok.decode(tok.encode(it.completion)) == it.completion
  assert tok.decode(tok.encode("3, 1, 2")) == "3, 1, 2"


def test_unknown_task_name_is_an_error(world):
  with pytest.raises(ValueError, match=r"unknown shop-world task\(s\) \['nope'\]"):
    task_lib.build_splits(world, 2, 1, seed=0, tasks=("nope",))


def test_suite_from_items_uses_benchmark_budgets(splits):
  from rl_jax.projects.shopping_mmlu import evaluation  # pylint: disable=g-import-not-at-top
  suite = evaluation.suite_of_items(splits[1], mc_max_new_tokens=1, max_new_tokens=8)
  assert suite.tasks["mc_compatible"].max_new_tokens == 1
  assert suite.tasks["ranking_query"].max_new_tokens == 8
  gens = {n: [task_lib_completion(splits[1], n, i) for i in range(len(t.examples))]
          for n, t in suite.tasks.items()}
  report = suites.suite_report(suite, suites.score_suite(suite, gens))
  assert report["overall"] == pytest.approx(1.0)


def task_lib_completion(items, task, i):
  return [it.completion for it in items if it.task == task][i]
