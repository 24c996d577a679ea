"""Evaluation of Translate-R1 policies: per-tier reward, translate rate, normalised cost, the
cost-sensitivity sweep (Pareto share, cost-to-match), and the loop's eval hook
(docs/translate_r1.md).

Groups of languages ("tiers" in the tables): base, high, low, xlow (the trained tiers),
unseen (synthetic ciphers, 0 exposure) and heldout (zero-shot ciphers, 0 exposure).

For a policy P evaluated greedily on the same items as always-translate:
  R(P) = tier-balanced mean reward over the trained tiers (mean of the base/high/low/xlow means),
  C(P) = tier-balanced mean cost / the same for always-translate (1 = translate everything).
The Pareto share of the gated family is `pareto.family_pareto_share` over alpha in
[0, alpha_max] with ties split; the families are the gated sweep over lambda, the ungated sweep,
and the SFT / always-translate / never-translate policies, each on its own.
`bootstrap_pareto_share` resamples the evaluation items (paired across policies) to show how
much of that share the items decide.

The eval hook "translate_r1" (`config.eval.evaluator`): every `eval.every` RL steps the greedy
translate rate per language on a small tracking set ("track/<lang>"); at the end of a stage the
greedy episodes of the evaluation items as records (<workdir>/eval/<stage>.json) for RL stages
and for the stage named `baselines_after` (the SFT policy), which is also evaluated with the
call forced (always-translate) and forbidden (never-translate).
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from rl_jax.eval import batches, pareto
from rl_jax.eval.hooks import EVALUATORS
from rl_jax.projects.translate_r1.world import ANSWER_OPEN, Item
from rl_jax.rewards.scorers import SCORERS
from rl_jax.sampling.rollouts import ROLLOUTS
from rl_jax.types import SampleKnobs

TRAINED_TIERS = ("base", "high", "low", "xlow")
GROUPS = TRAINED_TIERS + ("unseen", "heldout")
GREEDY = SampleKnobs.create(temperature=0.0)


def group_of(item: Item) -> str:
  return "heldout" if item.split == "heldout" else item.tier


def lang_groups(world) -> dict[str, str]:
  """Language name -> group (its tier, or "heldout")."""
  return {n: "heldout" if l.split == "heldout" else l.tier for n, l in world.languages.items()}


def eval_items(world, n_per_lang: int, seed: int, domains: Sequence[str], *,
               min_per_group: int = 0) -> list[Item]:
  """`n_per_lang` items for every language (all splits), `domains` cycled evenly per language.

  A group with few languages gets more items per language, at least `min_per_group` in all
  (base has one language: without this, a quarter of the tier-balanced R rests on 10 items).
  """
  groups = lang_groups(world)
  n_langs = collections.Counter(groups.values())
  items = []
  for i, lang in enumerate(world.names()):
    n = max(n_per_lang, -(-min_per_group // n_langs[groups[lang]]))
    items += world.sample_items(n, np.random.default_rng([seed, 7, i]), langs=[lang],
                                domains=list(domains))
  return items


def evaluate(rollout, scorer, params, items: Sequence[Item], key: jax.Array, *,
             batch_size: int, forced_prefix: str = "") -> list[dict[str, Any]]:
  """Greedy episodes, one per item, in fixed-size chunks (the last is padded with copies)."""
  records = []
  for chunk, padded, out in batches.rollout_chunks(rollout, params, items, key, GREEDY,
                                                   batch_size, forced_prefix=forced_prefix):
    scores = scorer(padded, out)
    ex = scores.extras
    for i, it in enumerate(chunk):
      records.append(dict(lang=it.lang, group=group_of(it), domain=it.domain,
                          reward=float(scores.reward_B[i]), correct=float(ex["correct"][i]),
                          cost=float(ex["tool/cost"][i]), translated=float(ex["tool/used"][i]),
                          malformed=float(ex["tool/malformed"][i])))
  return records


@EVALUATORS.register("translate_r1")
def translate_r1_evaluator(*, ctx, items_per_lang: int = 10, min_items_per_group: int = 60,
                           track_items_per_lang: int = 3, baselines_after: str = "sft"):
  """The loop's eval hook (module docstring). Items come from the task's world with the run's
  seed (`eval_items`); the call prefix of always-translate is the task's `CALL_TEXT`."""
  from rl_jax.projects.translate_r1.task import CALL_TEXT  # pylint: disable=g-import-not-at-top
  world = ctx.task.tool_env.translator.world
  domains = tuple(ctx.exp.task.get("domains", world_domains()))
  items = eval_items(world, items_per_lang, ctx.seed, domains,
                     min_per_group=min_items_per_group)
  track = eval_items(world, track_items_per_lang, ctx.seed + 1000, domains)
  section = dataclasses.replace(ctx.exp.rl, group_size=1, rollout=dataclasses.replace(
      ctx.exp.rl.rollout, native_rows=0))
  rollout = ROLLOUTS.get("tool")(ctx=ctx, section=section)
  scorer = SCORERS.build(dict(ctx.exp.rl.scorer), "rl.scorer", ctx=ctx, section=section)
  batch_size = ctx.exp.eval.batch_size

  def hook(params, key, *, stage: str = "", kind: str = "", step: int = 0,
           final: bool = False):
    recs = evaluate(rollout, scorer, params, track, key, batch_size=batch_size)
    metrics = {f"track/{lang}": v
               for lang, v in summarize(recs, 1.0)["per_lang_translate"].items()}
    if not final or (kind != "rl" and stage != baselines_after):
      return metrics, None  # the policies of the report: the baselines' stage and RL
    records = {stage: evaluate(rollout, scorer, params, items, key, batch_size=batch_size)}
    if stage == baselines_after:
      records["always"] = evaluate(rollout, scorer, params, items, key, batch_size=batch_size,
                                   forced_prefix=CALL_TEXT)
      records["never"] = evaluate(rollout, scorer, params, items, key, batch_size=batch_size,
                                  forced_prefix=ANSWER_OPEN)
    s = summarize(records[stage], 1.0)
    metrics.update({"eval/R": s["R"], **{f"eval/{g}_reward": s[g]["reward"] for g in GROUPS},
                    **{f"eval/{g}_translated": s[g]["translated"] for g in GROUPS}})
    return metrics, records

  return hook


