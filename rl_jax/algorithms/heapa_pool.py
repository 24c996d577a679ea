"""HeaPA's prompt pool: pure operations on a JSON dict (arXiv 2601.22448; docs/heapa.md).

The two heaps around the reward boundary with lazy deletion, the cold FIFO, boundary sampling,
eviction, the archive, and the lineage re-estimation (ChildAgg / PathAgg) with controlled
reinsertion. The pool is plain JSON (Python ints / floats, str keys), so the RL checkpoint saves
it as it is; the prompt source around it (augmentation, validation) is `rl_jax.algorithms.heapa`,
whose module docstring describes the algorithm.
"""
from __future__ import annotations

import heapq
from typing import Any, Mapping

import numpy as np

SAMPLING_MODES = ("medium_only", "mixed_easy_medium")
REFRESH_MODES = ("none", "child", "path")


# ---------------------------------------------------------------------------------------------
# The pool: pure operations on a JSON dict.
# ---------------------------------------------------------------------------------------------

def pool_init(max_size: int, low_fraction: float = 0.5, rebalance_moves: int = 4) -> dict:
  """An empty pool. max_size: most records it holds (pool, not archive); low_fraction: the
  boundary quantile (0.5 = median, the authors' value); rebalance_moves: most items a local
  rebalance moves across the boundary after one operation (the authors' 4)."""
  if max_size < 1:
    raise ValueError(f"heapa max_pool_size must be >= 1, got {max_size}")
  if not 0.0 < low_fraction < 1.0:
    raise ValueError(f"heapa low_fraction must be in (0, 1), got {low_fraction}")
  return {"max_size": int(max_size), "low_fraction": float(low_fraction),
          "moves": int(rebalance_moves), "records": {}, "low": [], "hmin": [], "hmax": [],
          "n_high": 0, "cold": [], "archive": [], "next_id": 0, "seq": 0,
          "counts": {"evicted": 0, "reinserted": 0, "reinsertions": 0}}


def pool_size(pool: Mapping) -> int:
  return len(pool["low"]) + pool["n_high"] + len(pool["cold"])


def new_record(pool: dict, payload: Any, *, reward: float | None = None, parent: int = -1,
               difficulty: float = 1.0, origin: str = "seed") -> int:
  """Adds a record to `pool["records"]` (not to the pool's heaps) and returns its id."""
  rid = pool["next_id"]
  pool["next_id"] += 1
  pool["records"][str(rid)] = {"p": payload, "r": None if reward is None else float(reward),
                               "parent": int(parent), "d": float(difficulty), "o": origin,
                               "loc": "none", "seq": -1, "visits": 0}
  return rid


def pool_record(pool, rid: int) -> dict:
  return pool["records"][str(rid)]


def _next_seq(pool) -> int:
  pool["seq"] += 1
  return pool["seq"]


def _high_top(pool, heap_name: str):
  """The live top entry of hmin / hmax (stale entries popped: lazy deletion), or None."""
  heap = pool[heap_name]
  while heap:
    _, seq, rid = heap[0]
    rec = pool["records"].get(str(rid))
    if rec is not None and rec["loc"] == "high" and rec["seq"] == seq:
      return heap[0]
    heapq.heappop(heap)
  return None


def _push_low(pool, rid: int) -> None:
  rec = pool_record(pool, rid)
  rec["loc"], rec["seq"] = "low", _next_seq(pool)
  heapq.heappush(pool["low"], [-rec["r"], rec["seq"], rid])


def _push_high(pool, rid: int) -> None:
  rec = pool_record(pool, rid)
  rec["loc"], rec["seq"] = "high", _next_seq(pool)
  heapq.heappush(pool["hmin"], [rec["r"], rec["seq"], rid])
  heapq.heappush(pool["hmax"], [-rec["r"], rec["seq"], rid])
  pool["n_high"] += 1


def _pop_low_max(pool) -> int:
  _, _, rid = heapq.heappop(pool["low"])
  pool_record(pool, rid)["loc"] = "none"
  return rid


def _pop_high(pool, heap_name: str) -> int:
  """Pops the live top of hmin (easiest-hard boundary side) or hmax (easiest item)."""
  entry = _high_top(pool, heap_name)
  heapq.heappop(pool[heap_name])
  rid = entry[2]
  pool_record(pool, rid)["loc"] = "none"  # its twin entry is now stale
  pool["n_high"] -= 1
  _compact_high(pool)
  return rid


def _compact_high(pool) -> None:
  """Drops stale twin entries once they outnumber live ones (keeps the heaps O(n))."""
  for name in ("hmin", "hmax"):
    if len(pool[name]) > 2 * pool["n_high"] + 16:
      live = [e for e in pool[name]
              if pool["records"].get(str(e[2]), {}).get("loc") == "high"
              and pool["records"][str(e[2])]["seq"] == e[1]]
      heapq.heapify(live)
      pool[name] = live


