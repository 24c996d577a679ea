"""`draw_categorical`: frequencies match softmax(logits) (chi-square), filtered entries never drawn."""
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from rl_jax.sampling.samplers import draw_categorical


def _counts(logits_V: np.ndarray, draws: int, seed: int) -> np.ndarray:
  keys = jax.random.split(jax.random.key(seed), draws)
  tokens = jax.jit(jax.vmap(lambda k: draw_categorical(k, jnp.asarray(logits_V)[None])[0]))(keys)
  return np.bincount(np.asarray(tokens), minlength=logits_V.shape[0])


def test_frequencies_match_softmax_across_blocks():
  # 300 entries: three blocks of the two-level search, the last one partial (padded).
  rng = np.random.default_rng(0)
  logits = 2.0 * rng.standard_normal(300).astype(np.float32)
  logits[[3, 130, 299]] = -1e30  # filtered (the sampler's top-k / top-p fill)
  counts = _counts(logits, 100_000, seed=1)
  np.testing.assert_array_equal(counts[[3, 130, 299]], 0)
  probs = np.exp(logits.astype(np.float64) - logits.max())
  probs /= probs.sum()
  # Pool the rare entries into one cell so every expected count is >= 5.
  common = probs * counts.sum() >= 5
  observed = np.append(counts[common], counts[~common].sum())
  expected = np.append(probs[common], probs[~common].sum()) * counts.sum()
  assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_peaked_and_single_entry_rows():
  # A row with one live entry always draws it; a near-one-hot row draws its peak.
  logits_BxV = np.full((3, 260), -1e30, np.float32)
  logits_BxV[0, 257] = 0.0  # the only live entry, in the padded last block
  logits_BxV[1, :] = 0.0
  logits_BxV[1, 5] = 60.0
  logits_BxV[2, 0] = 1.0  # the first entry
  for seed in range(20):
    tokens = np.asarray(draw_categorical(jax.random.key(seed), jnp.asarray(logits_BxV)))
    np.testing.assert_array_equal(tokens, [257, 5, 0])


def test_uniform_rows_cover_every_entry():
  counts = _counts(np.zeros(256, np.float32), 51_200, seed=2)
  assert counts.min() > 100 and counts.max() < 300  # expected 200 each


def test_a_row_without_finite_mass_gets_argmax_inside_the_vocabulary():
  # NaN logits (diverged params) and an all -inf row: argmax(logits), as Gumbel-max gives, not
  # the padded last index (127 here, past a 24-entry vocabulary) that the search falls back to.
  logits_BxV = np.zeros((3, 24), np.float32)
  logits_BxV[0, :] = np.nan
  logits_BxV[1, :] = -np.inf
  logits_BxV[2, 7] = 50.0  # a healthy row beside them is drawn as usual
  for seed in range(5):
    tokens = np.asarray(draw_categorical(jax.random.key(seed), jnp.asarray(logits_BxV)))
    np.testing.assert_array_equal(tokens, [0, 0, 7])
    gumbel = np.asarray(jax.random.categorical(jax.random.key(seed), jnp.asarray(logits_BxV)))
    assert gumbel[0] == tokens[0] and gumbel[1] == tokens[1]
