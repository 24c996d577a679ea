"""configs/curation_tiny.py:runlocal through the one loop (rl_jax.main.run): the embedder LM's
pretrain stage, the annotation evaluator (teacher, MLP, classifier, kappa, NMI, throughput) and
the two-pass filter search report, whose every arm is a pretrain-only run of the same loop.
One run per module; several checks on its outputs."""
import contextlib
import importlib.util
import json
import os
import pathlib

import jax
import numpy as np
import pytest
from jax._src import compilation_cache as jax_cache

from rl_jax import main as main_lib
from rl_jax import metrics as metrics_lib
from rl_jax.projects.curation import corpus as corpus_lib
from rl_jax.projects.curation import filters as filters_lib
from rl_jax.projects.curation.task import world


@contextlib.contextmanager
def compilation_cache(directory):
  """JAX's persistent compilation cache in `directory` for the block, then off again. The
  study's arms are runs of the same programs (same model, same shapes): with the cache each is
  compiled once (measured: about half the CPU time of the run)."""
  names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
           "jax_persistent_cache_min_entry_size_bytes")
  old = [getattr(jax.config, n) for n in names]
  for n, v in zip(names, (str(directory), 0.0, 0)):
    jax.config.update(n, v)
  jax_cache.reset_cache()  # the cache is set up at the first compile after this
  try:
    yield
  finally:
    for n, v in zip(names, old):
      jax.config.update(n, v)
    jax_cache.reset_cache()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
  path = pathlib.Path(__file__).resolve().parents[3] / "configs" / "curation_tiny.py"
  spec = importlib.util.spec_from_file_location("configs_curation_tiny", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("runlocal").to_dict()
  workdir = tmp_path_factory.mktemp("curation")
  with compilation_cache(tmp_path_factory.mktemp("jax_cache")):
    summary = main_lib.run(config, str(workdir), show_progress=False)
  return config, workdir, summary


def test_pretrain_stages_train(study):
  _, workdir, _ = study
  arm_dirs = sorted(p.parent for p in workdir.glob("arms/*/*/summary.json"))
  # pass 1: unfiltered low + 2 filters; pass 2 (same budget: the unfiltered arm is shared):
  # fluency baseline, top tier, AND and OR of the two filters (kept: retained >= rho_min).
  assert len(arm_dirs) == 7
  for d in [workdir] + arm_dirs:
    records = [r for r in metrics_lib.read_metrics(str(d / "metrics.jsonl"))
               if r["stage"] == "pretrain"]
    assert records and all(r["pretrain/nll"] > 0 and np.isfinite(r["pretrain/nll"])
                           for r in records)
    assert all(r["pretrain/norm"] > 0 for r in records)  # the gradient norm
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["stages"] == ["pretrain"]


def test_annotation_outputs(study):
  config, workdir, summary = study
  m = summary["eval"]["pretrain"]
  # The teacher's labels: 10% noise, replaced uniformly -> kappa against the truth near 0.9.
  assert 0.75 < m["eval/kappa_teacher_truth"] < 0.98
  assert m["eval/mlp_docs_per_s"] > 0 and m["eval/classifier_docs_per_s"] > 0
  corpus, _ = world(config["seed"], config["task"]["corpus"])
  labels = np.load(workdir / "curation" / "labels.npz")
  for dim, n in corpus_lib.LABEL_DIMS.items():
    mlp = labels[f"mlp/{dim}"]
    assert mlp.shape == (len(corpus),) and mlp.min() >= 0 and mlp.max() < n
  records = json.loads((workdir / "eval" / "pretrain.json").read_text())["records"]
  assert set(records["kappa"]) == {"mlp_vs_teacher", "classifier_vs_teacher", "mlp_vs_truth",
                                   "classifier_vs_truth", "teacher_vs_truth"}
  nmi = np.asarray(records["nmi"]["teacher"])
  assert nmi.shape == (6, 6) and np.allclose(np.diag(nmi), 1) and np.allclose(nmi, nmi.T)
  assert records["mlp_loss"][1] < records["mlp_loss"][0]


def test_search_report(study):
  config, workdir, _ = study
  results = json.loads((workdir / "results.json").read_text())
  assert len(results["pass1"]) == 2
  base = results["pass1_baseline"]
  for row in results["pass1"]:
    gain = np.mean([(row[p] - base[p]) / base[p] for p in ("reasoning", "coding", "knowledge")])
    assert row["gain"] == pytest.approx(gain)
    filters_lib.from_json(row["filter"], corpus_lib.LABEL_DIMS)
  arms = [r["arm"] for r in results["pass2"]]
  assert arms[:3] == ["low_unfiltered", "fluency: artifacts<=2", "top_unfiltered"]
  selected = results["selected"]
  assert selected is not None and selected["arm"] in arms[3:]
  assert isinstance(filters_lib.from_json(selected["filter"]), (filters_lib.All,
                                                                filters_lib.Any_))
  for r in results["pass2"]:
    assert 0 <= r["reasoning"] <= 1 and 0 <= r["probe_mean"] <= 1
  # Planted-page bookkeeping against the corpus, independently of the report's code.
  corpus, _ = world(config["seed"], config["task"]["corpus"])
  low_planted = corpus.planted & (corpus.tier == 2)
  assert results["pass2"][0]["planted_recall"] == 1.0
  assert results["pass2"][0]["planted_precision"] == pytest.approx(
      low_planted.sum() / (corpus.tier == 2).sum())
  for name in ("report.md", "nmi.png", "probes.png", "pass1.png"):
    assert os.path.getsize(workdir / name) > 0
