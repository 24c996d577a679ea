"""SWAP step penalties: hand-computed values, and every implementation against a numpy loop."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl_jax.kernels.step_importance import reference, step_penalties

FIELDS = ("importance_BxK", "norm_importance_BxK", "weights_BxK", "step_penalty_BxK",
          "step_len_BxK", "token_penalty_BxT")


def _numpy_reference(logp, amask, seg, excess, resp, alpha, tau, normalization, weighting):
  """Plain loops over responses, steps and tokens, in float64 (SPEC.md §5 steps 2 and 4)."""
  b_size, k1, _ = logp.shape
  k_size = k1 - 1
  out = {f: np.zeros(seg.shape if f == "token_penalty_BxT" else (b_size, k_size))
         for f in FIELDS}
  for b in range(b_size):
    p = [sum(logp[b, k, a] for a in range(logp.shape[2]) if amask[b, k, a]) for k in range(k1)]
    lengths = [int(np.sum(seg[b] == k)) for k in range(k_size)]
    steps = [k for k in range(k_size) if lengths[k] > 0]
    imp = {k: p[k + 1] - p[k] for k in steps}
    if normalization == "softmax":
      z = sum(math.exp(imp[j] / tau) for j in steps)
      norm = {k: math.exp(imp[k] / tau) / z for k in steps}
    else:
      lo, hi = (min(imp.values()), max(imp.values())) if steps else (0, 0)
      norm = {k: (imp[k] - lo) / (hi - lo) if hi > lo else 0.0 for k in steps}
    if weighting == "linear":
      raw = {k: lengths[k] * (1 - norm[k]) for k in steps}
    else:
      raw = {k: lengths[k] * math.exp(-imp[k] / tau) for k in steps}
    total = sum(raw.values())
    weights = ({k: raw[k] / total for k in steps} if total > 0 else
               {k: lengths[k] / sum(lengths) for k in steps})
    mass = alpha * excess[b] / resp[b] if resp[b] > 0 else 0.0
    for k in steps:
      out["importance_BxK"][b, k] = imp[k]
      out["norm_importance_BxK"][b, k] = norm[k]
      out["weights_BxK"][b, k] = weights[k]
      out["step_penalty_BxK"][b, k] = mass * weights[k] / lengths[k]
      out["step_len_BxK"][b, k] = lengths[k]
    for t in range(seg.shape[1]):
      if seg[b, t] >= 0:
        out["token_penalty_BxT"][b, t] = out["step_penalty_BxK"][b, seg[b, t]]
  return out


def _batch(seed=0, b=11, k=4, t=40, a=5):
  """Random responses, plus the corner cases: no steps, one step, |o| = 0, incorrect (E = 0)."""
  return reference.random_inputs(seed, b, k, t, a)


def _check(impl, normalization, weighting, **kw):
  logp, amask, seg, excess, resp = _batch()
  alpha, tau = 0.7, 0.6
  fn = jax.jit(lambda *a: step_penalties(*a, alpha=alpha, tau=tau, normalization=normalization,
                                         weighting=weighting, implementation=impl, **kw))
  got = fn(logp, amask, seg, excess, resp)
  want = _numpy_reference(logp, amask, seg, excess, resp, alpha, tau, normalization, weighting)
  for field in FIELDS:
    np.testing.assert_allclose(np.asarray(getattr(got, field), np.float64), want[field],
                               rtol=1e-5, atol=1e-6, err_msg=f"{impl} {field}")
  assert got.step_len_BxK.dtype == jnp.int32 and got.token_penalty_BxT.dtype == jnp.float32
  # The token penalties of a response with steps add up to its mass alpha * E / |o|.
  sums = np.asarray(got.token_penalty_BxT).sum(1)
  has_steps = ((seg >= 0).sum(1) > 0) & (resp > 0)
  np.testing.assert_allclose(sums[has_steps], (alpha * excess / np.maximum(resp, 1))[has_steps],
                             rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("normalization", ["softmax", "minmax"])
@pytest.mark.parametrize("weighting", ["linear", "exp"])
@pytest.mark.parametrize("impl", ["xla", "reference"])
def test_matches_numpy_loops(impl, normalization, weighting):
  _check(impl, normalization, weighting)


@pytest.mark.parametrize("normalization, weighting", [("softmax", "linear"), ("minmax", "exp")])
def test_pallas_interpret_matches_numpy_loops(normalization, weighting):
  _check("pallas", normalization, weighting, block_b=8, interpret=True)


@pytest.mark.parametrize("impl", ["xla", "pallas", "reference"])
def test_hand_computed_minmax_example(impl):
  # P = [-5, -3, -3, -1] -> I = [2, 0, 2]; L = [2, 3, 1]; minmax I~ = [1, 0, 1];
  # r = L (1 - I~) = [0, 3, 0] -> u = [0, 1, 0]; M = 0.5 * 4 / 8 = 0.25; p = [0, 0.25/3, 0].
  logp = np.array([[[-5.0], [-3.0], [-3.0], [-1.0]]], np.float32)
  seg = np.array([[-1, 0, 0, 1, 1, 1, 2, -1]], np.int32)
  # jit of a closure: compiled once (fast), inputs still concrete (checked eagerly).
  out = jax.jit(lambda: step_penalties(logp, np.ones((1, 1)), seg, np.array([4.0]),
                                       np.array([8.0]), alpha=0.5, tau=1.0,
                                       normalization="minmax", implementation=impl))()
  np.testing.assert_allclose(out.importance_BxK, [[2, 0, 2]])
  np.testing.assert_allclose(out.norm_importance_BxK, [[1, 0, 1]])
  np.testing.assert_allclose(out.weights_BxK, [[0, 1, 0]])
  np.testing.assert_array_equal(out.step_len_BxK, [[2, 3, 1]])
  third = 0.25 / 3
  np.testing.assert_allclose(out.token_penalty_BxT, [[0, 0, 0, third, third, third, 0, 0]],
                             rtol=1e-6)


def test_single_step_softmax_falls_back_to_length_weights():
  # Softmax over one step gives I~ = 1, so L (1 - I~) = 0: the step takes the whole mass.
  logp = np.array([[[-2.0], [-1.0], [0.0]]], np.float32)
  seg = np.array([[0, 0, 0, -1]], np.int32)
  out = jax.jit(lambda: step_penalties(logp, np.ones((1, 1)), seg, np.array([2.0]),
                                       np.array([4.0]), alpha=1.0, tau=1.0,
                                       implementation="xla"))()
  np.testing.assert_allclose(out.weights_BxK, [[1, 0]])
  np.testing.assert_allclose(out.token_penalty_BxT, [[1 / 6, 1 / 6, 1 / 6, 0]], rtol=1e-6)


def test_knobs_are_traced_and_no_gradient_flows():
  logp, amask, seg, excess, resp = _batch()
  traces = []

  @jax.jit
  def total(logp, alpha, tau):
    traces.append(1)
    out = step_penalties(logp, amask, seg, excess, resp, alpha=alpha, tau=tau,
                         implementation="xla")
    return jnp.sum(out.token_penalty_BxT * jnp.arange(seg.shape[1]))

  a = total(logp, jnp.float32(0.5), jnp.float32(1.0))
  b = total(logp, jnp.float32(0.9), jnp.float32(0.3))
  assert len(traces) == 1 and float(a) != float(b)
  grad = jax.grad(total)(logp, jnp.float32(0.5), jnp.float32(1.0))
  assert np.all(np.asarray(grad) == 0)


def test_bad_segment_id_raises_eagerly_and_is_nan_under_jit():
  logp, amask, seg, excess, resp = _batch()
  bad = seg.copy()
  bad[2, 7] = 4   # K = 4: valid ids are -1..3
  with pytest.raises(ValueError, match=r"segment_ids\[2, 7\] = 4 is outside \[-1, K = 4\)"):
    step_penalties(logp, amask, bad, excess, resp, alpha=1.0, tau=1.0, implementation="xla")
  for impl in ("xla", "reference"):
    pen = jax.jit(lambda s, impl=impl: step_penalties(
        logp, amask, s, excess, resp, alpha=1.0, tau=1.0,
        implementation=impl).token_penalty_BxT)(bad)
    pen = np.asarray(pen)
    assert np.isnan(pen[2, 7]) and np.isfinite(np.delete(pen.reshape(-1), 2 * 40 + 7)).all()


@pytest.mark.parametrize("change, match", [
    (dict(logp=np.zeros((11, 5), np.float32)), r"must be \[B, K\+1, A\]"),
    (dict(amask=np.ones((11, 3))), "answer_mask must be"),
    (dict(seg=np.zeros((10, 40), np.int32)), "segment_ids_BxT must be an integer"),
    (dict(seg=np.zeros((11, 40), np.float32)), "segment_ids_BxT must be an integer"),
    (dict(excess=np.ones(10)), r"excess_len_B must have shape \(11,\)"),
    (dict(resp=-np.ones(11)), "resp_len_B must be >= 0"),
    (dict(tau=0.0), "tau must be > 0"),
    (dict(normalization="rank"), "normalization='rank'"),
    (dict(weighting="sqrt"), "weighting='sqrt'"),
    (dict(implementation="cuda"), "implementation='cuda'"),
    (dict(implementation="pallas", block_b=4), "block_b=4 must be a positive multiple of 8"),
    (dict(implementation="xla", interpret=True), "apply to implementation='pallas' only"),
])
def test_bad_input_raises(change, match):
  logp, amask, seg, excess, resp = _batch()
  arrays = dict(logp=logp, amask=amask, seg=seg, excess=excess, resp=resp)
  arrays.update({k: change.pop(k) for k in list(change) if k in arrays})
  kw = dict(alpha=1.0, tau=1.0, implementation="xla")
  kw.update(change)
  with pytest.raises(ValueError, match=match):
    step_penalties(arrays["logp"], arrays["amask"], arrays["seg"], arrays["excess"],
                   arrays["resp"], **kw)