def _rebalance(pool) -> None:
  """Keeps len(low) == floor(low_fraction * scored), moving at most `moves` boundary items."""
  for _ in range(pool["moves"]):
    target = int(pool["low_fraction"] * (len(pool["low"]) + pool["n_high"]))
    if len(pool["low"]) > target:
      _push_high(pool, _pop_low_max(pool))
    elif len(pool["low"]) < target and pool["n_high"]:
      _push_low(pool, _pop_high(pool, "hmin"))
    else:
      return


def _insert_scored(pool, rid: int) -> None:
  top = _high_top(pool, "hmin")
  if top is not None and pool_record(pool, rid)["r"] > top[0]:
    _push_high(pool, rid)
  else:
    _push_low(pool, rid)
  _rebalance(pool)


def _evict(pool, rid: int) -> None:
  pool["records"].pop(str(rid))
  pool["counts"]["evicted"] += 1


def _evict_hardest(pool) -> None:
  """Evicts the lowest-reward low item (O(n) scan plus heapify, as the authors), else the
  lowest high item, else the oldest cold item."""
  if pool["low"]:
    i = min(range(len(pool["low"])), key=lambda j: (-pool["low"][j][0], pool["low"][j][1]))
    _, _, rid = pool["low"].pop(i)
    heapq.heapify(pool["low"])
    _evict(pool, rid)
  elif pool["n_high"]:
    _evict(pool, _pop_high(pool, "hmin"))
  elif pool["cold"]:
    _evict(pool, pool["cold"].pop(0))
  _rebalance(pool)


def _evict_easiest(pool) -> None:
  """Evicts the highest-reward item (high-max, else low-max), else the oldest cold item."""
  if pool["n_high"]:
    _evict(pool, _pop_high(pool, "hmax"))
  elif pool["low"]:
    _evict(pool, _pop_low_max(pool))
  elif pool["cold"]:
    _evict(pool, pool["cold"].pop(0))
  _rebalance(pool)


def pool_insert(pool: dict, rid: int) -> None:
  """Puts record `rid` into the pool: unscored -> cold, scored -> the side of the boundary its
  reward falls on. When full: an unscored insert first evicts the easiest item; a scored insert
  goes in and then the hardest low item is evicted (the authors' rules)."""
  rec = pool_record(pool, rid)
  if rec["r"] is None:
    if pool_size(pool) >= pool["max_size"]:
      _evict_easiest(pool)
    rec["loc"] = "cold"
    pool["cold"].append(rid)
    return
  _insert_scored(pool, rid)
  while pool_size(pool) > pool["max_size"]:
    _evict_hardest(pool)


