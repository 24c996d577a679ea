"""Shopping MMLU's metric rules against hand-computed values (rl_jax/eval/metrics_shopping.py)."""
import math

import numpy as np
import pytest

from rl_jax.eval import metrics_shopping as m
from rl_jax.eval import suites


@pytest.mark.parametrize("generation,label,expected", [
    ("2", "2", 1.0),
    (" 2", "2", 1.0),          # leading spaces are stripped
    ("  2. red shoe", "2", 1.0),
    ("\n2", "2", 0.0),         # only spaces are stripped: the first character is "\n"
    ("\t2", "2", 0.0),
    ("", "2", 0.0),            # empty generation
    ("   ", "2", 0.0),
    ("12", "2", 0.0),          # first character only
    ("3", "2", 0.0),
    ("5 stars", "5", 1.0),     # rating labels 1-5
    ("4", "5", 0.0),
])
def test_multiple_choice_first_character(generation, label, expected):
  assert m.mc_accuracy(generation, label) == expected


@pytest.mark.parametrize("generation,truth,expected", [
    ("1, 2, 3", [2, 5], 0.5),
    ("a, 4, x, 4, 7, 9", [4, 9], 0.5),   # non-ints skipped; first 3 ints are 4, 4, 7
    ("3", [3, 3], 0.5),                   # duplicate truth: |{3}| / 2
    ("1,2\n3,4", [3, 4], 0.5),            # reference quirk: the whole text split on commas
    ("", [1], 0.0),                       # empty generation
    (" 5 , 6 ,7", [5, 6, 7], 1.0),        # int() accepts surrounding spaces
    ("5, 6, 7, 8", [8], 0.0),             # only the first 3 count
])
def test_hit_rate_at_3(generation, truth, expected):
  assert m.hit_rate(generation, truth) == pytest.approx(expected)


REL = [3, 2, 0, 1]  # relevance of items 1..4
IDCG = 7 + 3 / math.log2(3) + 1 / math.log2(4) + 0  # relevances sorted: 3, 2, 1, 0


@pytest.mark.parametrize("generation,dcg", [
    ("2, 1, 4, 3", 3 + 7 / math.log2(3) + 1 / math.log2(4) + 0),
    ("1, 2, 4, 3", IDCG),
    ("1, 2, 3, 4, 2", 7 + 3 / math.log2(3) + 0 + 1 / math.log2(5)),  # truncated to len(truth)
    ("x, 1, 2.5, 2", 7 + 3 / math.log2(3)),                            # non-ints skipped
    ("1, 1", 7 + 7 / math.log2(3)),                                    # duplicates count twice
    ("9, 1", 0 + 7 / math.log2(3)),                                    # unknown id: relevance 0
    ("0", 1.0),                                                        # id 0 reads rel[-1]
    ("", 0.0),
    ("\n2, 1\n3", 3 + 7 / math.log2(3)),                               # first line
    (" \n2, 1", 0.0),   # first line after trimming newlines is " ": nothing parsed
])
def test_ndcg(generation, dcg):
  assert m.ndcg_eval(generation, list(REL)) == pytest.approx(dcg / IDCG, rel=1e-12)


def test_ndcg_duplicates_can_exceed_one_like_the_reference():
  assert m.ndcg_eval("1, 1", [3, 2]) == pytest.approx((7 + 7 / math.log2(3))
                                                        / (7 + 3 / math.log2(3)))
  assert m.ndcg_eval("1, 1", [3, 2]) > 1


def test_ndcg_all_zero_relevance_is_zero():
  assert m.ndcg_eval("1, 2", [0, 0]) == 0.0


def test_ner_counts_and_pooled_micro_f1():
  assert m.ner_counts("Red, Cotton,, red\nblue", ["red", "cotton", "large"]) == (2, 1, 1)
  assert m.ner_counts("", ["navy"]) == (0, 0, 1)
  assert m.ner_counts("\n\nBlue", ["blue"]) == (1, 0, 0)  # leading newlines dropped
  assert m.ner_counts("a, ,b", ["a", "b"]) == (2, 1, 0)   # " " becomes "" and counts as FP
  # pooled TP 2, FP 1, FN 2: P = 2/3, R = 1/2, F1 = 4/7 (not the mean of per-example F1s)
  counts = [(2, 1, 1), (0, 0, 1)]
  assert m.micro_f1(counts) == pytest.approx(4 / 7)
  assert m.micro_f1([(0, 0, 3)]) == 0.0  # no predictions: the reference divides by zero


