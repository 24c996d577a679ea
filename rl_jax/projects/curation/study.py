"""The curation study (seed S2; arXiv 2606.07778; docs/curation.md): the annotation evaluator and
the two-pass filter search report, both parts of the one loop.

evaluator "curation_annotation" (end of the run's `pretrain` stage, on the LM it trained on the
whole corpus, which is then frozen as the `Embedder`):
  1. the oracle teacher (`OracleAnnotator`, label noise) labels `num_teach` documents;
  2. the multi-task MLP is fitted on their embeddings; the transformer classifier (the same
     Qwen3 fine-tuned with the heads) on their text;
  3. both label `num_heldout` other documents: Cohen's kappa against the teacher and against the
     latent truth; documents per second of the MLP head (on embeddings), of embedder + MLP and
     of the classifier, measured in the same process one after the other;
  4. the NMI matrix of the teacher's labels over the whole corpus;
  5. the MLP labels every document: `<workdir>/curation/labels.npz` (what the filters read).

report "curation_study" (after the run): the two-pass filter search (SPEC §2(a) steps 6-8).
Every proxy LM is a pretrain-only run of the one loop (`rl_jax.loop.run`, task
"curation_corpus" with the arm's tier and `FilterSpec`, evaluator "curation_probes"), in
`<workdir>/arms/steps<budget>/<arm>/` (a finished arm's summary.json is reused, on a rerun
and where pass 2 repeats a pass-1 arm at the same budget):
  pass 1: the unfiltered target tier and each single filter at `pass1_steps`; gain of an arm =
    mean over probes of (acc - acc_unfiltered) / acc_unfiltered;
  pass 2: the AND and OR of each pair of the top_k singles whose retained share of the target
    tier is >= rho_min, with the baselines (the unfiltered target tier, each of `baselines`
    on it, the unfiltered reference tier) at `pass2_steps`; the best compound by gain is
    selected. Also: how many planted pages of the target tier each filter keeps.
Writes results.json, report.md, nmi.png, probes.png, pass1.png in the workdir.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.eval import figures
from rl_jax.eval.hooks import EVALUATORS, REPORTS
from rl_jax.projects.curation import annotation as ann
from rl_jax.projects.curation import corpus as corpus_lib
from rl_jax.projects.curation import filters as filters_lib
from rl_jax.projects.curation.probes import PROBES
from rl_jax.projects.curation.task import selection, teacher_labels, world

DIMS = list(corpus_lib.LABEL_DIMS)
NUM_CLASSES = list(corpus_lib.LABEL_DIMS.values())


def stack(labels: Mapping[str, np.ndarray]) -> np.ndarray:
  return np.stack([np.asarray(labels[d]) for d in DIMS], -1)


def unstack(labels_NxK: np.ndarray) -> dict[str, np.ndarray]:
  return {d: np.asarray(labels_NxK[:, k]) for k, d in enumerate(DIMS)}


@EVALUATORS.register("curation_annotation")
def annotation_evaluator(*, ctx, noise: float = 0.1, num_teach: int = 4000,
                         num_heldout: int = 2000, throughput_docs: int = 2048,
                         batch_size: int = 256, mlp: Mapping[str, Any] | None = None,
                         classifier: Mapping[str, Any] | None = None):
  """The annotation study (module docstring) at the end of the stage: noise, the teacher's
  label noise; num_teach / num_heldout, documents the heads are trained / scored on (drawn
  without overlap from the corpus); throughput_docs, documents timed per labeller;
  batch_size, documents per labelling batch; mlp / classifier: `HeadCfg` / `ClassifierCfg`."""
  head_cfg, clf_cfg = ann.HeadCfg(**dict(mlp or {})), ann.ClassifierCfg(**dict(classifier or {}))
  corpus, ids_NxT = world(ctx.seed, ctx.exp.task.get("corpus"))
  n = len(corpus)
  if num_teach + num_heldout > n:
    raise ValueError(f"config eval.evaluator: num_teach + num_heldout = "
                     f"{num_teach + num_heldout} > the corpus's {n} documents")

  def evaluate(params, key, *, stage: str = "", kind: str = "", step: int = 0,
               final: bool = False):
    # On the host's default device: the study times single-device labelling, not the mesh.
    params = jax.tree.map(jnp.asarray, jax.device_get(params))
    rng = np.random.default_rng([ctx.seed, 7])
    order = rng.permutation(n)
    teach, held = order[:num_teach], order[num_teach:num_teach + num_heldout]
    teacher = teacher_labels(corpus, noise, ctx.seed)
    teacher_NxK = stack(teacher)
    embedder = ann.LMEmbedder(params, ctx.model_cfg, ctx.tokenizer, batch_size)
    emb = embedder.embed_ids(ids_NxT)
    head, head_losses = ann.train_mlp(emb[teach], teacher_NxK[teach], NUM_CLASSES, head_cfg,
                                      ctx.seed)
    mlp_fn = ann.mlp_predictor(head, NUM_CLASSES)
    mlp_all = unstack(ann.batched(mlp_fn, (emb,), batch_size))
    clf_params, clf_losses = ann.train_classifier(params, ctx.model_cfg, ids_NxT[teach],
                                                  teacher_NxK[teach], NUM_CLASSES, clf_cfg,
                                                  ctx.seed)
    clf_fn = ann.classifier_predictor(clf_params, ctx.model_cfg, NUM_CLASSES)
    clf_held = unstack(ann.batched(clf_fn, (ids_NxT[held],), batch_size))
    held_of = lambda lab: {d: np.asarray(v)[held] for d, v in lab.items()}
    mlp_held = held_of(mlp_all)
    kappa = {"mlp_vs_teacher": ann.kappas(mlp_held, held_of(teacher)),
             "classifier_vs_teacher": ann.kappas(clf_held, held_of(teacher)),
             "mlp_vs_truth": ann.kappas(mlp_held, held_of(corpus.labels)),
             "classifier_vs_truth": ann.kappas(clf_held, held_of(corpus.labels)),
             "teacher_vs_truth": ann.kappas(held_of(teacher), held_of(corpus.labels))}
    timed = ids_NxT[:throughput_docs]
    emb_timed = emb[:throughput_docs]
    embed_then_mlp = lambda t: mlp_fn(embedder.embed_batch(t))
    speed = {"mlp_head": ann.docs_per_second(mlp_fn, emb_timed, batch_size),
             "embedder_plus_mlp": ann.docs_per_second(embed_then_mlp, timed, batch_size),
             "transformer_classifier": ann.docs_per_second(clf_fn, timed, batch_size)}
    dims, nmi = ann.nmi_matrix(teacher)
    _, nmi_truth = ann.nmi_matrix(corpus.labels)
    out_dir = os.path.join(ctx.workdir, "curation")
    os.makedirs(out_dir, exist_ok=True)
    np.savez(os.path.join(out_dir, "labels.npz"),
             **{f"mlp/{d}": v for d, v in mlp_all.items()},
             **{f"teacher/{d}": v for d, v in teacher.items()})
    new_dims = [dims.index("timeliness"), dims.index("cultural")]
    off = [nmi[i, j] for i in new_dims for j in range(len(dims)) if j != i]
    records = {"kappa": kappa, "docs_per_second": speed, "nmi": {"dims": dims,
                                                                 "teacher": nmi.tolist(),
                                                                 "truth": nmi_truth.tolist()},
               "mlp_loss": [head_losses[0], head_losses[-1]],
               "classifier_loss": clf_losses[:1] + clf_losses[-1:],
               "embedder": embedder.identity, "num_teach": num_teach,
               "num_heldout": num_heldout, "throughput_docs": int(len(timed)),
               "batch_size": batch_size}
    metrics = {"eval/kappa_mlp": float(np.mean(list(kappa["mlp_vs_teacher"].values()))),
               "eval/kappa_classifier": float(np.mean(list(
                   kappa["classifier_vs_teacher"].values()))),
               "eval/kappa_teacher_truth": float(np.mean(list(
                   kappa["teacher_vs_truth"].values()))),
               "eval/mlp_docs_per_s": speed["mlp_head"],
               "eval/embed_mlp_docs_per_s": speed["embedder_plus_mlp"],
               "eval/classifier_docs_per_s": speed["transformer_classifier"],
               "eval/nmi_new_dims_max": float(max(off)),
               "eval/mlp_loss_last": head_losses[-1]}
    if clf_losses:  # classifier.steps = 0 times an untrained head (the CI shrink)
      metrics["eval/classifier_loss_last"] = clf_losses[-1]
    return metrics, records

  return evaluate


# ---------------------------------------------------------------------------------------------
# The two-pass filter search.

ARM_KEYS = ("seed", "imports", "tokenizer", "task", "prompt_len", "max_new_tokens",
            "logprob_impl", "model", "mesh")


def arm_config(base: Mapping[str, Any], *, tier: str, filter_spec, labels_path: str,
               steps: int, probes: Mapping[str, Any]) -> dict[str, Any]:
  """A pretrain-only run of the one loop: the study run's task, model and pretrain section,
  one tier and filter, `steps` steps, the probe suite at the end."""
  cfg = {k: base[k] for k in ARM_KEYS if k in base}
  cfg["task"] = {**dict(base["task"]), "tier": tier, "filter": filter_spec, "labels": "mlp",
                 "labels_path": labels_path}
  cfg["stages"] = ("pretrain",)
  cfg["pretrain"] = {**dict(base["pretrain"]), "steps": steps, "start_from": ""}
  cfg["eval"] = {"evaluator": {"name": "curation_probes", **dict(probes)}, "every": 0,
                 "at_stage_end": True}
  cfg["checkpoint"] = {"every": 0}
  cfg["report"] = {}
  return cfg


def run_arm(cfg: Mapping[str, Any], workdir: str) -> dict[str, float]:
  """The arm's probe accuracies ({probe: acc}); a finished arm (summary.json) is not rerun."""
  path = os.path.join(workdir, "summary.json")
  if not os.path.exists(path):
    # What `rl_jax.main.run` does (importing rl_jax.main under `python -m rl_jax.main` would
    # define its flags twice).
    from rl_jax import experiment, loop  # pylint: disable=g-import-not-at-top
    loop.run(experiment.from_config_dict(cfg), workdir, show_progress=False)
  with open(path, encoding="utf-8") as f:
    ev = json.load(f)["eval"]["pretrain"]
  return {k.split("/", 1)[1]: float(v) for k, v in ev.items()
          if k.split("/", 1)[1] in PROBES + ("probe_mean",)}