def pool_sample(pool: dict, k: int, rng: np.random.Generator, mode: str = "medium_only"
                ) -> list[int]:
  """k record ids, removed from the pool: cold first (FIFO), then boundary sampling.

  Raises ValueError if the pool holds fewer than k records (the source reinserts the archive
  before that can happen; see `HeapaSource.sample`)."""
  if mode not in SAMPLING_MODES:
    raise ValueError(f"heapa sampling_mode must be one of {SAMPLING_MODES}, got {mode!r}")
  if pool_size(pool) < k:
    raise ValueError(f"heapa pool: {pool_size(pool)} records, fewer than the {k} prompts a draw "
                     f"needs (and nothing left to reinsert)")
  picked = []
  while pool["cold"] and len(picked) < k:
    rid = pool["cold"].pop(0)
    pool_record(pool, rid)["loc"] = "none"
    picked.append(rid)
  m = k - len(picked)
  if m and mode == "mixed_easy_medium":
    for _ in range(min(m // 2, pool["n_high"])):
      picked.append(_pop_high(pool, "hmax"))
    _rebalance(pool)
    m = k - len(picked)
  if m:
    candidates = []
    while len(candidates) < 2 * m and (pool["low"] or pool["n_high"]):
      if pool["n_high"] and (len(candidates) % 2 == 0 or not pool["low"]):
        candidates.append(_pop_high(pool, "hmin"))
      else:
        candidates.append(_pop_low_max(pool))
    keep = set(int(i) for i in rng.choice(len(candidates), size=m, replace=False))
    for i, rid in enumerate(candidates):
      if i in keep:
        picked.append(rid)
      else:
        _insert_scored(pool, rid)
    _rebalance(pool)
  for rid in picked:
    pool_record(pool, rid)["loc"] = "out"
  return picked


def pool_boundary(pool: Mapping) -> float | None:
  """The reward at the boundary (low max and high min averaged), None if nothing is scored.
  Reads only (a scan for the live high min instead of popping stale entries)."""
  low = -pool["low"][0][0] if pool["low"] else None
  live = [e[0] for e in pool["hmin"] if pool["records"].get(str(e[2]), {}).get("loc") == "high"
          and pool["records"][str(e[2])]["seq"] == e[1]]
  values = [v for v in (low, min(live) if live else None) if v is not None]
  return float(np.mean(values)) if values else None


def pool_rewards(pool: Mapping) -> list[float]:
  """Rewards of the scored records in the pool (not cold, not archived)."""
  return [r["r"] for r in pool["records"].values() if r["loc"] in ("low", "high")]


# ---------------------------------------------------------------------------------------------
# Topology-aware re-estimation over the lineage DAG (ChildAgg / PathAgg).
# ---------------------------------------------------------------------------------------------

def adjust(value: float, difficulty: float) -> float:
  """adj(v, d) = v / d for v >= 0, v * d for v < 0 (the authors' child adjustment)."""
  return value / difficulty if value >= 0 else value * difficulty


def child_estimate(value: float, difficulty: float, d_min: float = 0.75, d_max: float = 1.33
                   ) -> float:
  """A variant's estimated reward from its parent's realised mean b and the reported difficulty
  d clamped to [d_min, d_max]: b / d if b >= 0 else b * d, clipped to [-1, 1]."""
  d = min(max(float(difficulty), d_min), d_max)
  return float(np.clip(adjust(float(value), d), -1.0, 1.0))


def topological_bottom_up(parents: Mapping[int, int]) -> list[int]:
  """Node ids, every child before its parent (Kahn's algorithm on child counts). Parents absent
  from `parents` (evicted records) are ignored. Raises ValueError on a cycle."""
  n_children = {v: 0 for v in parents}
  for v, p in parents.items():
    if p in n_children:
      n_children[p] += 1
  ready = sorted(v for v, c in n_children.items() if c == 0)
  order = []
  while ready:
    v = ready.pop()
    order.append(v)
    p = parents[v]
    if p in n_children:
      n_children[p] -= 1
      if n_children[p] == 0:
        ready.append(p)
  if len(order) != len(parents):
    raise ValueError(f"heapa lineage: a cycle among records "
                     f"{sorted(set(parents) - set(order))[:10]}")
  return order


def refresh_estimates(values: Mapping[int, float], parents: Mapping[int, int],
                      difficulty: Mapping[int, float], mode: str, temperature: float = 1.0,
                      mix: float = 0.5) -> dict[int, float]:
  """Re-estimated values of every node, bottom-up over the lineage DAG.

  For a node with children C (already re-estimated):
    ChildAgg ("child"): new = (1 - mix) * old + mix * mean_{c in C} adj(v_c, d_c)
    PathAgg  ("path"):  the mean weighted by softmax_c(log(leaves_c) / temperature), leaves_c =
                        leaves of c's subtree (a leaf counts 1; T = 1 gives weights proportional
                        to leaf counts)
  clipped to [-1, 1]; nodes without children keep their value. "none" returns values as given.
  """
  if mode not in REFRESH_MODES:
    raise ValueError(f"heapa refresh must be one of {REFRESH_MODES}, got {mode!r}")
  out = {v: float(x) for v, x in values.items()}
  if mode == "none":
    return out
  children: dict[int, list[int]] = {v: [] for v in parents}
  for v, p in parents.items():
    if p in children:
      children[p].append(v)
  leaves: dict[int, int] = {}
  for v in topological_bottom_up(parents):
    kids = sorted(children[v])
    leaves[v] = sum(leaves[c] for c in kids) if kids else 1
    if not kids:
      continue
    adj = np.asarray([adjust(out[c], difficulty[c]) for c in kids], np.float64)
    if mode == "child":
      agg = float(adj.mean())
    else:
      logits = np.log(np.asarray([leaves[c] for c in kids], np.float64)) / temperature
      w = np.exp(logits - logits.max())
      agg = float((w / w.sum()) @ adj)
    out[v] = float(np.clip((1.0 - mix) * out[v] + mix * agg, -1.0, 1.0))
  return out


def pool_refresh(pool: dict, mode: str, temperature: float = 1.0, mix: float = 0.5) -> None:
  """Applies `refresh_estimates` over every known record; only archived records take the new
  value (pool records keep the value their heap position was keyed on)."""
  if mode == "none":
    return
  recs = {int(k): r for k, r in pool["records"].items() if r["r"] is not None}
  new = refresh_estimates({k: r["r"] for k, r in recs.items()},
                          {k: r["parent"] for k, r in recs.items()},
                          {k: r["d"] for k, r in recs.items()}, mode, temperature, mix)
  for rid in pool["archive"]:
    if rid in new:
      pool_record(pool, rid)["r"] = new[rid]


def pool_reinsert_archive(pool: dict, rng: np.random.Generator, refresh: str = "none",
                          temperature: float = 1.0, mix: float = 0.5) -> int:
  """Controlled reinsertion: refresh the archive's estimates, shuffle it, insert it all.
  Returns how many records were reinserted."""
  pool_refresh(pool, refresh, temperature, mix)
  archive = [pool["archive"][i] for i in rng.permutation(len(pool["archive"]))]
  pool["archive"] = []
  for rid in archive:
    pool_insert(pool, rid)
  pool["counts"]["reinserted"] += len(archive)
  pool["counts"]["reinsertions"] += 1
  return len(archive)
