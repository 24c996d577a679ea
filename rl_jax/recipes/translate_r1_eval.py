"""Evaluation of Translate-R1 policies: per-tier reward, translate rate, normalised cost, the
cost-sensitivity sweep (Pareto share, cost-to-match) and the Pareto-front plot (SPEC §1(a) 8).

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
"""
from __future__ import annotations

import collections
import math
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from rl_jax.envs.cipher import Item
from rl_jax.eval import pareto
from rl_jax.sampling.tool_loop import tool_rollout
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


def score_episodes(env, tool_out) -> dict[str, np.ndarray]:
  """Per-row base reward, correct, cost, translated, malformed (numpy [B])."""
  scores = [env.score(t, e) for t, e in zip(tool_out.transcripts, tool_out.episodes)]
  return {
      "reward": np.asarray([s.reward for s in scores], np.float32),
      "correct": np.asarray([s.correct for s in scores], np.float32),
      "cost": np.asarray([s.cost for s in scores], np.float32),
      "translated": np.asarray([s.translated for s in scores], np.float32),
      "malformed": np.asarray([s.malformed for s in scores], np.float32),
  }


def attempted_call(scores: Mapping[str, np.ndarray]) -> np.ndarray:
  """1 where the rollout tried the tool (a translation or a malformed call), else 0: the
  complement is the gate's native evidence. A malformed call is a failed tool attempt, not a
  wrong native answer; counted as native, it drags p_native of a tool-using policy below tau
  and closes the gate on every tier (docs/translate_r1.md §5)."""
  return np.maximum(scores["translated"], scores["malformed"]).astype(np.float32)


def evaluate(ctx, params, items: Sequence[Item], key: jax.Array, *, batch_size: int,
             forced_prefix: str = "") -> list[dict[str, Any]]:
  """Greedy episodes, one per item, in fixed-size chunks (the last is padded with copies)."""
  records = []
  for start in range(0, len(items), batch_size):
    chunk = list(items[start:start + batch_size])
    padded = chunk + [chunk[-1]] * (batch_size - len(chunk))
    out = tool_rollout(params, padded, [it.text for it in padded], ctx.env, ctx.tokenizer,
                       jax.random.fold_in(key, start), GREEDY, model_cfg=ctx.model_cfg,
                       cfg=ctx.loop_cfg, forced_prefix=forced_prefix)
    scores = score_episodes(ctx.env, out)
    for i, it in enumerate(chunk):
      records.append(dict(lang=it.lang, group=group_of(it), domain=it.domain,
                          **{k: float(v[i]) for k, v in scores.items()}))
  return records


def _mean(values) -> float:
  return float(np.mean(values)) if len(values) else float("nan")


def summarize(records: Sequence[Mapping[str, Any]], always_cost: float) -> dict[str, Any]:
  """Per-group reward / translate rate / cost and the tier-balanced (R, C) of SPEC §1(a) 8."""
  if not always_cost > 0:
    raise ValueError(f"summarize: always-translate cost must be > 0, got {always_cost}")
  out: dict[str, Any] = {}
  for g in GROUPS:
    rows = [r for r in records if r["group"] == g]
    out[g] = {k: _mean([r[k] for r in rows]) for k in ("reward", "translated", "cost",
                                                        "malformed")}
  out["R"] = _mean([out[g]["reward"] for g in TRAINED_TIERS])
  out["C"] = _mean([out[g]["cost"] for g in TRAINED_TIERS]) / always_cost
  out["per_domain"] = {}  # tool-use emergence per domain (trained tiers only)
  for r in records:
    if r["group"] in TRAINED_TIERS:
      out["per_domain"].setdefault(r["domain"], []).append((r["reward"], r["translated"]))
  out["per_domain"] = {d: {"reward": _mean([v[0] for v in rows]),
                           "translated": _mean([v[1] for v in rows])}
                       for d, rows in out["per_domain"].items()}
  out["per_lang_translate"] = {}
  for r in records:
    out["per_lang_translate"].setdefault(r["lang"], []).append(r["translated"])
  out["per_lang_translate"] = {k: _mean(v) for k, v in out["per_lang_translate"].items()}
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


def plot(summaries: Mapping[str, Mapping[str, Any]], families: Mapping[str, str], path: str,
         title: str) -> str:
  points: dict[str, list] = {}
  for name, s in summaries.items():
    points.setdefault(families[name], []).append((s["C"], s["R"]))
  return pareto.plot_pareto(points, path, title=title)


def fmt(x: float) -> str:
  return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def markdown_tables(summaries: Mapping[str, Mapping[str, Any]], sweep_result: Mapping[str, Any]
                    ) -> str:
  """Reward and translate-rate tables per group, plus the sweep numbers."""
  lines = ["| policy | R | C | " + " | ".join(GROUPS) + " |",
           "|---|---|---|" + "---|" * len(GROUPS)]
  for name, s in summaries.items():
    lines.append(f"| {name} | {fmt(s['R'])} | {fmt(s['C'])} | "
                 + " | ".join(fmt(s[g]["reward"]) for g in GROUPS) + " |")
  lines += ["", "Translate rate per group:", "",
            "| policy | " + " | ".join(GROUPS) + " |", "|---|" + "---|" * len(GROUPS)]
  for name, s in summaries.items():
    lines.append(f"| {name} | " + " | ".join(fmt(s[g]["translated"]) for g in GROUPS) + " |")
  domains = sorted({d for s in summaries.values() for d in s.get("per_domain", {})})
  if domains:
    lines += ["", "Per domain over the trained tiers (reward / translate rate):", "",
              "| policy | " + " | ".join(domains) + " |", "|---|" + "---|" * len(domains)]
    for name, s in summaries.items():
      cells = [s["per_domain"].get(d, {}) for d in domains]
      lines.append(f"| {name} | " + " | ".join(
          f"{fmt(c.get('reward'))} / {fmt(c.get('translated'))}" for c in cells) + " |")
  lines += ["", "Pareto share (ties split) per family:", ""]
  for key, shares in sweep_result.items():
    if key.startswith("pareto_share/"):
      lines.append(f"- {key.split('/')[1]}: "
                   + ", ".join(f"{f} {fmt(v)}" for f, v in shares.items()))
  if "cost_to_match_always" in sweep_result:
    lines.append(f"- gated cost-to-match always-translate: "
                 f"{fmt(sweep_result['cost_to_match_always'])}")
  return "\n".join(lines) + "\n"