def normalised_gain(acc: Mapping[str, float], base: Mapping[str, float]) -> float:
  """mean over probes of (acc_p - base_p) / base_p (SPEC step 6.5)."""
  return float(np.mean([(acc[p] - base[p]) / max(base[p], 1e-6) for p in PROBES]))


def planted_recovery(keep: np.ndarray, corpus, tier: int) -> dict[str, float]:
  """Of the target tier: share of its planted pages the filter keeps (recall) and share of the
  kept pages that are planted (precision); retained share of the tier."""
  in_tier = corpus.tier == tier
  planted = corpus.planted & in_tier
  kept = keep & in_tier
  return {"planted_recall": float(kept[planted].mean()) if planted.any() else float("nan"),
          "planted_precision": float(corpus.planted[kept].mean()) if kept.any() else 0.0,
          "retained": float(kept.sum() / max(in_tier.sum(), 1))}


def _table(rows: Sequence[Mapping[str, Any]], cols: Sequence[str]) -> str:
  def fmt(v):  # "|" (an OR filter's name) escaped: it would split the markdown cell
    return f"{v:.3f}" if isinstance(v, float) else str(v).replace("|", "\\|")
  lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
  lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
  return "\n".join(lines)


def plots(workdir: str, annotation: Mapping[str, Any], pass1: Sequence[Mapping[str, Any]],
          pass2: Sequence[Mapping[str, Any]]) -> list[str]:
  plt = figures.pyplot()
  paths = []
  if annotation:
    dims, m = annotation["nmi"]["dims"], np.asarray(annotation["nmi"]["teacher"])
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(dims)), dims, rotation=45, ha="right")
    ax.set_yticks(range(len(dims)), dims)
    for i in range(len(dims)):
      for j in range(len(dims)):
        ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                color="w" if m[i, j] < 0.5 else "k")
    fig.colorbar(im)
    ax.set_title("NMI between taxonomy dimensions (teacher labels)")
    paths.append(figures.save(fig, os.path.join(workdir, "nmi.png"), dpi=120))
  if pass2:
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(pass2)
    for i, r in enumerate(pass2):
      ax.bar(np.arange(len(PROBES)) + i * width, [r[p] for p in PROBES], width,
             label=r["arm"])
    ax.set_xticks(np.arange(len(PROBES)) + 0.4 - width / 2, PROBES)
    ax.set_ylabel("probe accuracy")
    ax.set_title("Pass 2: probe accuracy per arm (equal tokens)")
    ax.legend(fontsize=6)
    paths.append(figures.save(fig, os.path.join(workdir, "probes.png"), dpi=120))
  if pass1:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = [r["arm"] for r in pass1]
    ax.barh(range(len(names)), [r["gain"] for r in pass1])
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("mean normalised gain over the unfiltered tier")
    ax.set_title("Pass 1: single-dimension filters")
    paths.append(figures.save(fig, os.path.join(workdir, "pass1.png"), dpi=120))
  return paths


