"""Annotation wiring: kappa and NMI against hand formulas on a constructed case, the oracle's
noise rate, mean pooling, the MLP head and the transformer classifier learning a toy task."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config
from rl_jax.projects.curation import annotation as ann


def kappa_by_hand(a, b):
  """(p_o - p_e) / (1 - p_e) with p_e = sum_k p_a(k) p_b(k)."""
  a, b = np.asarray(a), np.asarray(b)
  classes = np.union1d(a, b)
  p_o = np.mean(a == b)
  p_e = sum(np.mean(a == k) * np.mean(b == k) for k in classes)
  return (p_o - p_e) / (1 - p_e)


def nmi_by_hand(x, y):
  """2 I(X; Y) / (H(X) + H(Y)) from the joint counts."""
  x, y = np.asarray(x), np.asarray(y)
  n = len(x)
  joint = {}
  for u, v in zip(x, y):
    joint[(u, v)] = joint.get((u, v), 0) + 1
  px = {u: np.mean(x == u) for u in set(x)}
  py = {v: np.mean(y == v) for v in set(y)}
  mi = sum(c / n * math.log((c / n) / (px[u] * py[v])) for (u, v), c in joint.items())
  h = lambda p: -sum(q * math.log(q) for q in p.values())
  return 2 * mi / (h(px) + h(py))


def test_kappa_and_nmi_against_hand_formulas():
  # Ten documents: the reference, a labeller agreeing on 7 of them, and a third dimension
  # that is a relabelling of the first (NMI 1), and c independent of b by construction.
  ref = {"a": np.array([0, 0, 1, 1, 2, 2, 0, 1, 2, 0]),
         "b": np.array([1, 0, 1, 0, 1, 0, 1, 0, 1, 0])}
  pred = {"a": np.array([0, 1, 1, 1, 2, 0, 0, 1, 1, 0]),
          "b": np.array([1, 0, 1, 0, 1, 0, 1, 0, 1, 1])}
  k = ann.kappas(pred, ref)
  assert k["a"] == pytest.approx(kappa_by_hand(pred["a"], ref["a"]), abs=1e-12)
  assert k["b"] == pytest.approx(kappa_by_hand(pred["b"], ref["b"]), abs=1e-12)
  # Hand value of kappa_a: p_o = 0.7; p_pred = (.4, .4, .2), p_ref = (.4, .3, .3).
  assert k["a"] == pytest.approx((0.7 - (0.16 + 0.12 + 0.06)) / (1 - 0.34), abs=1e-12)
  labels = {"a": ref["a"], "a_renamed": (ref["a"] + 1) % 3, "b": ref["b"],
            "c": np.array([0, 0, 1, 1, 0, 0, 1, 1, 0, 0])}
  dims, m = ann.nmi_matrix(labels)
  assert dims == ["a", "a_renamed", "b", "c"]
  np.testing.assert_allclose(np.diag(m), 1.0)
  np.testing.assert_allclose(m, m.T)
  assert m[0, 1] == pytest.approx(1.0)
  for i, j in ((0, 2), (0, 3), (2, 3)):
    assert m[i, j] == pytest.approx(nmi_by_hand(labels[dims[i]], labels[dims[j]]), abs=1e-10)
  # p(b, c) = p(b) p(c) for every cell (0.3 = 0.5 x 0.6, 0.2 = 0.5 x 0.4): independent.
  assert abs(m[2, 3]) < 1e-12


def test_oracle_noise_rate_and_batch_independence():
  n = 4000
  truth = {"x": np.arange(n) % 4, "y": np.arange(n) % 3}
  texts = [f"doc{i}" for i in range(n)]
  oracle = ann.OracleAnnotator(truth, texts, {"x": 4, "y": 3}, noise=0.2, seed=0)
  out = oracle.annotate(texts)
  # A replaced label is uniform, so it still equals the truth 1/K of the time.
  assert np.mean(out["x"] != truth["x"]) == pytest.approx(0.2 * 3 / 4, abs=0.02)
  assert np.mean(out["y"] != truth["y"]) == pytest.approx(0.2 * 2 / 3, abs=0.02)
  part = oracle.annotate(texts[100:200])
  np.testing.assert_array_equal(part["x"], out["x"][100:200])
  assert isinstance(oracle, ann.Annotator)


def test_mean_pool_and_embedder():
  h = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
  valid = np.array([[1, 1, 0], [1, 1, 1]], bool)
  expected = np.stack([h[0, :2].mean(0), h[1].mean(0)])
  np.testing.assert_allclose(ann.mean_pool(jnp.asarray(h), jnp.asarray(valid)), expected)
  cfg = get_model_config("tiny", vocab_size=20, num_layers=1, hidden_size=16, num_heads=2,
                         num_kv_heads=1, head_dim=8, intermediate_size=32, max_seq_len=8)
  params = qwen3.init_params(cfg, jax.random.key(0))

  class Tok:
    def encode(self, text):
      return [int(w) for w in text.split()]

  emb = ann.LMEmbedder(params, cfg, Tok(), batch_size=2)
  assert isinstance(emb, ann.Embedder)
  texts = ["1 2 3 4", "5 6 7 8", "9 1 2 3"]
  out = emb.embed(texts)
  assert out.shape == (3, 16)
  ids = np.asarray([[int(w) for w in t.split()] for t in texts], np.int32)
  hidden, _ = qwen3.forward(params, jnp.asarray(ids), qwen3.positions_from_mask(
      jnp.ones(ids.shape, bool)), jnp.ones(ids.shape, bool), cfg=cfg)
  np.testing.assert_allclose(out, np.asarray(hidden).mean(1), rtol=1e-5, atol=1e-6)


def test_heads_learn_a_toy_task():
  """Two dimensions read off the sign / magnitude of embedding coordinates: the MLP must reach
  high kappa; the classifier's loss must fall on token-count labels."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(600, 8)).astype(np.float32)
  y = np.stack([(x[:, 0] > 0).astype(int), np.digitize(x[:, 1], [-0.5, 0.5])], -1)
  model, losses = ann.train_mlp(x[:400], y[:400], [2, 3], ann.HeadCfg(hidden=32, steps=150,
                                                                       batch_size=128), 0)
  pred = np.asarray(ann.mlp_predictor(model, [2, 3])(x[400:]))
  k = ann.kappas({"a": pred[:, 0], "b": pred[:, 1]}, {"a": y[400:, 0], "b": y[400:, 1]})
  assert losses[-1] < 0.5 * losses[0]
  assert k["a"] > 0.85 and k["b"] > 0.7
  cfg = get_model_config("tiny", vocab_size=6, num_layers=1, hidden_size=16, num_heads=2,
                         num_kv_heads=1, head_dim=8, intermediate_size=32, max_seq_len=8)
  tokens = rng.integers(1, 6, size=(256, 8)).astype(np.int32)
  labels = (np.sum(tokens == 1, 1, keepdims=True) >= 2).astype(int)
  params, clf_losses = ann.train_classifier(qwen3.init_params(cfg, jax.random.key(1)), cfg,
                                            tokens, labels, [2], ann.ClassifierCfg(
                                                steps=25, batch_size=64, learning_rate=3e-3),
                                            0)
  assert np.mean(clf_losses[-5:]) < np.mean(clf_losses[:5])
  assert ann.classifier_predictor(params, cfg, [2])(tokens[:4]).shape == (4, 1)