def seed_table(results: Sequence[Mapping[str, Any]]) -> str:
  """Mean +- std over seeds of R, C, per-group reward / translate rate, the gated family's Pareto
  share and cost-to-match (`results`: the results.json of runs that differ only in seed)."""
  def ms(values):
    v = np.asarray(values, np.float64)
    return f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}" if v.size > 1 else f"{v[0]:.3f}"

  names = list(results[0]["summaries"])
  cols = ["R", "C"] + [f"{g} R" for g in GROUPS] + [f"{g} tr" for g in ("xlow", "unseen",
                                                                        "heldout")]
  lines = [f"{len(results)} seed(s): mean ± std", "", "| policy | " + " | ".join(cols) + " |",
           "|---|" + "---|" * len(cols)]
  for name in names:
    s = [r["summaries"][name] for r in results]
    row = [ms([x["R"] for x in s]), ms([x["C"] for x in s])]
    row += [ms([x[g]["reward"] for x in s]) for g in GROUPS]
    row += [ms([x[g]["translated"] for x in s]) for g in ("xlow", "unseen", "heldout")]
    lines.append(f"| {name} | " + " | ".join(row) + " |")
  lines.append("")
  for key in results[0]["sweep"]:
    if key.startswith("pareto_share/"):
      lines.append(f"- Pareto share of the gated family ({key.split('/')[1]}): "
                   + ms([r["sweep"][key].get("gated", np.nan) for r in results]))
  if "cost_to_match_always" in results[0]["sweep"]:
    lines.append("- gated cost-to-match always-translate (NaN: never reached): "
                 + ms([r["sweep"]["cost_to_match_always"] for r in results]))
  for k, r in enumerate(results):
    if "item_scores" in r:  # runs written before the per-item scores were kept have none
      # The run's own alpha grid, so the point share is the sweep's (1001: the config default,
      # for results.json files written before the grid size was recorded).
      b = bootstrap_pareto_share(r["item_scores"], r["families"], alpha_max=r["alpha_max"],
                                 n_alpha=r.get("n_alpha", 1001))
      lines.append(f"- run {k}: gated Pareto share {b['point']:.3f}, paired bootstrap over the "
                   f"items ({b['n_boot']} resamples): median {b['median']:.3f}, 90% interval "
                   f"[{b['lo']:.3f}, {b['hi']:.3f}], share >= {b['goal']:g} in "
                   f"{b['p_goal']:.0%} of resamples")
  return "\n".join(lines) + "\n"


def tracking_table(tracking: Mapping[str, Sequence[Mapping[str, float]]],
                   lang_group: Mapping[str, str]) -> str:
  """Greedy translate rate over RL steps, averaged per language group, for every policy."""
  lines = ["| policy | step | " + " | ".join(GROUPS) + " |", "|---|---|" + "---|" * len(GROUPS)]
  for name, rows in tracking.items():
    for row in rows:
      by_group = {g: [v for k, v in row.items() if k != "step" and lang_group.get(k) == g]
                  for g in GROUPS}
      lines.append(f"| {name} | {int(row['step'])} | "
                   + " | ".join(fmt(_mean(by_group[g])) for g in GROUPS) + " |")
  return "\n".join(lines) + "\n"


def training_rate_table(metrics_by_policy: Mapping[str, Sequence[Mapping[str, float]]], *,
                        first: int = 5, last: int = 20) -> str:
  """Sampled translate rate per trained tier in the RL rollouts (temperature 1), mean of the
  first `first` and of the last `last` steps, and the mean gate: the over-suppression view
  (`metrics_by_policy`: each policy's rows of its metrics.jsonl)."""
  tiers = ("base", "high", "low", "xlow")
  lines = ["| policy | " + " | ".join(f"{t} first→last" for t in tiers) + " | gate open |",
           "|---|" + "---|" * (len(tiers) + 1)]

  def window(rows, key, sl):
    return _mean([r[key] for r in rows[sl] if key in r])

  for name, rows in metrics_by_policy.items():
    head, tail = slice(0, first), slice(max(len(rows) - last, 0), None)
    cells = [f"{fmt(window(rows, f'tool/translate_rate_{t}', head))} → "
             f"{fmt(window(rows, f'tool/translate_rate_{t}', tail))}" for t in tiers]
    gate = f"{fmt(window(rows, 'gate/mean', head))} → {fmt(window(rows, 'gate/mean', tail))}"
    lines.append(f"| {name} | " + " | ".join(cells) + f" | {gate} |")
  return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
  """`python -m rl_jax.recipes.translate_r1_eval WORKDIR [WORKDIR ...]`: the seed table."""
  import json  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  paths = list(sys.argv[1:] if argv is None else argv)
  if not paths:
    raise ValueError("usage: python -m rl_jax.recipes.translate_r1_eval WORKDIR [WORKDIR ...]")
  results = []
  for p in paths:
    with open(f"{p}/results.json", encoding="utf-8") as f:
      results.append(json.load(f))
  print(seed_table(results))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