def world_domains() -> tuple[str, ...]:
  from rl_jax.projects.translate_r1.domains import DOMAINS  # pylint: disable=g-import-not-at-top
  return DOMAINS


def mean_or_nan(values) -> float:
  return float(np.mean(values)) if len(values) else float("nan")


def summarize(records: Sequence[Mapping[str, Any]], always_cost: float) -> dict[str, Any]:
  """Per-group reward / translate rate / cost and the tier-balanced (R, C)
  (docs/translate_r1.md)."""
  if not always_cost > 0:
    raise ValueError(f"summarize: always-translate cost must be > 0, got {always_cost}")
  out: dict[str, Any] = {}
  for g in GROUPS:
    rows = [r for r in records if r["group"] == g]
    out[g] = {k: mean_or_nan([r[k] for r in rows]) for k in ("reward", "translated", "cost",
                                                        "malformed")}
  out["R"] = mean_or_nan([out[g]["reward"] for g in TRAINED_TIERS])
  out["C"] = mean_or_nan([out[g]["cost"] for g in TRAINED_TIERS]) / always_cost
  out["per_domain"] = {}  # tool-use emergence per domain (trained tiers only)
  for r in records:
    if r["group"] in TRAINED_TIERS:
      out["per_domain"].setdefault(r["domain"], []).append((r["reward"], r["translated"]))
  out["per_domain"] = {d: {"reward": mean_or_nan([v[0] for v in rows]),
                           "translated": mean_or_nan([v[1] for v in rows])}
                       for d, rows in out["per_domain"].items()}
  out["per_lang_translate"] = {}
  for r in records:
    out["per_lang_translate"].setdefault(r["lang"], []).append(r["translated"])
  out["per_lang_translate"] = {k: mean_or_nan(v) for k, v in out["per_lang_translate"].items()}
  return out


