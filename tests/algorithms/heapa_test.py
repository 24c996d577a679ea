"""HeaPA's pool against a sorted-list oracle, ChildAgg / PathAgg against hand-computed DAGs, and
the prompt source's deferred, ordered validation (rl_jax/algorithms/heapa.py)."""
import json
import threading
import time
import types

import numpy as np
import pytest

from rl_jax.algorithms import heapa, heapa_pool


# ---- the pool against a sorted-list oracle ----------------------------------------------------

def _live_high(pool):
  return {e[2] for e in pool["hmin"] if pool["records"].get(str(e[2]), {}).get("loc") == "high"
          and pool["records"][str(e[2])]["seq"] == e[1]}


def _sides(pool):
  low = {e[2] for e in pool["low"]}
  return low, _live_high(pool), list(pool["cold"])


class Oracle:
  """What the pool should hold: scored ids sorted by reward (rewards are distinct), cold FIFO."""

  def __init__(self, max_size):
    self.max_size, self.reward, self.cold = max_size, {}, []

  def size(self):
    return len(self.reward) + len(self.cold)

  def sorted_ids(self):
    return sorted(self.reward, key=self.reward.get)

  def insert(self, rid, reward):
    if reward is None:
      if self.size() >= self.max_size:
        if self.reward:
          self.reward.pop(self.sorted_ids()[-1])  # the easiest
        else:
          self.cold.pop(0)
      self.cold.append(rid)
    else:
      self.reward[rid] = reward
      while self.size() > self.max_size:
        self.reward.pop(self.sorted_ids()[0])  # the hardest (the new one possibly)

  def candidates(self, n_low, m):
    """The 2m ids nearest the boundary, alternating high-min / low-max (high first)."""
    ids = self.sorted_ids()
    low, high = ids[:n_low][::-1], ids[n_low:]
    out, i, j = [], 0, 0
    while len(out) < 2 * m and (i < len(low) or j < len(high)):
      if j < len(high) and (len(out) % 2 == 0 or i >= len(low)):
        out.append(high[j])
        j += 1
      else:
        out.append(low[i])
        i += 1
    return out


def _check_against_oracle(pool, oracle):
  low, high, cold = _sides(pool)
  assert cold == oracle.cold
  assert low | high == set(oracle.reward)
  assert not low & high
  assert heapa_pool.pool_size(pool) == oracle.size() == len(low) + len(high) + len(cold)
  assert pool["n_high"] == len(high)
  # The split is a prefix of the sorted order: every hard item is below every easy one.
  assert low == set(oracle.sorted_ids()[:len(low)])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mode", heapa_pool.SAMPLING_MODES)
