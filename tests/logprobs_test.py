"""Teacher-forced log-probs: fused kernels == naive (values, grads) and in a training run."""
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_jax import logprobs, main, metrics
from rl_jax.models import qwen3
from rl_jax.models.config import get_model_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = get_model_config("tiny", vocab_size=50, num_layers=1, max_seq_len=32)
PARAMS = qwen3.init_params(CFG, jax.random.key(0))


def _inputs():
  tokens = jax.random.randint(jax.random.key(1), (3, 12), 0, 50)
  valid = jnp.ones((3, 12), bool).at[0, :4].set(False)
  return tokens, valid


@pytest.mark.parametrize("impl", ["xla", "pallas"])
def test_fused_equals_naive_values_entropy_and_grads(impl):
  tokens, valid = _inputs()

  def f(params, implementation):
    logp, ent = logprobs.token_logprobs(params, tokens, valid, cfg=CFG,
                                        implementation=implementation, temperature=0.8,
                                        return_entropy=True)
    return jnp.sum(logp * jnp.arange(12)) + jnp.sum(ent), (logp, ent)

  (_, (lp_n, en_n)), g_n = jax.value_and_grad(f, has_aux=True)(PARAMS, "naive")
  (_, (lp_f, en_f)), g_f = jax.value_and_grad(f, has_aux=True)(PARAMS, impl)
  np.testing.assert_allclose(lp_f, lp_n, atol=1e-5)
  np.testing.assert_allclose(en_f, en_n, atol=1e-5)
  for a, b in zip(jax.tree.leaves(g_f), jax.tree.leaves(g_n)):
    # Entropy gradients cancel in sums over V: compare relative to the largest entry.
    np.testing.assert_allclose(a, b, atol=1e-5 * float(jnp.abs(b).max()) + 1e-6, rtol=1e-4)
  assert float(jnp.abs(lp_n[0, :5]).max()) == 0.0  # padding and the first slot score 0


def test_unknown_implementation():
  tokens, valid = _inputs()
  with pytest.raises(ValueError, match="unknown log-prob implementation 'fast'"):
    logprobs.token_logprobs(PARAMS, tokens, valid, cfg=CFG, implementation="fast")


def test_training_run_fused_matches_naive(tmp_path):
  sys.path.insert(0, REPO)
  try:
    from configs import quickstart  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.remove(REPO)
  runs = {}
  for impl in ("naive", "xla"):
    c = quickstart.get_config("runlocal")
    c.logprob_impl = impl
    c.rl.steps = 3
    # Rewards that differ by length (an untrained model solves nothing): non-zero gradients.
    c.rl.overlong_max_len, c.rl.overlong_cache_len = 10, 8
    main.run(c, str(tmp_path / impl), show_progress=False)
    runs[impl] = metrics.read_metrics(str(tmp_path / impl / "metrics.jsonl"))
  assert len(runs["naive"]) == len(runs["xla"])
  assert [r["stage"] for r in runs["naive"]].count("rl") == 3
  assert all(r["grad/norm"] > 0 for r in runs["naive"] if r["stage"] == "rl")
  for a, b in zip(runs["naive"], runs["xla"]):
    assert a.keys() == b.keys()
    assert a["stage"] == b["stage"]
    for k in a:
      if not k.startswith("time/") and k != "stage":
        np.testing.assert_allclose(b[k], a[k], atol=1e-5, rtol=1e-5, err_msg=f"{k} step {a['step']}")
