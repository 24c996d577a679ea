"""Command-line overrides: every documented field of every config can be set with
`--config.a.b=value` (also fields whose default means "from the preset", and any
`model.overrides.KEY`), a wrong path is one clear error line, config files load from any working
directory, `--dry-run` prints the effective config, and a task's data file is a config field."""
import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from rl_jax import experiment, tasks
from rl_jax.models.config import ModelConfig

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.stem for p in (REPO / "configs").glob("*.py") if p.stem != "__init__")

# The README's promise: these "from the preset" fields are settable on every config.
PRESET_OVERRIDES = {"rl.agg": ("seq_mean_token_sum", "seq_mean_token_sum"),
                    "rl.kl_estimator": ("k2", "k2"), "rl.adv_normalize": ("none", "none"),
                    "rl.eps_low": ("0.15", 0.15), "rl.eps_high": ("0.3", 0.3),
                    "rl.eps_c": ("5.0", 5.0), "rl.use_kl_loss": ("True", True),
                    "rl.beta": ("0.01", 0.01), "model.overrides.rope_theta": ("12345.0", 12345.0),
                    "model.overrides.num_layers": ("2", 2), "pretrain.warmup_steps": ("7", 7)}


def _parse(argv: list[str]):
  """The config after absl + ml-collections parse `argv`, exactly as `rl_jax.main` does."""
  fv = flags.FlagValues()
  holder = config_flags.DEFINE_config_file("config", None, "", flag_values=fv,
                                           lock_config=True, sys_argv=["prog"] + argv)
  fv(["prog"] + argv)
  return holder.value


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("arg", ["", ":runlocal"])
def test_every_documented_override_applies(name, arg):
  path = str(REPO / "configs" / f"{name}.py") + arg
  argv = ([f"--config={path}", "--config.rl.drop_zero_advantage=0"]  # (refused with a KL loss)
          + [f"--config.{k}={v}" for k, (v, _) in PRESET_OVERRIDES.items()])
  exp = experiment.from_config_dict(_parse(argv))
  for key, (_, want) in PRESET_OVERRIDES.items():
    section, field = key.rsplit(".", 1)
    holder = exp
    for part in section.split("."):
      holder = getattr(holder, part) if dataclasses.is_dataclass(holder) else holder[part]
    got = holder[field] if isinstance(holder, dict) else getattr(holder, field)
    assert got == want, (key, got)


@pytest.mark.parametrize("name", CONFIGS)
def test_no_field_is_a_bare_none_and_model_overrides_lists_every_field(name):
  c = _parse([f"--config={REPO / 'configs' / f'{name}.py'}"])

  def walk(node, prefix):
    for key in node.keys():
      value = node[key]
      if hasattr(value, "keys"):
        yield from walk(value, f"{prefix}{key}.")
      else:
        yield f"{prefix}{key}", node.get_type(key)

  untyped = [p for p, t in walk(c, "") if t is type(None)]
  assert not untyped, f"{name}: fields a command line cannot set (bare None): {untyped}"
  fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"vocab_size"}
  assert fields <= set(c.model.overrides.keys())
  # The placeholders are not overrides: the model is the config file's.
  exp = experiment.from_config_dict(c)
  assert None not in exp.model.overrides.values()


def _main(args, cwd):
  return subprocess.run([sys.executable, "-m", "rl_jax.main", *args], cwd=cwd,
                        capture_output=True, text=True, timeout=300,
                        env={**os.environ, "JAX_PLATFORMS": "cpu"})


def test_dry_run_from_another_directory_prints_the_effective_config(tmp_path):
  out = _main([f"--config={REPO / 'configs' / 'dapo_tiny_arith.py'}:runlocal", "--dry-run",
               "--config.rl.agg=seq_mean_token_mean", "--config.model.overrides.scan_unroll=2"],
              cwd=tmp_path)
  assert out.returncode == 0, out.stderr
  resolved = json.loads(out.stdout)
  assert resolved["rl"]["agg"] == "seq_mean_token_mean"
  assert resolved["rl"]["eps_high"] == 0.28  # DAPO's preset, resolved
  assert resolved["model"]["overrides"] == {"scan_unroll": 2}
  assert resolved["model"]["hf_checkpoint"] == "arith_tiny_sft"  # runlocal's start
  assert [s["name"] for s in resolved["stage_plan"]] == ["sft", "rl"]
  assert not list(tmp_path.iterdir())  # a dry run writes nothing


