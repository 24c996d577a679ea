"""Online log-sum-exp tile math (shared by the XLA and Pallas paths) vs numpy, tile by tile."""
import jax.numpy as jnp
import numpy as np

from rl_jax.kernels.fused_logprob import tiles


def test_folding_tiles_gives_numpy_lse_entropy_and_target_logit():
  rng = np.random.default_rng(0)
  n, v, tile = 5, 23, 8  # the last tile is partial: 23 = 8 + 8 + 7
  z = rng.normal(0, 3, (n, v)).astype(np.float32)
  y = rng.integers(0, v, (n, 1))
  stats = tiles.init_stats(n)
  for start in range(0, 24, tile):
    cols = np.arange(start, start + tile)[None]
    block = np.zeros((n, tile), np.float32)
    block[:, :min(tile, v - start)] = z[:, start:start + tile]
    stats = tiles.update_stats(stats, jnp.asarray(block), jnp.asarray(cols < v),
                               jnp.asarray(cols), jnp.asarray(y))
  lse, entropy, zy = (np.asarray(a)[:, 0] for a in tiles.finalize_stats(*stats))
  ref_lse = np.log(np.exp(z.astype(np.float64)).sum(1))
  p = np.exp(z - ref_lse[:, None])
  np.testing.assert_allclose(lse, ref_lse, rtol=1e-6)
  np.testing.assert_allclose(entropy, -(p * np.log(p)).sum(1), rtol=1e-5)
  np.testing.assert_allclose(zy, z[np.arange(n), y[:, 0]], rtol=1e-6)
