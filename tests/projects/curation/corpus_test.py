"""The latent-attribute corpus: tiers, planting, the text each attribute produces (checked by
parsing the text, not by the generator's own bookkeeping), the tokenizer and the probe suite."""
import re

import numpy as np
import pytest

from rl_jax.projects.curation import corpus as corpus_lib
from rl_jax.projects.curation import probes as probes_lib

CFG = corpus_lib.CorpusCfg(num_docs=1500)


@pytest.fixture(scope="module")
def corpus():
  return corpus_lib.generate(CFG, seed=3)


def chains(text):
  """Every arithmetic chain of a text as its list of numbers: a + b = s , + c = s' ..."""
  return [[int(x) for x in re.findall(r"\d", m)]
          for m in re.findall(r"\d \+ \d = \d(?: , \+ \d = \d)*", text)]


def test_tiers_are_quality_thirds_and_planted_pages_are_low(corpus):
  counts = np.bincount(corpus.tier, minlength=3)
  assert np.all(np.abs(counts - len(corpus) / 3) <= 1)
  # Tier 0 holds the highest quality scores, tier 2 the lowest.
  assert corpus.quality[corpus.tier == 0].min() >= corpus.quality[corpus.tier == 1].max()
  assert corpus.quality[corpus.tier == 1].min() >= corpus.quality[corpus.tier == 2].max()
  assert corpus.planted.sum() == round(0.05 * len(corpus))
  # Fluency < 0.25 gives q < 0.85 * 0.25 + 0.15 = 0.3625: below the 1/3 quantile here.
  assert np.mean(corpus.tier[corpus.planted] == 2) >= 0.95
  assert np.all(corpus.labels["reasoning_depth"][corpus.planted] == 4)
  assert np.all(corpus.labels["code"][corpus.planted] == 2)
  assert np.all(corpus.labels["timeliness"][corpus.planted] == 0)
  # The tiers follow fluency, not reasoning: ordinary pages have the same depth mix in each.
  ordinary = ~corpus.planted
  depth_by_tier = [corpus.labels["reasoning_depth"][ordinary & (corpus.tier == t)].mean()
                   for t in range(3)]
  assert max(depth_by_tier) - min(depth_by_tier) < 0.25
  assert corpus.fluency[corpus.tier == 0].mean() > corpus.fluency[corpus.tier == 2].mean() + 0.3


def test_text_follows_the_attributes(corpus):
  for i in range(300):
    text, lab = corpus.texts[i], {k: int(v[i]) for k, v in corpus.labels.items()}
    words = text.split()
    assert len(words) == CFG.doc_len
    depth = lab["reasoning_depth"] + 1
    found = chains(text)
    assert len(found) == {1: 0, 2: 1, 3: 1, 4: 2, 5: 2}[depth]
    for numbers in found:  # a, b, s1, c, s2, ...: running totals mod 10
      assert len(numbers) == 3 + 2 * (depth - 1)
      total = (numbers[0] + numbers[1]) % 10
      assert numbers[2] == total
      for c, s in zip(numbers[3::2], numbers[4::2]):
        total = (total + c) % 10
        assert s == total
    assert words.count("code") == lab["code"] == words.count("end")
    years = [int(w[1:]) for w in words if re.fullmatch(r"y\d{4}", w)]
    if lab["timeliness"] == 0:
      assert not years and sum(w.startswith("elem") for w in words) == 2
    elif lab["timeliness"] in (1, 2):
      assert years and all(y == 2025 for y in years)
    else:
      assert years and all(y <= 2022 for y in years)


def test_facts_and_artifacts(corpus):
  facts = corpus.facts
  for text in corpus.texts[:200]:
    for k, v in re.findall(r"elem(\d+) is val(\d+)", text):
      assert facts.element_value[int(k)] == int(v)
    for k, p, y in re.findall(r"city(\d+) mayor pers(\d+) y(\d+)", text):
      assert facts.mayor[int(y) - 2018, int(k)] == int(p)
  # Mayors change between the current epoch and stale ones for most cities.
  assert np.mean(facts.mayor[-1] != facts.mayor[0]) > 0.5
  np.testing.assert_array_equal(corpus_lib.artifacts_of([0.9, 0.75, 0.6, 0.3, 0.1, 0.0]),
                                [0, 0, 1, 2, 3, 3])
  # Low fluency: more boilerplate words.
  junk = np.asarray([sum(w in corpus_lib.JUNK for w in t.split()) for t in corpus.texts])
  assert junk[corpus.tier == 2].mean() > 2 * junk[corpus.tier == 0].mean()