@REPORTS.register("curation_study")
def curation_report(workdir: str, *, pass1_filters: Sequence[Mapping[str, Any]] = (),
                    baselines: Mapping[str, Any] | None = None, target_tier: str = "low",
                    reference_tier: str = "top", top_k: int = 3, rho_min: float = 0.05,
                    pass1_steps: int = 100, pass2_steps: int = 300,
                    probes: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """The two-pass search (module docstring). pass1_filters: single-dimension FilterSpec JSON
  dicts; baselines: {name: FilterSpec JSON} filters of the target tier evaluated in pass 2 next
  to the unfiltered target and reference tiers (e.g. the fluency filter "artifacts <= 2");
  rho_min: fewest share of the target tier a compound keeps; probes: "curation_probes"
  kwargs. Returns the results (also results.json)."""
  with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
    base = json.load(f)
  specs = [filters_lib.from_json(s, corpus_lib.LABEL_DIMS, f"report.pass1_filters[{i}]")
           for i, s in enumerate(pass1_filters)]
  baseline_specs = {k: filters_lib.from_json(v, corpus_lib.LABEL_DIMS, f"report.baselines.{k}")
                    for k, v in dict(baselines or {}).items()}
  labels_path = os.path.abspath(os.path.join(workdir, "curation", "labels.npz"))
  corpus, _ = world(base["seed"], base["task"].get("corpus"))
  tier_id = corpus_lib.tier_index(target_tier)
  probes = dict(probes or {})
  annotation = {}
  ann_path = os.path.join(workdir, "eval", "pretrain.json")
  if os.path.exists(ann_path):
    with open(ann_path, encoding="utf-8") as f:
      annotation = json.load(f)["records"]

  def keep_of(spec, tier):
    return selection(corpus, tier=tier, filter_spec=None if spec is None else
                     filters_lib.to_json(spec), labels="mlp", labels_path=labels_path,
                     noise=0.0, seed=base["seed"])

  def arm(name, tier, spec, steps):
    cfg = arm_config(base, tier=tier, filter_spec=None if spec is None else
                     filters_lib.to_json(spec), labels_path=labels_path, steps=steps,
                     probes=probes)
    # Arms live under their budget, so a pass-2 arm equal to a pass-1 arm runs once.
    acc = run_arm(cfg, os.path.join(workdir, "arms", f"steps{steps}", name))
    row = {"arm": name, "tier": tier, **acc,
           "filter": None if spec is None else filters_lib.to_json(spec)}
    if tier == target_tier:
      row.update(planted_recovery(keep_of(spec, tier), corpus, tier_id))
    return row

  base1 = arm(f"{target_tier}_unfiltered", target_tier, None, pass1_steps)
  pass1 = []
  for spec in specs:
    row = arm(filters_lib.slug(spec), target_tier, spec, pass1_steps)
    row["gain"] = normalised_gain(row, base1)
    row["arm"] = filters_lib.name(spec)
    pass1.append(row)
  pass1.sort(key=lambda r: -r["gain"])
  top = [filters_lib.from_json(r["filter"]) for r in pass1[:top_k]]
  candidates, dropped = [], []
  for spec in filters_lib.compounds(top):
    share = planted_recovery(keep_of(spec, target_tier), corpus, tier_id)["retained"]
    (candidates if share >= rho_min else dropped).append(spec)
  base2 = arm(f"{target_tier}_unfiltered", target_tier, None, pass2_steps)
  base2["gain"] = 0.0
  pass2 = [base2]
  for name, spec in baseline_specs.items():
    row = arm(f"baseline_{name}", target_tier, spec, pass2_steps)
    row["gain"], row["arm"] = normalised_gain(row, base2), f"{name}: {filters_lib.name(spec)}"
    pass2.append(row)
  ref = arm(f"{reference_tier}_unfiltered", reference_tier, None, pass2_steps)
  ref["gain"] = normalised_gain(ref, base2)
  pass2.append(ref)
  compound_rows = []
  for spec in candidates:
    row = arm(filters_lib.slug(spec), target_tier, spec, pass2_steps)
    row["gain"], row["arm"] = normalised_gain(row, base2), filters_lib.name(spec)
    compound_rows.append(row)
  pass2 += compound_rows
  selected = max(compound_rows, key=lambda r: r["gain"]) if compound_rows else None
  results = {"annotation": annotation, "pass1_baseline": base1, "pass1": pass1,
             "pass2": pass2, "dropped_compounds": [filters_lib.name(s) for s in dropped],
             "selected": selected, "target_tier": target_tier,
             "reference_tier": reference_tier, "pass1_steps": pass1_steps,
             "pass2_steps": pass2_steps,
             "tokens_per_step": base["pretrain"]["batch_size"] * base["task"].get(
                 "corpus", {}).get("doc_len", corpus_lib.CorpusCfg.doc_len)}
  if selected is not None:
    results["acceptance"] = {
        "selected_beats_unfiltered_target": selected["probe_mean"] > base2["probe_mean"],
        "selected_beats_baselines": {r["arm"]: selected["probe_mean"] > r["probe_mean"]
                                     for r in pass2 if r["arm"].split(":")[0] in
                                     baseline_specs},
        "selected_beats_reference_on_reasoning": selected["reasoning"] > ref["reasoning"]}
  with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
    json.dump(results, f, indent=1)
  cols = ["arm", "tier", *PROBES, "probe_mean", "gain", "retained", "planted_recall",
          "planted_precision"]
  md = ["# Curation study (docs/curation.md)", "",
        f"Pass 1 ({pass1_steps} steps; baseline: unfiltered {target_tier} tier):", "",
        _table([dict(base1, gain=0.0)] + pass1, cols), "",
        f"Pass 2 ({pass2_steps} steps):", "", _table(pass2, cols), ""]
  if dropped:
    md += [f"Dropped compounds (retained < {rho_min}): " + ", ".join(
        filters_lib.name(s) for s in dropped), ""]
  if selected is not None:
    md += [f"Selected compound: {selected['arm']}", "",
           "Acceptance: " + json.dumps(results["acceptance"]), ""]
  if annotation:
    md += ["Cohen's kappa per dimension:", "",
           _table([{"labeller": k, **v} for k, v in annotation["kappa"].items()],
                  ["labeller"] + DIMS), "",
           "Documents per second: " + ", ".join(
               f"{k} {v:.0f}" for k, v in annotation["docs_per_second"].items()), ""]
  plots(workdir, annotation, pass1, pass2)
  with open(os.path.join(workdir, "report.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(md))
  return results