def test_a_config_that_imports_rl_jax_main_runs_under_python_m(tmp_path):
  """A project's report imports `rl_jax.main` (to call `run`) while `python -m rl_jax.main` is
  running as `__main__`: it must get the running module, not redefine the flags."""
  config = tmp_path / "imports_main.py"
  config.write_text("import rl_jax.main\n"
                    "from configs import quickstart\n\n\n"
                    "def get_config(arg=None):\n"
                    "  assert rl_jax.main.run is not None\n"
                    "  return quickstart.get_config('runlocal')\n")
  out = _main([f"--config={config}", "--dry-run"], cwd=REPO)
  assert out.returncode == 0, out.stderr
  assert "defined twice" not in out.stderr
  assert [s["name"] for s in json.loads(out.stdout)["stage_plan"]] == ["sft", "rl"]


@pytest.mark.parametrize("override, message", [
    ("--config.rlhf.steps=3", r"--config.rlhf.steps: unknown section 'rlhf'; valid keys of "
                              r"the config's top level: \[.*'rl'"),
    ("--config.rl.lr=1e-4", r"--config.rl.lr: unknown key 'lr'; valid keys of config.rl: "
                            r"\[.*'learning_rate'"),
    ("--config.rl.steps.x=1", r"config.rl.steps is a value \(int\)"),
])
def test_a_wrong_override_path_is_one_clear_line(tmp_path, override, message):
  out = _main([f"--config={REPO / 'configs' / 'quickstart.py'}", "--dry-run", override],
              cwd=tmp_path)
  assert out.returncode == 1
  assert "Traceback" not in out.stderr, out.stderr
  import re  # pylint: disable=g-import-not-at-top
  assert re.search(message, out.stderr), out.stderr


def test_zero_learning_rate_for_a_training_stage_is_an_error():
  c = _parse([f"--config={REPO / 'configs' / 'quickstart.py'}", "--config.sft.learning_rate=0",
              "--config.sft.steps=37"])
  with pytest.raises(ValueError, match=r"config sft.learning_rate is 0.0 but the sft stage "
                                       r"trains for 37 steps"):
    experiment.from_config_dict(c)
  c = _parse([f"--config={REPO / 'configs' / 'quickstart.py'}", "--config.sft.learning_rate=0",
              "--config.sft.steps=0"])
  experiment.from_config_dict(c)  # a skipped stage may keep any learning rate


def test_task_data_file_from_the_config(tmp_path):
  rows = [{"question": f"What is {i} + 1?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"}
          for i in range(5)]
  data = tmp_path / "mine.jsonl"
  data.write_text("".join(json.dumps(r) + "\n" for r in rows))
  c = _parse([f"--config={REPO / 'configs' / 'grpo_qwen3_gsm8k.py'}:runlocal",
              f"--config.task.path={data}", f"--config.task.eval_path={data}",
              "--config.task.train_size=0", "--config.task.eval_size=0"])
  exp = experiment.from_config_dict(c)
  kwargs = dict(exp.task)
  task = tasks.make_task(kwargs.pop("name"), **kwargs)
  assert [p.answer for p in task.train] == ["1", "2", "3", "4", "5"]
  assert [p.question for p in task.eval] == [r["question"] for r in rows]
  bad = tmp_path / "bad.jsonl"
  bad.write_text(json.dumps(rows[0]) + "\n{not json\n")
  with pytest.raises(ValueError, match=r"bad.jsonl:2: invalid JSON"):
    tasks.make_task("gsm8k", path=str(bad))
