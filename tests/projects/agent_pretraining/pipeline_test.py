"""The runlocal shrink of the S8 reproduction through the one loop (`rl_jax.main`): stage I on
the mixture, stage II on the seed corpus (`pretrain.then`), SFT from stage II and from stage I
alone (`sft.then`), the evaluator and the report; and the core's `then` stage plan."""
import importlib.util
import json
import pathlib

import numpy as np
import pytest

from rl_jax import experiment
from rl_jax import main as main_lib
from rl_jax import metrics as metrics_lib
from rl_jax import stages as stages_lib
from rl_jax.projects.agent_pretraining import task as task_lib

CONFIG = pathlib.Path(__file__).resolve().parents[3] / "configs" / "agent_pretraining_tiny.py"
STAGES = ["pretrain", "pretrain_seed", "pretrain_cont", "sft", "sft_stage1_only", "sft_cont"]


def _config(arg="runlocal"):
  spec = importlib.util.spec_from_file_location("agent_pretraining_tiny", CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("agent_pretraining")
  summary = main_lib.run(_config(), str(workdir), show_progress=False)
  records = metrics_lib.read_metrics(str(workdir / "metrics.jsonl"))
  return workdir, summary, records


def test_every_stage_trains_with_nonzero_loss_and_gradients(run):
  _, summary, records = run
  config = _config()
  steps = {"pretrain": config.pretrain.steps, "pretrain_seed": config.pretrain.then[0]["steps"],
           "pretrain_cont": config.pretrain.then[1]["steps"], "sft": config.sft.steps,
           "sft_stage1_only": config.sft.steps, "sft_cont": config.sft.steps}
  for stage in STAGES:
    kind = stage.split("_")[0]
    rows = [r for r in records if r.get("stage") == stage]
    assert [r["step"] for r in rows] == list(range(steps[stage])), stage
    assert all(r[f"{kind}/nll"] > 0 and r[f"{kind}/norm"] > 0 for r in rows), stage
    # A random init over ~100 words starts near ln(vocab); training lowers the NLL.
  first = [r for r in records if r.get("stage") == "pretrain"]
  assert first[-1]["pretrain/nll"] < first[0]["pretrain/nll"]
  assert list(summary["eval"]) == STAGES


def test_evaluator_reports_losses_and_call_accuracy_after_every_stage(run):
  workdir, summary, _ = run
  for stage in STAGES:
    m = summary["eval"][stage]
    for key in ("eval/agent_loss", "eval/general_loss", "eval/loss/api_docs", "eval/loss/text",
                "eval/call_accuracy", "eval/name_accuracy"):
      assert np.isfinite(m[key]), (stage, key)
    accuracies = [m[f"eval/{k}_accuracy"] for k in ("call", "schema", "name")]
    assert 0 <= accuracies[0] <= accuracies[1] <= accuracies[2] <= 1  # exact <= schema <= name
    records = json.loads((workdir / "eval" / f"{stage}.json").read_text())["records"]
    assert len(records) == _config().task.eval_calls
  # Stage II trains on trajectories only: its held-out trajectory loss falls below stage I's.
  assert (summary["eval"]["pretrain_seed"]["eval/loss/trajectories"]
          < summary["eval"]["pretrain"]["eval/loss/trajectories"])


def test_plan_and_report(run):
  workdir, _, _ = run
  plan = json.loads((workdir / "config.json").read_text())["stage_plan"]
  starts = {s["name"]: s["start_from"] for s in plan}
  assert starts == {"pretrain": "initial params", "pretrain_seed": "pretrain",
                    "pretrain_cont": "pretrain", "sft": "pretrain_seed",
                    "sft_stage1_only": "pretrain", "sft_cont": "pretrain_cont"}
  # The control continues stage I on its own corpus (the default), stage II reads the seed pool.
  corpora = {s["name"]: s["section"]["corpus"] for s in plan if s["kind"] == "pretrain"}
  assert corpora == {"pretrain": "", "pretrain_seed": "seed", "pretrain_cont": ""}
  report = (workdir / "report.md").read_text()
  assert "| sft_stage1_only |" in report and (workdir / "stages.png").stat().st_size > 1000


def test_seed_corpus_stage_reads_seed_trajectories():
  """The `corpus` of a then-stage reaches the task: a corpus "seed" of doc-grounded
  trajectories only gives those, the default corpus a mixture."""
  config = _config()
  kw = {k: v for k, v in config.task.to_dict().items() if k != "name"}
  kw["corpora"] = {"seed": {"seed_trajectories": 1.0}}
  task = task_lib.agent_api_task(seed=0, **kw)
  tok = task.tokenizer
  seed_text = tok.decode(task.pretrain_batch(4, np.random.default_rng(0), corpus="seed")[0]
                         .ravel(), keep_specials=True)
  docs = [d.strip() for d in seed_text.split("<eos>")[1:-1]]
  assert docs and all(d.startswith("task :") and " doc : " in d for d in docs)
  mix_text = tok.decode(task.pretrain_batch(8, np.random.default_rng(0))[0].ravel(),
                        keep_specials=True)
  firsts = {d.split()[0] for d in mix_text.split("<eos>")[1:-1] if d.strip()}
  assert {"doc", "task", "code"} <= firsts
  with pytest.raises(ValueError, match="pretrain.corpus='nope'"):
    task.pretrain_batch(4, np.random.default_rng(0), corpus="nope")


def test_then_stages_plan_and_errors():
  c = _config()
  c.pretrain.then = ({"name": "a", "steps": 3, "corpus": "seed"},
                     {"name": "b", "steps": 0}, {"name": "c", "start_from": "pretrain"})
  c.sft.then, c.sft.start_from = (), ""  # sft starts from the stage before it
  specs = stages_lib.plan(experiment.from_config_dict(c))
  assert [(s.name, s.start_from, s.section.steps) for s in specs] == [
      ("pretrain", "", 12), ("pretrain_a", "pretrain", 3), ("pretrain_c", "pretrain", 12),
      ("sft", "pretrain_c", 4)]
  assert specs[1].section.corpus == "seed" and specs[1].overrides == {"steps": 3,
                                                                      "corpus": "seed"}
  c.pretrain.then = ({"name": "a", "step": 3},)
  with pytest.raises(ValueError, match=r"pretrain.then\[0\] \('a'\): unknown key\(s\) \['step'\]"):
    experiment.from_config_dict(c)
  c.pretrain.then = ({"steps": 3},)
  with pytest.raises(ValueError, match=r"pretrain.then\[0\] needs a non-empty 'name'"):
    experiment.from_config_dict(c)
