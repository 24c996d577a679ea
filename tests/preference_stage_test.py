"""The `preference` stage of the one loop: plan and sweep, a kill mid-stage resumes bitwise, the
reference cache is computed once per dataset, and malformed pairs name their record."""
import dataclasses

import jax
import numpy as np
import pytest

from rl_jax import experiment, logprobs, main as main_lib, stages, tasks
from rl_jax import metrics as metrics_lib
from rl_jax import preference_step
from rl_jax.stages import preference as preference_stage


def _wrong(completion: str) -> str:
  """The worked addition with its final sum off by one (a checkable wrong answer)."""
  head, last = completion.rsplit(",", 1)
  return f"{head},{int(last) + 1}"


@tasks.TASKS.register("arith_pairs_for_test")
def arith_pairs_task(*, seed: int, broken: int = -1, **kwargs):
  """The arithmetic task with pairs (prompt, right sum, sum + 1); record `broken` identical."""
  base = tasks.arithmetic_task(seed=seed, train_size=64, eval_size=16, **kwargs)

  def pairs(negatives: str = "off_by_one"):
    assert negatives == "off_by_one"
    out = [(base.prompt_fn(p), base.completion_fn(p), _wrong(base.completion_fn(p)))
           for p in base.train]
    if broken >= 0:
      out[broken] = (out[broken][0], out[broken][1], out[broken][1])
    return out

  return dataclasses.replace(base, name="arith_pairs_for_test", preference_pairs=pairs)


def _config(load_config, **pref):
  c = load_config("quickstart")
  c["task"] = {"name": "arith_pairs_for_test"}
  c["stages"] = ("sft", "preference")
  c["sft"]["steps"] = 2
  c["preference"] = {"steps": 4, "batch_size": 8, "beta": 0.5, "learning_rate": 1e-3,
                     "num_microbatches": 2, "ref_batch_size": 16, **pref}
  c["checkpoint"] = {"every": 1, "keep": 10}
  c["eval"] = {"batch_size": 16, "every": 2}
  return c


class Killed(Exception):
  pass


def _records(workdir):
  return [{k: v for k, v in r.items() if not k.startswith("time/")}
          for r in metrics_lib.read_metrics(str(workdir / "metrics.jsonl"))]


def test_plan_and_sweep_of_the_preference_stage(load_config):
  c = _config(load_config, sweep={"beta": (0.1, 0.5), "pairs": {"negatives": ("off_by_one",)}})
  specs = stages.plan(experiment.from_config_dict(c))
  assert [(s.name, s.start_from) for s in specs] == [
      ("sft", ""), ("preference_beta=0.1_negatives=off_by_one", "sft"),
      ("preference_beta=0.5_negatives=off_by_one", "sft")]
  assert specs[1].section.beta == 0.1 and specs[2].section.pairs == {"negatives": "off_by_one"}
  for bad, match in (({"loss": "kto"}, "preference.loss must be one of"),
                     ({"gamma": 1.0}, "gamma is the SimPO margin"),
                     ({"loss": "ipo", "label_smoothing": 0.1}, "needs 0"),
                     ({"batch_size": 9}, "multiple of num_microbatches=2"),
                     ({"betta": 1.0}, "unknown config key preference.'betta'")):
    with pytest.raises(ValueError, match=match):
      experiment.from_config_dict(_config(load_config, **bad))


def test_kill_in_the_preference_stage_resumes_bitwise(load_config, tmp_path, monkeypatch):
  calls = []
  real_ref = logprobs.reference_logprobs

  def counting(*args, **kwargs):
    calls.append(1)
    return real_ref(*args, **kwargs)

  monkeypatch.setattr(logprobs, "reference_logprobs", counting)
  full = main_lib.run(_config(load_config), str(tmp_path / "full"), show_progress=False)
  # 64 pairs in chunks of 16, chosen and rejected: 8 forward passes for 4 steps, once.
  assert len(calls) == 8
  records = _records(tmp_path / "full")
  pref = [r for r in records if r["stage"] == "preference"]
  assert [r["step"] for r in pref] == [0, 1, 2, 3]
  np.testing.assert_allclose(pref[0]["preference/loss"], np.log(2.0), atol=1e-5)  # policy = ref
  assert pref[-1]["preference/loss"] < pref[0]["preference/loss"]
  assert pref[-1]["preference/rewards_margin"] > 0 and pref[0]["grad/norm"] > 0
  assert "eval/accuracy" in pref[1]  # eval.every = 2: after step 2
  assert "preference" in full["eval"]

  real_step = preference_step.make_preference_step

  def dies_at_step_2(cfg, shardings=None):
    fn = real_step(cfg, shardings)
    def step(state, batch, knobs):
      if int(state.step) == 2:
        raise Killed("killed at preference step 2")
      return fn(state, batch, knobs)
    return step

  monkeypatch.setattr(preference_stage, "make_preference_step", dies_at_step_2)
  with pytest.raises(Killed):
    main_lib.run(_config(load_config), str(tmp_path / "resumed"), show_progress=False)
  assert (tmp_path / "resumed" / "checkpoints" / "preference" / "2").is_dir()
  monkeypatch.setattr(preference_stage, "make_preference_step", real_step)
  resumed = main_lib.run(_config(load_config), str(tmp_path / "resumed"), show_progress=False)
  for a, b in zip(jax.tree.leaves(full["final_params"]), jax.tree.leaves(resumed["final_params"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert _records(tmp_path / "full") == _records(tmp_path / "resumed")
  assert full["eval"] == resumed["eval"]


def test_malformed_pair_is_reported_with_its_record_index(load_config, tmp_path):
  c = _config(load_config)
  c["task"] = {"name": "arith_pairs_for_test", "broken": 5}
  c["checkpoint"] = {"every": 0}
  with pytest.raises(ValueError, match=r"1 malformed pair\(s\) of 64: record 5: chosen and "
                                       r"rejected are identical"):
    main_lib.run(c, str(tmp_path / "a"), show_progress=False)
  c["preference"]["skip_malformed"] = True
  c["preference"]["steps"] = 1
  main_lib.run(c, str(tmp_path / "b"), show_progress=False)
