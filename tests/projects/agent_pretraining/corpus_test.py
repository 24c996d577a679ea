"""Corpus sources of the API universe and the mixture's token shares
(rl_jax.projects.agent_pretraining.corpus)."""
import numpy as np
import pytest

from rl_jax.projects.agent_pretraining import corpus
from rl_jax.projects.agent_pretraining.world import ApiUniverse, word_tokenizer

UNIVERSE = ApiUniverse(n_apis=40, docs_only=10, seed=3)
TOK = word_tokenizer(UNIVERSE.vocabulary())


def kind_of(doc: str) -> str:
  """A document's source from its own text (independent of the sampler's labels)."""
  first = doc.split()[0]
  if first == "doc":
    return "api_docs"
  if first == "code":
    return "code"
  if first == "task":
    return "seed_trajectories" if " doc : " in doc else "trajectories"
  return "text"


def test_sources_render_their_kind_and_keep_docs_only_apis_out_of_agent_data():
  sources = corpus.build_sources(UNIVERSE, ["api_docs", "trajectories", "seed_trajectories",
                                            "code", "text"])
  rng = np.random.default_rng(0)
  docs_only = {a.name for a in UNIVERSE.docs_only}
  seen_in_docs = set()
  for name, src in sources.items():
    for _ in range(300):
      doc = src.draw(rng)
      assert kind_of(doc) == name, doc
      TOK.encode(doc)  # every word is in the vocabulary
      words = set(doc.split())
      if name == "api_docs":
        seen_in_docs |= words & docs_only
      else:  # trajectories, code, text never mention a docs-only API
        assert not words & docs_only, (name, doc)
  assert seen_in_docs == docs_only  # docs cover the docs-only APIs
  assert [s.agent for s in sources.values()] == [True, True, True, False, False]


@pytest.mark.parametrize("weights", [{"api_docs": 0.18, "trajectories": 0.18, "code": 0.32,
                                      "text": 0.32},
                                     {"api_docs": 0.6, "trajectories": 0.0, "code": 0.1,
                                      "text": 0.3}])
def test_mixture_token_shares_match_the_weights(weights):
  sources = corpus.build_sources(UNIVERSE, list(weights))
  mix = corpus.Mixture(sources, corpus.check_weights(weights, "w"), lambda t: len(t.split()))
  rng = np.random.default_rng(1)
  counts = dict.fromkeys(weights, 0)
  docs, _ = mix.draw(20000, rng)
  for d in docs:  # classify by the text, count tokens + EOS
    counts[kind_of(d)] += len(d.split()) + 1
  total = sum(counts.values())
  for name, w in weights.items():
    # 20k documents: the share's standard error is well under 0.01.
    assert abs(counts[name] / total - w) < 0.015, (name, counts[name] / total, w)


def test_packed_rows_hold_the_stream_in_order():
  rows = corpus.pack_rows([[5, 6, 7], [8], [9, 10]], n_rows=2, row_len=4, eos_id=1)
  np.testing.assert_array_equal(rows[0], [[5, 6, 7, 1], [8, 1, 9, 10]])
  assert rows[1].all() and rows[2].sum() == 8
  with pytest.raises(ValueError, match="pack_rows"):
    corpus.pack_rows([[5]], n_rows=2, row_len=4, eos_id=1)


def test_agent_ratio_rescales_agent_and_other_sides():
  sources = corpus.build_sources(UNIVERSE, ["api_docs", "trajectories", "code", "text"])
  w = {"api_docs": 0.1, "trajectories": 0.3, "code": 0.2, "text": 0.4}
  out = corpus.with_agent_ratio(w, sources, 0.5)
  # agent 0.5 split 1:3, other 0.5 split 1:2 (hand-computed)
  np.testing.assert_allclose([out[k] for k in w], [0.125, 0.375, 1 / 6, 1 / 3])
  assert corpus.with_agent_ratio(w, sources, 0.0)["api_docs"] == 0.0
  with pytest.raises(ValueError, match="agent_ratio"):
    corpus.with_agent_ratio(w, sources, 1.5)
  with pytest.raises(ValueError, match="no agent source"):
    corpus.with_agent_ratio({"api_docs": 0.0, "trajectories": 0.0, "code": 1.0, "text": 1.0},
                            sources, 0.3)


def test_bad_weights_name_the_field():
  with pytest.raises(ValueError, match="unknown corpus source 'api_doc'"):
    corpus.check_weights({"api_doc": 1.0}, "task.mixture")
  with pytest.raises(ValueError, match=r"task.mixture.text: weight must be"):
    corpus.check_weights({"text": -1.0}, "task.mixture")
  with pytest.raises(ValueError, match="all zero"):
    corpus.check_weights({"text": 0.0}, "task.mixture")