def sweep(summaries: Mapping[str, Mapping[str, Any]], families: Mapping[str, str],
          lams: Mapping[str, float], *, alpha_max: float, n_alpha: int,
          target_family: str = "gated", baseline: str = "always") -> dict[str, Any]:
  """Pareto shares (overall and per trained tier) and cost-to-match of the gated family."""
  names = list(summaries)
  fams = [families[n] for n in names]
  result: dict[str, Any] = {}
  always_cost = {g: summaries[baseline][g]["cost"] for g in TRAINED_TIERS}

  def rc(name, group=None):
    s = summaries[name]
    if group is None:
      return s["R"], s["C"]
    norm = always_cost[group] if always_cost[group] > 0 else 1.0
    return s[group]["reward"], s[group]["cost"] / norm

  for group in (None,) + TRAINED_TIERS:
    r, c = zip(*(rc(n, group) for n in names))
    key = "all" if group is None else group
    shares = {f: pareto.family_pareto_share(r, c, fams, f, alpha_max=alpha_max, n_alpha=n_alpha)
              for f in dict.fromkeys(fams)}
    result[f"pareto_share/{key}"] = shares
  gated = [n for n in names if families[n] == target_family]
  if gated:
    g_r = [summaries[n]["R"] for n in gated]
    g_c = [summaries[n]["C"] for n in gated]
    result["cost_to_match_always"] = pareto.cost_to_match(
        [lams[n] for n in gated], g_r, g_c, summaries[baseline]["R"])
  return result


def bootstrap_pareto_share(item_scores: Mapping[str, Any], families: Mapping[str, str], *,
                           alpha_max: float, n_alpha: int = 1001, n_boot: int = 1000,
                           seed: int = 0, target_family: str = "gated",
                           baseline: str = "always", goal: float = 0.8) -> dict[str, float]:
  """Paired bootstrap of the target family's Pareto share over the evaluation items.

  Every policy was evaluated on the same items (`item_scores`: "group" per item and, per
  policy, "reward" and "cost" per item: `results.json["item_scores"]`). Each resample draws the
  items of every trained tier with replacement (the same draw for every policy, so policies are
  compared on the same items) and recomputes R, C (as `summarize`: tier-balanced, C relative to
  `baseline`) and the family Pareto share over alpha in [0, alpha_max]. Returns the share on the
  items themselves ("point"), the median and the 5% / 95% quantiles over `n_boot` resamples and
  the fraction of resamples with share >= `goal`. A share whose interval spans most of [0, 1]
  is decided by a few items, not by the policies.
  """
  names = [n for n in item_scores["policies"] if n in families]
  if target_family not in {families[n] for n in names} or baseline not in names:
    raise ValueError(f"bootstrap_pareto_share: item_scores needs policies of family "
                     f"{target_family!r} and the baseline {baseline!r}, got {names}")
  group_I = np.asarray(item_scores["group"])
  for n in names:
    lengths = {k: len(item_scores["policies"][n][k]) for k in ("reward", "cost")}
    if set(lengths.values()) != {group_I.size}:
      raise ValueError(f"bootstrap_pareto_share: every policy needs one reward and one cost per "
                       f"item ({group_I.size} items); policy {n!r} has {lengths}")
  reward_PxI = np.asarray([item_scores["policies"][n]["reward"] for n in names], np.float64)
  cost_PxI = np.asarray([item_scores["policies"][n]["cost"] for n in names], np.float64)
  tier_items = [np.flatnonzero(group_I == t) for t in TRAINED_TIERS]
  if any(ix.size == 0 for ix in tier_items):
    raise ValueError(f"bootstrap_pareto_share: every trained tier {TRAINED_TIERS} needs items")
  fams = [families[n] for n in names]
  base_ix = names.index(baseline)

  def share(draws):
    r_P = np.mean([reward_PxI[:, ix].mean(axis=1) for ix in draws], axis=0)
    c_P = np.mean([cost_PxI[:, ix].mean(axis=1) for ix in draws], axis=0)
    if not c_P[base_ix] > 0:
      raise ValueError(f"bootstrap_pareto_share: the baseline {baseline!r} has cost 0 on the "
                       f"drawn items; C is relative to its cost")
    return pareto.family_pareto_share(r_P, c_P / c_P[base_ix], fams, target_family,
                                      alpha_max=alpha_max, n_alpha=n_alpha)

  rng = np.random.default_rng(seed)
  shares = np.asarray([share([rng.choice(ix, ix.size) for ix in tier_items])
                       for _ in range(n_boot)])
  lo, median, hi = np.quantile(shares, [0.05, 0.5, 0.95])
  return {"point": share(tier_items), "median": float(median), "lo": float(lo),
          "hi": float(hi), "p_goal": float((shares >= goal).mean()), "goal": goal,
          "n_boot": n_boot}