def test_pool_matches_sorted_list_oracle(seed, mode):
  rng = np.random.default_rng(seed)
  max_size = int(rng.integers(5, 40))
  pool, oracle = heapa_pool.pool_init(max_size, low_fraction=float(rng.uniform(0.2, 0.8))), None
  oracle = Oracle(max_size)
  for _ in range(300):
    op = rng.random()
    if op < 0.6:
      reward = None if rng.random() < 0.3 else float(rng.random())  # distinct a.s.
      rid = heapa_pool.new_record(pool, 0, reward=reward)
      heapa_pool.pool_insert(pool, rid)
      oracle.insert(rid, reward)
      # Evicted records are gone from the records too.
      assert set(map(int, pool["records"])) >= set(oracle.reward) | set(oracle.cold)
    elif heapa_pool.pool_size(pool):
      k = int(rng.integers(1, heapa_pool.pool_size(pool) + 1))
      low_before, high_before, cold_before = _sides(pool)
      picked = heapa_pool.pool_sample(pool, k, rng, mode)
      assert len(picked) == len(set(picked)) == k
      from_cold = cold_before[:k]
      assert picked[:len(from_cold)] == from_cold  # cold first, FIFO
      oracle.cold = oracle.cold[len(from_cold):]
      m = k - len(from_cold)
      rest = picked[len(from_cold):]
      if mode == "mixed_easy_medium" and m:
        n_easy = min(m // 2, len(high_before))
        easiest = sorted(high_before, key=oracle.reward.get)[::-1][:n_easy]
        assert rest[:n_easy] == easiest
        for rid in easiest:
          oracle.reward.pop(rid)
        high_before -= set(easiest)
        rest = rest[n_easy:]
        m -= n_easy  # (the boundary draw then sees the split after a rebalance)
      if m and mode == "medium_only":
        assert set(rest) <= set(oracle.candidates(len(low_before), m))
      for rid in rest:
        oracle.reward.pop(rid)
      for rid in picked:
        assert pool["records"][str(rid)]["loc"] == "out"
    _check_against_oracle(pool, oracle)


def test_boundary_sampling_draws_from_the_2k_nearest_the_median():
  # Rewards 0, 1/20, ..., 19/20: the median split puts 0..9 low and 10..19 high; k = 3 draws
  # from the 6 nearest the boundary, 7..12, alternating 10, 9, 11, 8, 12, 7.
  seen = set()
  for seed in range(40):
    pool = heapa_pool.pool_init(100)
    for i in range(20):
      heapa_pool.pool_insert(pool, heapa_pool.new_record(pool, i, reward=i / 20))
    picked = heapa_pool.pool_sample(pool, 3, np.random.default_rng(seed))
    rewards = sorted(round(pool["records"][str(r)]["r"] * 20) for r in picked)
    assert set(rewards) <= set(range(7, 13))
    seen |= set(rewards)
    assert heapa_pool.pool_size(pool) == 17 and len(pool["low"]) == 8  # floor(0.5 * 17)
  assert seen == set(range(7, 13))  # each of the 6 candidates is drawn, uniformly
  pool = heapa_pool.pool_init(100)
  for i in range(20):
    heapa_pool.pool_insert(pool, heapa_pool.new_record(pool, i, reward=i / 20))
  picked = heapa_pool.pool_sample(pool, 4, np.random.default_rng(0), "mixed_easy_medium")
  rewards = [round(pool["records"][str(r)]["r"] * 20) for r in picked]
  assert rewards[:2] == [19, 18]  # half from the easy top
  assert set(rewards[2:]) <= {7, 8, 9, 10}  # then the 4 nearest the median of the 18 left


def test_inserts_keep_the_boundary_at_the_quantile():
  rng = np.random.default_rng(0)
  pool = heapa_pool.pool_init(1000, low_fraction=0.3)
  values = rng.random(200)
  for i, v in enumerate(values):
    heapa_pool.pool_insert(pool, heapa_pool.new_record(pool, i, reward=float(v)))
    n = i + 1
    assert len(pool["low"]) == int(0.3 * n)
    low_max = max(-e[0] for e in pool["low"]) if pool["low"] else -np.inf
    assert low_max <= np.sort(values[:n])[int(0.3 * n)]
  assert heapa_pool.pool_boundary(pool) == pytest.approx(
      (np.sort(values)[59] + np.sort(values)[60]) / 2)


def test_stale_twin_entries_are_compacted():
  pool = heapa_pool.pool_init(10_000)
  for i in range(400):
    heapa_pool.pool_insert(pool, heapa_pool.new_record(pool, i, reward=float(i) / 400))
  rng = np.random.default_rng(1)
  for _ in range(30):
    heapa_pool.pool_sample(pool, 10, rng, "mixed_easy_medium")
  assert heapa_pool.pool_size(pool) == 100
  for name in ("hmin", "hmax"):
    assert len(pool[name]) <= 2 * pool["n_high"] + 16 + 1


def test_full_pool_evicts_by_the_authors_rules():
  pool = heapa_pool.pool_init(4)
  ids = [heapa_pool.new_record(pool, i, reward=r) for i, r in enumerate([0.1, 0.4, 0.6, 0.9])]
  for rid in ids:
    heapa_pool.pool_insert(pool, rid)
  hard_new = heapa_pool.new_record(pool, 9, reward=0.5)
  heapa_pool.pool_insert(pool, hard_new)  # scored insert: the hardest low item (0.1) goes
  assert str(ids[0]) not in pool["records"] and heapa_pool.pool_size(pool) == 4
  cold = heapa_pool.new_record(pool, 10)
  heapa_pool.pool_insert(pool, cold)  # unscored insert: the easiest item (0.9) goes
  assert str(ids[3]) not in pool["records"] and pool["cold"] == [cold]
  assert pool["counts"]["evicted"] == 2
  lowest = heapa_pool.new_record(pool, 11, reward=0.0)
  heapa_pool.pool_insert(pool, lowest)  # a scored insert that is itself the hardest is dropped
  assert str(lowest) not in pool["records"]


def test_sampling_more_than_the_pool_holds_is_a_clear_error():
  pool = heapa_pool.pool_init(8)
  heapa_pool.pool_insert(pool, heapa_pool.new_record(pool, 0, reward=0.5))
  with pytest.raises(ValueError, match="1 records, fewer than the 2 prompts"):
    heapa_pool.pool_sample(pool, 2, np.random.default_rng(0))
  with pytest.raises(ValueError, match="sampling_mode"):
    heapa_pool.pool_sample(pool, 1, np.random.default_rng(0), "hardest")


def test_pool_is_json_and_resumes_exactly():
  def ops(pool, rng, n):
    out = []
    for _ in range(n):
      if rng.random() < 0.6:
        heapa_pool.pool_insert(pool, heapa_pool.new_record(pool, 0, reward=float(rng.integers(0, 9)) / 8))
      elif heapa_pool.pool_size(pool) > 3:
        out.append(heapa_pool.pool_sample(pool, 3, rng))
    return out

  rng = np.random.default_rng(3)
  pool = heapa_pool.pool_init(30)
  ops(pool, rng, 100)
  restored = json.loads(json.dumps(pool))
  state = rng.bit_generator.state
  a = ops(pool, rng, 100)
  rng.bit_generator.state = state
  b = ops(restored, rng, 100)
  assert a == b and pool == restored


# ---- ChildAgg / PathAgg on hand-computed DAGs -------------------------------------------------

# 0 (0.5) -> 1 (0.8, d=1.0), 2 (0.2, d=0.5); 2 -> 3 (-0.4, d=2.0), 4 (0.6, d=1.2)
VALUES = {0: 0.5, 1: 0.8, 2: 0.2, 3: -0.4, 4: 0.6}
PARENTS = {0: -1, 1: 0, 2: 0, 3: 2, 4: 2}
DIFFICULTY = {0: 1.0, 1: 1.0, 2: 0.5, 3: 2.0, 4: 1.2}


def test_child_aggregation_by_hand():
  out = heapa_pool.refresh_estimates(VALUES, PARENTS, DIFFICULTY, "child")
  # node 2: adj(-0.4, 2) = -0.8, adj(0.6, 1.2) = 0.5 -> mean -0.15; 0.5*0.2 + 0.5*(-0.15)
  assert out[2] == pytest.approx(0.025)
  # node 0: adj(0.8, 1) = 0.8, adj(0.025, 0.5) = 0.05 -> mean 0.425; 0.5*0.5 + 0.5*0.425
  assert out[0] == pytest.approx(0.4625)
  assert (out[1], out[3], out[4]) == (0.8, -0.4, 0.6)  # leaves keep their values


def test_path_aggregation_by_hand():
  out = heapa_pool.refresh_estimates(VALUES, PARENTS, DIFFICULTY, "path")
  assert out[2] == pytest.approx(0.025)  # children 3, 4: one leaf each -> equal weights
  # node 0: leaves 1 (node 1) and 2 (node 2) -> weights 1/3, 2/3: 0.8/3 + 0.05*2/3 = 0.3
  assert out[0] == pytest.approx(0.25 + 0.5 * 0.3)
  # T = 2: weights proportional to sqrt(leaves) = 1, sqrt(2)
  w = np.array([1.0, np.sqrt(2.0)]) / (1 + np.sqrt(2.0))
  out_t2 = heapa_pool.refresh_estimates(VALUES, PARENTS, DIFFICULTY, "path", temperature=2.0)
  assert out_t2[0] == pytest.approx(0.25 + 0.5 * (w[0] * 0.8 + w[1] * 0.05))


def test_aggregation_clips_and_handles_missing_parents_and_cycles():
  out = heapa_pool.refresh_estimates({0: 1.0, 1: 1.0}, {0: -1, 1: 0}, {0: 1.0, 1: 0.5}, "child")
  assert out[0] == 1.0  # 0.5 + 0.5 * 2.0 = 1.5, clipped
  # A parent that was evicted (not in the DAG) makes its child a root.
  assert heapa_pool.refresh_estimates({5: 0.3}, {5: 2}, {5: 1.0}, "path") == {5: 0.3}
  assert heapa_pool.refresh_estimates(VALUES, PARENTS, DIFFICULTY, "none") == VALUES
  with pytest.raises(ValueError, match="cycle"):
    heapa_pool.refresh_estimates({0: 0.1, 1: 0.2}, {0: 1, 1: 0}, {0: 1.0, 1: 1.0}, "child")
  with pytest.raises(ValueError, match="refresh"):
    heapa_pool.refresh_estimates(VALUES, PARENTS, DIFFICULTY, "mean")


def test_topological_order_puts_children_first():
  order = heapa_pool.topological_bottom_up(PARENTS)
  for v, p in PARENTS.items():
    if p in PARENTS:
      assert order.index(v) < order.index(p)


def test_child_estimate_by_hand():
  assert heapa_pool.child_estimate(0.6, 1.2) == pytest.approx(0.5)
  assert heapa_pool.child_estimate(0.6, 0.5) == pytest.approx(0.8)  # d clamped to 0.75
  assert heapa_pool.child_estimate(-0.5, 1.33) == pytest.approx(-0.665)
  assert heapa_pool.child_estimate(0.9, 0.75) == 1.0  # 1.2 clipped


def test_reinsertion_refreshes_only_the_archive():
  pool = heapa_pool.pool_init(100)
  parent = heapa_pool.new_record(pool, 0, reward=0.2)
  child = heapa_pool.new_record(pool, 1, reward=0.8, parent=parent, difficulty=1.0, origin="aug")
  heapa_pool.pool_insert(pool, child)
  pool["records"][str(parent)]["loc"] = "archive"
  pool["archive"].append(parent)
  n = heapa_pool.pool_reinsert_archive(pool, np.random.default_rng(0), "child")
  assert n == 1 and pool["archive"] == []
  assert pool["records"][str(parent)]["r"] == pytest.approx(0.5 * 0.2 + 0.5 * 0.8)
  assert pool["records"][str(child)]["r"] == 0.8
  assert heapa_pool.pool_size(pool) == 2


# ---- the prompt source: deferred, ordered validation and resume -------------------------------

class SlowValidator:
  """Accepts payloads with an even "x", refuses odd ones as invalid, after a random delay (so
  worker threads finish out of order)."""

  def __init__(self):
    self.rng = np.random.default_rng(0)
    self.lock = threading.Lock()

  def __call__(self, payload):
    with self.lock:
      delay = float(self.rng.uniform(0, 0.01))
    time.sleep(delay)
    if payload["x"] % 2:
      return heapa.Verdict("invalid")
    return heapa.Verdict("ok", payload["x"])


class CountingAugmenter:
  needs_policy = False

  def propose(self, parents, rng, *, params=None, key=None):
    return [heapa.Variant({"x": int(rng.integers(0, 1000))}, float(rng.uniform(0.5, 1.5)))
            for _ in parents], {"tokens": 3}

  def decode(self, problem):
    return ("aug", problem)


def _source(threads, max_pool_size=64, train=20):
  ctx = types.SimpleNamespace(task=types.SimpleNamespace(train=[("seed", i) for i in
                                                                range(train)], name="t"),
                              seed=0)
  return heapa.HeapaSource(
      ctx, "rl", max_pool_size=max_pool_size, sampling_mode="medium_only", low_fraction=0.5,
      rebalance_moves=4, refresh="path", path_temperature=1.0, refresh_mix=0.5,
      augmenter=CountingAugmenter(), validator=SlowValidator(), num_per_prompt=1,
      difficulty_range=(0.75, 1.33), validator_threads=threads, histogram_bins=4,
      reward_range=(0.0, 1.0))


def _run(source, state, steps, start=0, n=4, g=2):
  trace = []
  for step in range(start, start + steps):
    problems, state = source.sample(state, n, step, 0)
    rewards = np.asarray([((sum(map(ord, repr(p))) + step + j) % 3) / 2 for p in problems for j in range(g)],
                         np.float32)
    state = source.observe(state, problems, rewards, g)
    trace.append(problems)
  return trace, state


def test_verdicts_apply_next_step_in_order_and_refusals_are_never_inserted():
  source = _source(threads=4)
  state = source.init_state()
  _, state = _run(source, state, 1)
  assert len(state["pending"]) == 4 and state["metrics"]["proposed"] == 4
  pending = list(state["pending"])
  _, state = source.sample(state, 4, 1, 0)  # step 1 starts: step 0's verdicts apply
  payloads = [job[3]["x"] for job in pending]
  inserted = [r for r in state["pool"]["records"].values() if r["o"] == "aug"]
  # Submission order, whatever thread finished first: record ids follow the jobs' order.
  assert [r["p"] for r in inserted] == [x for x in payloads if x % 2 == 0]
  assert state["metrics"]["ok"] == sum(x % 2 == 0 for x in payloads)
  assert state["metrics"]["invalid"] == sum(x % 2 == 1 for x in payloads)
  for job, rec in zip([j for j in pending if j[3]["x"] % 2 == 0], inserted):
    assert rec["parent"] == job[2] and rec["r"] == job[5]  # reward = est, parent set
  assert source.metrics(state)["aug/aug_tokens"] == 3.0


def test_threads_and_resume_make_the_same_choices():
  sync = _source(threads=0)
  trace_a, state_a = _run(sync, sync.init_state(), 12)
  threaded = _source(threads=3)
  trace_b, state_b = _run(threaded, threaded.init_state(), 12)
  assert trace_a == trace_b and state_a == state_b
  # Kill after step 5 (jobs pending), resume from the JSON state with a fresh source.
  first = _source(threads=3)
  trace_c, mid = _run(first, first.init_state(), 6)
  assert mid["pending"]
  resumed = _source(threads=3)
  trace_d, state_d = _run(resumed, json.loads(json.dumps(mid)), 6, start=6)
  assert trace_c + trace_d == trace_a and state_d == state_a
  assert state_a["pool"]["counts"]["reinsertions"] >= 1  # the archive came back at least once


def test_empty_pool_reinserts_the_archive_then_errors_clearly():
  source = _source(threads=0, train=6)
  source.augmenter, source.num_per_prompt = heapa.NoAugmenter(), 0
  state = source.init_state()
  problems, state = source.sample(state, 4, 0, 0)
  state = source.observe(state, problems, np.ones(8, np.float32), 2)
  # 2 left in the pool < 4: the archive (4 scored records) is reinserted first.
  problems, state = source.sample(state, 4, 1, 0)
  assert len(problems) == 4 and state["pool"]["counts"]["reinsertions"] == 1
  with pytest.raises(ValueError, match="the pool holds 2 prompts and the archive is empty"):
    source.sample(state, 4, 2, 0)  # the 4 in flight were never observed


def test_observe_checks_group_counts():
  source = _source(threads=0)
  problems, state = source.sample(source.init_state(), 4, 0, 0)
  with pytest.raises(ValueError, match="3 groups of rewards for 4 sampled prompts"):
    source.observe(state, problems, np.ones(6, np.float32), 2)


def test_augment_band_skips_prompts_outside_it():
  source = _source(threads=0)
  source.augment_band = (0.1, 0.7)
  problems, state = source.sample(source.init_state(), 4, 0, 0)
  # group means 0, 0.5, 1, 0.5 (G = 2): only the two 0.5 prompts get a variant
  rewards = np.asarray([0, 0, 0, 1, 1, 1, 1, 0], np.float32)
  state = source.observe(state, problems, rewards, 2)
  assert [job[2] for job in state["pending"]] == [state["pool"]["archive"][i] for i in (1, 3)]
  assert state["metrics"]["skipped_band"] == 2 and state["metrics"]["proposed"] == 2
