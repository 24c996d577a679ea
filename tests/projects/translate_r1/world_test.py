"""Tests of the Translate-R1 cipher world: determinism, bijectivity, corpus shares, answers."""
import collections
import math

import numpy as np
import pytest

from rl_jax.projects.translate_r1 import world as cipher
from rl_jax.projects.translate_r1 import domains as dom


@pytest.fixture(scope="module")
def world():
  return cipher.CipherWorld(seed=0)


def test_language_inventory(world):
  splits = collections.Counter(l.split for l in world.languages.values())
  assert splits == {"train": 23, "unseen": 2, "heldout": 9}  # en + 22 trained ciphers
  tiers = collections.Counter(l.tier for l in world.languages.values() if l.split == "train")
  assert tiers == {"base": 1, "high": 6, "low": 8, "xlow": 8}
  ho_tiers = collections.Counter(world.language(n).tier for n in world.names(split="heldout"))
  assert ho_tiers == {"high": 3, "low": 3, "xlow": 3}
  assert all(world.language(n).tier == "unseen" for n in world.names(split="unseen"))
  assert 50 <= len(dom.BASE_WORDS) <= 70
  assert set(dom.NUMBER_WORDS) <= set(dom.BASE_WORDS)  # numbers in questions are enciphered


def test_same_seed_same_world_and_items():
  a, b = cipher.CipherWorld(seed=3), cipher.CipherWorld(seed=3)
  for name in a.languages:
    assert dict(a.language(name).mapping) == dict(b.language(name).mapping)
  assert a.sample_items(30, 11) == b.sample_items(30, 11)
  assert a.pretrain_corpus(20, 5) == b.pretrain_corpus(20, 5)
  c = cipher.CipherWorld(seed=4)
  assert dict(c.language("hi1").mapping) != dict(a.language("hi1").mapping)
  assert a.sample_items(30, 11) != a.sample_items(30, 12)


def test_every_cipher_is_a_bijection_with_disjoint_words(world):
  seen = set()
  sentence = " ".join(dom.BASE_WORDS) + " 7 . 42 , ? :"
  for name, lang in world.languages.items():
    cipher_words = [lang.mapping[w] for w in dom.BASE_WORDS]
    assert len(set(cipher_words)) == len(dom.BASE_WORDS), name  # injective
    assert all(w.isalpha() for w in cipher_words)
    if name != "en":
      assert not set(cipher_words) & set(dom.BASE_WORDS), name
      assert not set(cipher_words) & seen, name  # no word shared between two languages
      seen |= set(cipher_words)
    encoded = world.encode(sentence, name)
    assert encoded.split()[-6:] == ["7", ".", "42", ",", "?", ":"]  # digits/punct kept
    assert world.decode(encoded, name) == sentence
    for w in dom.BASE_WORDS:
      assert world.decode(world.encode(w, name), name) == w
  vocab = world.vocabulary()
  assert len(vocab) == len(set(vocab)) == 34 * len(dom.BASE_WORDS) + 4 + 21  # max_number 20


def test_encode_decode_errors(world):
  with pytest.raises(ValueError, match="unknown language 'zz'"):
    world.encode("tom has three apples", "zz")
  with pytest.raises(ValueError, match="'banana' at word 2"):
    world.encode("tom has banana", "hi1")
  with pytest.raises(ValueError, match="not a word of language 'hi1'"):
    world.decode("tom has 3", "hi1")  # English words are not hi1 words


def test_items_use_only_vocabulary_and_are_enciphered(world):
  vocab = set(world.vocabulary())
  items = world.sample_items(200, 0, langs=world.names())
  for it in items:
    assert set(it.text.split()) <= vocab
    assert it.text == world.encode(it.text_en, it.lang)
    assert it.tier == world.language(it.lang).tier and it.split == world.language(it.lang).split
    assert len(it.text.split()) <= 40  # leaves room for a tool response within seq <= 96


def test_stratified_sampling_covers_every_tier_domain_cell(world):
  items = world.sample_items(40, 1)  # 4 tiers x 5 domains = 20 cells, two full cycles
  cells = collections.Counter((it.tier, it.domain) for it in items)
  assert set(cells) == {(t, d) for t in ("base", "high", "low", "xlow") for d in dom.DOMAINS}
  assert set(cells.values()) == {2}
  only = world.sample_items(10, 2, domains=["counting"], langs=["syn1", "ho3"])
  assert {it.domain for it in only} == {"counting"} and {it.lang for it in only} <= {"syn1", "ho3"}
  with pytest.raises(ValueError, match="unknown domain 'poetry'"):
    world.sample_items(2, 0, domains=["poetry"])


def _doc_language(doc: str, word_to_lang: dict) -> str:
  for tok in doc.split():
    if tok in word_to_lang:
      return word_to_lang[tok]
  raise AssertionError(f"no language word in {doc!r}")