def test_generation_is_deterministic_and_checked():
  a = corpus_lib.generate(corpus_lib.CorpusCfg(num_docs=60), seed=1)
  b = corpus_lib.generate(corpus_lib.CorpusCfg(num_docs=60), seed=1)
  c = corpus_lib.generate(corpus_lib.CorpusCfg(num_docs=60), seed=2)
  assert a.texts == b.texts and a.texts != c.texts
  with pytest.raises(ValueError, match="depth_probs"):
    corpus_lib.CorpusCfg(depth_probs=(0.5, 0.5))
  with pytest.raises(ValueError, match="planted_frac"):
    corpus_lib.CorpusCfg(planted_frac=0.5)


def test_tokenizer_round_trip(corpus):
  tok = corpus_lib.word_tokenizer()
  ids = tok.encode(corpus.texts[0])
  assert tok.decode(ids) == corpus.texts[0]
  assert tok.pad_id == 0 and tok.eos_id == 1 and len(set(tok.pieces)) == tok.vocab_size
  with pytest.raises(ValueError, match="unknown word 'zebra' \\(word 1 of"):
    tok.encode("the zebra")


def test_probe_targets(corpus):
  tok = corpus_lib.word_tokenizer()
  p = probes_lib.build_probes(tok, corpus.facts, num_chains=5, num_code=5, chain_steps=4,
                              seed=0)
  assert np.bincount(p.group).tolist() == [5, 5, corpus_lib.N_ELEMENTS + corpus_lib.N_CITIES]
  for r in range(len(p.tokens)):
    words = tok.decode(p.tokens[r][p.valid[r]]).split()
    scored = np.flatnonzero(p.score_mask[r])
    if p.group[r] == 0:  # every running total, predicted at the "=" before it
      assert len(scored) == 4
      numbers = [int(w) for w in words if w.isdigit()]
      totals = np.cumsum(numbers[:2] + numbers[3::2]) % 10
      assert [int(tok.decode([p.target[r, t]])) for t in scored] == totals[1:].tolist()
      assert all(words[t] == "=" for t in scored)
    elif p.group[r] == 1:  # closers only, among the three closers
      assert all(tok.decode([p.target[r, t]]) in corpus_lib.CLOSE for t in scored)
      assert all(p.cand_row[r, t] == 1 for t in scored)
    else:
      (t,) = scored
      answer = tok.decode([p.target[r, t]])
      if words[1].startswith("city"):
        k = int(words[1][4:])
        assert answer == f"pers{corpus.facts.mayor[-1, k]}"
      else:
        assert answer == f"val{corpus.facts.element_value[int(words[1][4:])]}"


def test_chain_addends_restrict_the_added_digits_in_pages_and_probes():
  """chain_addends=(1, 2): every added digit of every chain (pages and probes) is 1 or 2, the
  first operand still any digit, the totals still the running sums mod 10; bad values refused."""
  cfg = corpus_lib.CorpusCfg(num_docs=300, chain_addends=(1, 2))
  small = corpus_lib.generate(cfg, seed=4)
  firsts, added = set(), set()
  for text in small.texts:
    for numbers in chains(text):
      firsts.add(numbers[0])
      added.update([numbers[1]] + numbers[3::2])
      totals = np.cumsum(numbers[:2] + numbers[3::2]) % 10
      assert numbers[2::2] == totals[1:].tolist()
  assert added == {1, 2} and len(firsts) == 10
  tok = corpus_lib.word_tokenizer()
  p = probes_lib.build_probes(tok, small.facts, num_chains=40, num_code=1, chain_steps=4, seed=0,
                              addends=(1, 2))
  for r in np.flatnonzero(p.group == 0):
    numbers = [int(w) for w in tok.decode(p.tokens[r][p.valid[r]]).split() if w.isdigit()]
    assert set(numbers[1:2] + numbers[3::2]) <= {1, 2}
  for bad in ((), (3, 10)):
    with pytest.raises(ValueError, match="chain_addends"):
      corpus_lib.CorpusCfg(chain_addends=bad)