def test_rouge_l_stemmed():
  assert m.rouge_l("running shoes", "run shoe") == pytest.approx(1.0)
  # LCS "shoe for" = 2 of 5 and 4 tokens: F = 2 * 0.4 * 0.5 / 0.9
  assert m.rouge_l("red running shoe for men", "blue shoe for women") == pytest.approx(4 / 9)
  assert m.rouge_l("", "blue shoe") == 0.0


def test_bleu_lowercased_over_100():
  assert m.bleu("The Red Shoe Is Here", "the red shoe is here") == pytest.approx(1.0)
  # n-gram precisions 5/6, 4/5, 3/4, 2/3, no brevity penalty: (1/3)^(1/4)
  assert m.bleu("the red shoe is here now", "the red shoe is here") == pytest.approx(
      (1 / 3) ** 0.25, rel=1e-6)
  assert m.bleu("\nthe red shoe is here\nmore text", "the red shoe is here") == pytest.approx(1.0)
  assert m.bleu("", "the red shoe is here") == 0.0


class TableEmbedder:
  VECS = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [-1.0, 0.0], "d": [1.0, 1.0], "z": [0.0, 0.0]}

  def embed(self, texts):
    return np.asarray([self.VECS[t] for t in texts])


@pytest.mark.parametrize("generation,truth,expected", [
    ("a", "d", 1 / math.sqrt(2)),
    ("a", "c", 0.0),                         # negative cosine clipped at 0
    ("a", ["b", "d"], 0.5 / math.sqrt(2)),   # mean over references
    ("a", ["c", "b"], 0.0),                  # mean -0.5 clipped
    ("z", "a", 0.0),                         # zero vector
])
def test_embedding_similarity(generation, truth, expected):
  assert m.embedding_similarity(generation, truth, TableEmbedder()) == pytest.approx(expected)


def test_ngram_embedder_is_deterministic_and_normalised():
  e = m.NgramEmbedder()
  assert isinstance(e, m.Embedder)
  v = e.embed(["red cotton shoe", "red cotton shoe", "blue lamp", ""])
  np.testing.assert_allclose(v[0], v[1])
  np.testing.assert_allclose(np.linalg.norm(v[:3], axis=1), 1.0)
  assert np.all(v[3] == 0)
  assert m.embedding_similarity("red cotton shoe", "red cotton shoes", e) > \
      m.embedding_similarity("red cotton shoe", "blue lamp", e)


def test_task_score_pools_ner_and_skill_is_mean_of_tasks():
  ex = lambda t: suites.Example("p", t)
  ner = suites.BenchTask("ner_t", "s1", "ner", "micro f1",
                         (ex(["red", "cotton", "large"]), ex(["navy"])), 10)
  mc = suites.BenchTask("mc_t", "s1", "multiple_choice", "accuracy", (ex("1"), ex("2")), 1)
  rk = suites.BenchTask("rk_t", "s2", "ranking", "ndcg", (ex(list(REL)),), 10)
  suite = suites.Suite("toy", {"ner_t": ner, "mc_t": mc, "rk_t": rk})
  res = suites.score_suite(suite, {"ner_t": ["Red, Cotton,, red", ""], "mc_t": ["1", " 3"],
                                   "rk_t": ["1, 2, 4, 3"]})
  assert res["ner_t"].score == pytest.approx(4 / 7)
  assert res["mc_t"].score == 0.5
  report = suites.suite_report(suite, res)
  assert report["skills"] == pytest.approx({"s1": (4 / 7 + 0.5) / 2, "s2": 1.0})
  assert "| **s1** |" in suites.format_table(report)


def test_task_type_and_metric_must_agree():
  with pytest.raises(ValueError, match="does not score a ranking task"):
    suites.BenchTask("x", "s", "ranking", "accuracy", (), 1)