@pytest.mark.parametrize("heldout_exposure", [False, True])
def test_pretrain_corpus_tier_shares(heldout_exposure):
  w = cipher.CipherWorld(seed=1, cfg=cipher.WorldCfg(heldout_exposure=heldout_exposure))
  word_to_lang = {cw: name for name, l in w.languages.items() for cw in l.mapping.values()}
  n = 20000
  docs = w.pretrain_corpus(n, 7)
  counts = collections.Counter(_doc_language(d, word_to_lang) for d in docs)
  n_ho = 9 if heldout_exposure else 0
  # Independent reference: per-language weights 40 / 6 / 1 / 0.1 (%), normalised.
  weights = {"base": 1 * 0.40, "high": (6 + 3 * (n_ho > 0)) * 0.06,
             "low": (8 + 3 * (n_ho > 0)) * 0.01, "xlow": (8 + 3 * (n_ho > 0)) * 0.001}
  total = sum(weights.values())
  by_tier = collections.Counter()
  for name, k in counts.items():
    by_tier[w.language(name).tier] += k
  for tier, weight in weights.items():
    p = weight / total
    tol = 5 * math.sqrt(p * (1 - p) / n)
    assert abs(by_tier[tier] / n - p) < tol, (tier, by_tier[tier] / n, p)
  assert all(counts[s] == 0 for s in w.names(split="unseen"))
  ho_docs = sum(counts[h] for h in w.names(split="heldout"))
  assert (ho_docs > 0) == heldout_exposure
  assert all(d.endswith("</answer>") for d in docs[:50])


def test_oracle_solver_on_hand_written_items():
  cases = {
      "tom has four apples . he gets three more . how many apples now ?": "7",
      "kim has nine cups . she sells nine . how many cups now ?": "0",
      "red is seven , sun is two , gold is three . what is sun ?": "2",
      "ann has five coins and bob has eight coins . what is the bigger number ?": "8",
      "ann has five coins and bob has eight coins . what is the smaller number ?": "5",
      "count the animals : cat red dog sun frog . how many ?": "3",
      "count the animals : red sun moon . how many ?": "0",
      "seven eight nine . what comes next ?": "10",
      "one four seven . what comes next ?": "10",
  }
  for text, answer in cases.items():
    assert dom.solve_english(text) == answer, text
  assert dom.solve_english("gibberish words here ?") is None
  assert dom.solve_english("tom has 4 apples . he gets 3 more . how many apples now ?") is None
  assert dom.solve_english("") is None


def test_items_need_the_words(world):
  """No digit appears in a question: its quantities are enciphered number words, so an item in
  an unknown cipher cannot be answered by copying numbers (the point of the tool)."""
  for it in world.sample_items(200, 3, langs=world.names()):
    assert not any(dom.is_number(t) for t in it.text.split()), it.text
    if it.lang != "en":
      assert not set(it.text.split()) & set(dom.NUMBER_WORDS), it.text


@pytest.mark.parametrize("domain", dom.DOMAINS)
def test_generated_answers_are_solved_and_preserved_in_every_language(world, domain):
  items = world.sample_items(60, 5, domains=[domain], langs=world.names())
  for it in items:
    assert dom.solve_english(it.text_en) == it.answer, it.text_en
    assert dom.is_number(it.answer) and 0 <= int(it.answer) <= world.cfg.max_number
  kept, fidelity = cipher.filter_preserved(items, world.preservation_check())
  assert fidelity == 1.0 and kept == items


def test_preservation_check_rejects_broken_translations(world):
  check = world.preservation_check()
  text_en = "ann has five coins and bob has eight coins . what is the bigger number ?"
  good = world.encode(text_en, "lo2")
  lo2 = world.language("lo2").mapping
  assert check(text_en, good, "8", "lo2")
  # Meaning flips: a number word or "bigger" swapped. Only the round trip catches them.
  for a, b in (("eight", "nine"), ("bigger", "smaller")):
    flipped = good.replace(lo2[a], lo2[b])
    assert check.spans_equal(text_en, flipped) and not check(text_en, flipped, "8", "lo2")
  assert not check(text_en, good + " blorp", "8", "lo2")  # unreadable -> failure, no raise
  spans_only = cipher.AnswerPreservationCheck()
  assert spans_only(text_en, good.replace(lo2["eight"], lo2["nine"]), "8", "lo2")
  # Digit spans (an external translator's input may carry them) must be unchanged.
  assert spans_only("sue has 12 pens", "sue has 12 pens", "12", "en")
  assert not spans_only("sue has 12 pens", "sue has 13 pens", "12", "en")


def test_answer_format_round_trip():
  assert cipher.format_answer("42") == "<answer> 42 </answer>"
  assert cipher.extract_answer("x <answer> 1 </answer> y <answer>7</answer>") == "7"
  assert cipher.extract_answer("no answer 7") is None
  assert cipher.extract_answer("</answer> <answer> 3") is None


def test_world_cfg_validation():
  with pytest.raises(ValueError, match="max_number"):
    cipher.WorldCfg(max_number=10)
  with pytest.raises(ValueError, match="n_low"):
    cipher.WorldCfg(n_low=-1)
  small = cipher.CipherWorld(seed=0, cfg=cipher.WorldCfg(n_high=1, n_low=1, n_xlow=1,
                                                         n_synthetic=0, n_heldout=0))
  assert small.names() == ["en", "hi1", "lo1", "xl1"]
  assert np.isclose(sum(small.corpus_shares().values()), 1.0)
