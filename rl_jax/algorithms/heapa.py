"""HeaPA: heap sampling and on-policy query augmentation (arXiv 2601.22448), a prompt source.

    rl.prompt_source = {"name": "heapa", "sampling_mode": "medium_only",
                        "augmenter": {"name": ...}, "validator": {"name": "exact"},
                        "refresh": "path"}

The pool (`pool_*` functions, pure operations on a JSON dict, so the whole pool is saved in the
RL checkpoint as it is) follows the authors' `ThreadSafeQueryPool` (docs/heapa.md):

- every prompt is a record {problem, reward r (mean reward over its G rollouts, or an estimate),
  parent id, difficulty d, origin};
- scored records are split at the boundary, the `low_fraction` quantile of their rewards: the
  hard half in a max-heap `low` ([-r, seq, id]: its top is the hard item nearest the boundary),
  the easy half in the twin heaps `hmin` ([r, seq, id]) / `hmax` ([-r, seq, id]) with lazy
  deletion (an entry is live iff its record is in "high" with the same seq); unscored records
  wait in the FIFO `cold`. After each insert or pop a local rebalance moves at most
  `rebalance_moves` items across the boundary;
- `pool_sample(k)`: drain `cold` first; then (`medium_only`) pop the 2m items nearest the
  boundary, alternating high-min and low-max, keep m of them uniformly and push the rest back;
  `mixed_easy_medium` takes half of them from the easy top (high-max) instead. Sampled records
  leave the pool;
- `observe`: every sampled record goes to the archive with r = its group's mean reward (before
  any dynamic-sampling filter);
- eviction when full: a scored insert evicts the hardest low item, an unscored insert the
  easiest item;
- augmentation: an `Augmenter` writes one variant per sampled prompt with a self-reported
  difficulty d (clamped to [d_min, d_max]); its estimated reward from the parent's realised
  mean b is est = b / d if b >= 0 else b * d, clipped to [-1, 1]. A `Validator` checks each
  variant off the critical path (a thread pool); verdicts are applied at the start of step
  s + 1 in submission order, whatever thread finished first, so a resumed run (which recomputes
  the verdicts of jobs that were pending at the checkpoint) makes the same choices. Only
  variants judged "ok" are inserted (reward = est, parent set); the others are counted;
- controlled reinsertion: when the pool holds fewer than the k prompts a draw needs, the
  archive's rewards are re-estimated over the lineage DAG (`heapa_pool.refresh_estimates`: ChildAgg or
  PathAgg), the archive is shuffled and reinserted.

Pool states never hold numpy types: every number is a Python int / float, every key a str.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import time
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from rl_jax.algorithms.heapa_pool import (
    REFRESH_MODES, SAMPLING_MODES, child_estimate, new_record, pool_boundary, pool_init,
    pool_insert, pool_reinsert_archive, pool_rewards, pool_sample, pool_size,
    pool_record)
from rl_jax.data.prompt_sources import PROMPT_SOURCES, prompt_pool, stage_id
from rl_jax.registry import Registry

AUGMENTERS: Registry = Registry("heapa augmenter")
VALIDATORS: Registry = Registry("heapa validator")

VERDICTS = ("ok", "invalid", "unsolvable", "duplicate", "heldout")


# ---------------------------------------------------------------------------------------------
# Augmenter and Validator protocols.
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Variant:
  """A proposed variant of a parent prompt: payload (JSON: what the validator reads, e.g. the
  rewritten text) and the self-reported difficulty relative to the parent (1 = same)."""
  payload: Any
  difficulty: float = 1.0


@dataclasses.dataclass(frozen=True)
class Verdict:
  """status: one of VERDICTS; problem: the JSON payload `Augmenter.decode` turns into a problem
  (only for "ok")."""
  status: str
  problem: Any = None


class Augmenter(Protocol):
  """Writes variants of sampled prompts. `needs_policy`: True if `propose` uses the current
  params (then the RL stage passes them to the source's `observe`)."""
  needs_policy: bool

  def propose(self, parents: Sequence[Any], rng: np.random.Generator, *, params=None,
              key=None) -> tuple[list[Variant], dict]: ...

  def decode(self, problem: Any) -> Any: ...


class Validator(Protocol):
  """Checks one variant (thread-safe, deterministic: a pure function of the variant)."""

  def __call__(self, variant_payload: Any) -> Verdict: ...


@AUGMENTERS.register("none")
class NoAugmenter:
  """No augmentation: the pool only reorders the task's train prompts (the "heap" arm)."""
  needs_policy = False

  def __init__(self, *, ctx=None):
    del ctx

  def propose(self, parents, rng, *, params=None, key=None):
    return [], {}

  def decode(self, problem):
    raise ValueError("heapa: augmenter 'none' has no variants to decode")


@VALIDATORS.register("reject_all")
class RejectAll:
  """Judges every variant invalid (for tests and for measuring the validator's bookkeeping)."""

  def __init__(self, *, ctx=None):
    del ctx

  def __call__(self, variant_payload):
    return Verdict("invalid")


# ---------------------------------------------------------------------------------------------
# The prompt source.
# ---------------------------------------------------------------------------------------------

def _copy_state(state: dict) -> dict:
  """A copy of a source state deep enough that no later step mutates what an earlier state (for
  instance one being written by an asynchronous checkpoint) holds: records are copied one level
  deep (their payloads are never mutated); heap entries, jobs and ids are immutable once made,
  so their lists are copied shallowly. O(records) dict copies: far cheaper than a JSON round
  trip (every value entering the state is made JSON on entry: `_as_json`)."""
  pool = dict(state["pool"])
  pool["records"] = {k: dict(r) for k, r in pool["records"].items()}
  for name in ("low", "hmin", "hmax", "cold", "archive"):
    pool[name] = list(pool[name])
  pool["counts"] = dict(pool["counts"])
  return dict(state, pool=pool, pending=list(state["pending"]), last=list(state["last"]),
              metrics=dict(state["metrics"]))


def _as_json(value: Any) -> Any:
  """`value` as plain JSON values (lists, str keys, Python numbers); TypeError otherwise."""
  return json.loads(json.dumps(value))


class HeapaSource:
  """The HeaPA pool as a prompt source (protocol in `rl_jax.data.prompt_sources`).

  State: {"pool": pool dict, "step": the step of the last sample, "applied": last step whose
  start applied the verdicts, "pending": [[job id, submit step, parent id, payload, d], ...]
  (variants submitted to the validator, not yet applied), "next_job", "metrics": counters}.
  """

  def __init__(self, ctx, stage: str, *, max_pool_size: int, sampling_mode: str,
               low_fraction: float, rebalance_moves: int, refresh: str, path_temperature: float,
               refresh_mix: float, augmenter, validator, num_per_prompt: int,
               difficulty_range: tuple[float, float], validator_threads: int,
               histogram_bins: int, reward_range: tuple[float, float],
               augment_band: tuple[float, float] | None = None, pool_size: int = 0):
    self.problems = prompt_pool(ctx, stage, pool_size, f"{stage}.prompt_source")
    self.seed, self.stage_id = ctx.seed, stage_id(stage)
    self.max_pool_size, self.mode = max_pool_size, sampling_mode
    self.low_fraction, self.moves = low_fraction, rebalance_moves
    self.refresh, self.temperature, self.mix = refresh, path_temperature, refresh_mix
    self.augmenter, self.validator = augmenter, validator
    self.num_per_prompt, self.d_range = num_per_prompt, tuple(difficulty_range)
    self.bins, self.reward_range = histogram_bins, tuple(reward_range)
    self.augment_band = None if augment_band is None else tuple(augment_band)
    self.needs_policy = bool(getattr(augmenter, "needs_policy", False))
    self._executor = (concurrent.futures.ThreadPoolExecutor(validator_threads)
                      if validator_threads > 0 else None)
    self._futures: dict[int, concurrent.futures.Future] = {}
    self.last_time_s = 0.0

  def problem(self, rec: Mapping) -> Any:
    p = rec["p"]
    return self.problems[p] if rec["o"] == "seed" else self.augmenter.decode(p)

  def init_state(self) -> dict:
    pool = pool_init(self.max_pool_size, self.low_fraction, self.moves)
    # init_mode=uniform: every train prompt unscored, in a seeded random order (cold FIFO).
    order = np.random.default_rng([self.seed, self.stage_id]).permutation(len(self.problems))
    for i in order[:self.max_pool_size]:
      pool_insert(pool, new_record(pool, int(i)))
    return {"pool": pool, "step": -1, "applied": -1, "pending": [], "next_job": 0, "last": [],
            "metrics": {v: 0 for v in VERDICTS} | {"aug_tokens": 0, "proposed": 0,
                                                   "skipped_full": 0, "skipped_band": 0}}

  # -- validation off the critical path ---------------------------------------------------
  def _verdict(self, job_id: int, payload) -> Verdict:
    future = self._futures.pop(job_id, None)
    # After a resume the job's future is gone: recompute it (the validator is deterministic).
    return future.result() if future is not None else self.validator(payload)

  def _apply_verdicts(self, state: dict, step: int) -> None:
    """At the start of step `step`: applies every verdict of variants submitted before it, in
    submission order."""
    pool, kept = state["pool"], []
    for job in state["pending"]:
      job_id, submitted, parent, payload, difficulty, est = job
      if submitted >= step:
        kept.append(job)
        continue
      verdict = self._verdict(job_id, payload)
      if verdict.status not in VERDICTS:
        raise ValueError(f"heapa validator returned status {verdict.status!r}; expected one of "
                         f"{VERDICTS}")
      state["metrics"][verdict.status] += 1
      if verdict.status != "ok":
        continue
      rid = new_record(pool, _as_json(verdict.problem), reward=est, parent=parent,
                       difficulty=difficulty, origin="aug")
      pool_insert(pool, rid)
    state["pending"] = kept

  def sample(self, state, n, step, draw):
    t0 = time.perf_counter()
    state = _copy_state(state)
    if step > state["applied"]:
      self._apply_verdicts(state, step)
      state["applied"] = step
    pool = state["pool"]
    rng = np.random.default_rng([self.seed, self.stage_id, step, draw])
    if pool_size(pool) < n and pool["archive"]:
      pool_reinsert_archive(pool, rng, self.refresh, self.temperature, self.mix)
    if pool_size(pool) < n:
      raise ValueError(
          f"prompt source heapa: the pool holds {pool_size(pool)} prompts and the archive is "
          f"empty, fewer than prompts_per_step={n}: add train problems or lower prompts_per_step "
          f"(max_pool_size={self.max_pool_size})")
    picked = pool_sample(pool, n, rng, self.mode)
    state["step"], state["last"] = step, picked
    self.last_time_s += time.perf_counter() - t0
    return [self.problem(pool_record(pool, rid)) for rid in picked], state

  def observe(self, state, problems, rewards_B, group_size, *, params=None, key=None):
    t0 = time.perf_counter()
    state = _copy_state(state)
    pool = state["pool"]
    mean_N = np.asarray(rewards_B, np.float64).reshape(-1, group_size).mean(axis=1)
    if len(mean_N) != len(state["last"]):
      raise ValueError(f"prompt source heapa observe: {len(mean_N)} groups of rewards for "
                       f"{len(state['last'])} sampled prompts")
    for rid, mean in zip(state["last"], mean_N):
      rec = pool_record(pool, rid)
      rec["r"], rec["loc"], rec["visits"] = float(mean), "archive", rec["visits"] + 1
      pool["archive"].append(rid)
    if self.num_per_prompt and not isinstance(self.augmenter, NoAugmenter):
      self._augment(state, problems, mean_N, params, key)
    state["last"] = []
    self.last_time_s += time.perf_counter() - t0
    return state

  def _augment(self, state, problems, mean_N, params, key) -> None:
    pool, step = state["pool"], state["step"]
    room = pool["max_size"] - pool_size(pool) - len(state["pending"])
    lo, hi = self.augment_band if self.augment_band is not None else (-np.inf, np.inf)
    in_band = [lo < b < hi for b in mean_N]
    state["metrics"]["skipped_band"] += len(in_band) - int(sum(in_band))
    parents = [(rid, p, b) for rid, p, b, keep in zip(state["last"], problems, mean_N, in_band)
               if keep for _ in range(self.num_per_prompt)]
    state["metrics"]["skipped_full"] += max(0, len(parents) - max(room, 0))
    parents = parents[:max(room, 0)]  # the authors augment only while the pool has capacity
    if not parents:
      return
    rng = np.random.default_rng([self.seed, self.stage_id, step, 1 << 20, len(pool["archive"])])
    variants, info = self.augmenter.propose([p for _, p, _ in parents], rng, params=params,
                                            key=key)
    if len(variants) != len(parents):
      raise ValueError(f"heapa augmenter returned {len(variants)} variants for "
                       f"{len(parents)} prompts")
    state["metrics"]["aug_tokens"] += int(info.get("tokens", 0))
    state["metrics"]["proposed"] += len(variants)
    for (rid, _, b), v in zip(parents, variants):
      d = min(max(float(v.difficulty), self.d_range[0]), self.d_range[1])
      est = child_estimate(b, d, *self.d_range)
      job_id = state["next_job"]
      state["next_job"] += 1
      payload = _as_json(v.payload)
      state["pending"].append([job_id, step, rid, payload, d, est])
      if self._executor is not None:
        self._futures[job_id] = self._executor.submit(self.validator, payload)

  # -- metrics -------------------------------------------------------------------------------
  def metrics(self, state) -> dict[str, float]:
    """pool/* gauges and counters of the state after a step, plus time/source_s (the wall
    clock the source spent on the critical path this step)."""
    t0 = time.perf_counter()
    pool = state["pool"]
    rewards = pool_rewards(pool)
    lo, hi = self.reward_range
    hist, _ = np.histogram(np.clip(rewards, lo, hi), bins=self.bins, range=(lo, hi))
    frac = hist / max(len(rewards), 1)
    boundary = pool_boundary(pool)
    out = {"pool/size": pool_size(pool), "pool/cold": len(pool["cold"]),
           "pool/archive": len(pool["archive"]), "pool/pending": len(state["pending"]),
           "pool/boundary": float("nan") if boundary is None else boundary,
           "pool/evicted": pool["counts"]["evicted"],
           "pool/reinserted": pool["counts"]["reinserted"],
           "pool/aug_records": sum(r["o"] == "aug" for r in pool["records"].values()),
           **{f"pool/hist_{i:02d}": float(f) for i, f in enumerate(frac)},
           **{f"aug/{k}": v for k, v in state["metrics"].items()}}
    if boundary is None:
      del out["pool/boundary"]  # non-finite metrics stop the run
    out["time/source_s"] = self.last_time_s + time.perf_counter() - t0
    self.last_time_s = 0.0
    return {k: float(v) for k, v in out.items()}


@PROMPT_SOURCES.register("heapa")
def heapa_source(*, ctx, stage: str, max_pool_size: int = 4096,
                 sampling_mode: str = "medium_only", low_fraction: float = 0.5,
                 rebalance_moves: int = 4, refresh: str = "none", path_temperature: float = 1.0,
                 refresh_mix: float = 0.5, augmenter: Mapping | None = None,
                 validator: Mapping | None = None, num_per_prompt: int = 1,
                 difficulty_range: Sequence[float] = (0.75, 1.33), validator_threads: int = 1,
                 histogram_bins: int = 10, reward_range: Sequence[float] = (0.0, 1.0),
                 augment_band: Sequence[float] | None = None,
                 pool_size: int = 0) -> HeapaSource:
  """HeaPA pool (docs/heapa.md). The pool starts with every seed problem unscored in the cold
  FIFO, in a permutation seeded by [seed, stage] (the authors' init_mode=uniform; the first
  max_pool_size of them if there are more). Config keys:

  pool_size: the seed problems, 0 = task.train, N = N problems drawn once from the task's RL
    sampler (`rl_jax.data.prompt_sources.prompt_pool`);

  max_pool_size: most records in the pool (the archive is not counted); sampling_mode:
    "medium_only" (the k of 2k items nearest the boundary) | "mixed_easy_medium" (half from the
    easy top); low_fraction: boundary quantile (0.5 = median); rebalance_moves: most items moved
    across the boundary per operation (4);
  refresh: re-estimation at reinsertion, "none" | "child" (ChildAgg) | "path" (PathAgg);
    path_temperature: PathAgg softmax temperature T; refresh_mix: weight of the children's
    aggregate (0.5);
  augmenter: {"name": registered in AUGMENTERS, **kwargs} (default {"name": "none"});
    num_per_prompt: variants per sampled prompt (1); difficulty_range: clamp of the reported
    difficulty [0.75, 1.33]; augment_band: (lo, hi) = augment only prompts whose group-mean
    reward b has lo < b < hi (the authors' slime port: (0.1, 0.7)); None = every drawn prompt
    (their verl recipe);
  validator: {"name": registered in VALIDATORS, **kwargs} (default "reject_all" only when there
    is no augmenter; a project registers its exact checker); validator_threads: worker threads
    (0 = validate synchronously when the verdict is applied);
  histogram_bins / reward_range: the pool/hist_* metrics (fraction of scored pool records per
    reward bin).
  """
  where = f"{stage}.prompt_source"
  if sampling_mode not in SAMPLING_MODES:
    raise ValueError(f"config {where}.sampling_mode must be one of {SAMPLING_MODES}, got "
                     f"{sampling_mode!r}")
  if refresh not in REFRESH_MODES:
    raise ValueError(f"config {where}.refresh must be one of {REFRESH_MODES}, got {refresh!r}")
  if path_temperature <= 0:
    raise ValueError(f"config {where}.path_temperature must be > 0, got {path_temperature}")
  if len(difficulty_range) != 2 or not 0 < difficulty_range[0] <= difficulty_range[1]:
    raise ValueError(f"config {where}.difficulty_range must be (lo, hi) with 0 < lo <= hi, got "
                     f"{difficulty_range!r}")
  if augment_band is not None and (len(augment_band) != 2 or augment_band[0] >= augment_band[1]):
    raise ValueError(f"config {where}.augment_band must be None or (lo, hi) with lo < hi, got "
                     f"{augment_band!r}")
  if num_per_prompt < 0:
    raise ValueError(f"config {where}.num_per_prompt must be >= 0, got {num_per_prompt}")
  prompts_per_step = ctx.exp.rl.prompts_per_step if hasattr(ctx, "exp") else 0
  if max_pool_size < prompts_per_step:
    raise ValueError(f"config {where}.max_pool_size={max_pool_size} is smaller than "
                     f"rl.prompts_per_step={prompts_per_step}: a draw could never be filled")
  aug = AUGMENTERS.build(augmenter or {"name": "none"}, f"{where}.augmenter", ctx=ctx)
  if validator is None and not isinstance(aug, NoAugmenter):
    raise ValueError(f"config {where}.validator is required with augmenter "
                     f"{dict(augmenter)['name']!r} (registered: {VALIDATORS.names()})")
  val = VALIDATORS.build(validator or {"name": "reject_all"}, f"{where}.validator", ctx=ctx)
  return HeapaSource(ctx, stage, max_pool_size=max_pool_size, sampling_mode=sampling_mode,
                     low_fraction=low_fraction, rebalance_moves=rebalance_moves, refresh=refresh,
                     path_temperature=path_temperature, refresh_mix=refresh_mix, augmenter=aug,
                     validator=val, num_per_prompt=num_per_prompt,
                     difficulty_range=tuple(difficulty_range),
                     validator_threads=validator_threads, histogram_bins=histogram_bins,
                     reward_range=tuple(reward_range),
                     augment_band=None if augment_band is None else tuple(augment_band),
                     pool_size=pool_size)
