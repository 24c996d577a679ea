"""rl_jax entry point, the only one: `python -m rl_jax.main --config=configs/x.py --workdir=W`.

Override any config field on the command line (`--config.rl.steps=10`); a misspelt field fails
naming the valid keys at that level (the config is locked). A config file may take an argument:
`--config=configs/x.py:runlocal`. `--dry_run` (or `--dry-run`) checks the config and prints the
effective values and the stage plan as JSON, without training; `--export_hf=DIR` writes the
final params as a Hugging Face Qwen3 folder. This is the only place that reads
the whole config; library code receives sections. Every experiment, seed reproductions
included, runs through here (`rl_jax.loop.run`).
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from typing import Any, Mapping

if __name__ == "__main__":
  # Under `python -m rl_jax.main` this file runs as `__main__`; a project or notebook that then
  # imports `rl_jax.main` (to call `run`) must get this module, not a second copy that would
  # define the flags again (absl's DuplicateFlagError).
  sys.modules.setdefault("rl_jax.main", sys.modules[__name__])
  setattr(sys.modules["rl_jax"], "main", sys.modules["rl_jax.main"])  # `rl_jax.main.run`

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "output folder (metrics, checkpoints, summary)")
_EXPORT_HF = flags.DEFINE_string(
    "export_hf", None, "after the run, write the final params as a Hugging Face Qwen3 folder "
    "(config.json + model.safetensors) here; `model.hf_checkpoint` loads it")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "check the config, print the effective values "
                             "and the stage plan as JSON, and exit without training")


def run(config: Mapping[str, Any], workdir: str, *, show_progress: bool = True
        ) -> dict[str, Any]:
  """What `main` does, callable from Python (notebooks, tests): checks the config, runs its
  stages, returns the summary (with `final_params`)."""
  # Imported here so `--help` is fast and XLA flags set by launchers apply first.
  from rl_jax import distributed, experiment, loop  # pylint: disable=g-import-not-at-top
  distributed.maybe_initialize()
  exp = experiment.from_config_dict(config)
  return loop.run(exp, workdir, show_progress=show_progress)


def dry_run(config: Mapping[str, Any]) -> dict[str, Any]:
  """The effective config (preset values resolved) and the stage plan, as `config.json` of a
  run would record them; nothing is built or trained."""
  from rl_jax import experiment, loop, stages  # pylint: disable=g-import-not-at-top
  exp = experiment.from_config_dict(config)
  return loop.effective_config(exp, stages.plan(exp))


def _load_config_file(argv: list[str]):
  """The config named by `--config=FILE[:ARG]` in argv, loaded without overrides (None if
  absent or if it does not load: then the flag parser's own error is the useful one)."""
  for arg in argv:
    m = re.fullmatch(r"--?config=(.+)", arg)
    if m:
      path, _, config_arg = m.group(1).partition(":")
      try:
        spec = importlib.util.spec_from_file_location("_rl_jax_config", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.get_config(config_arg or None)
      except Exception:  # pylint: disable=broad-except
        return None
  return None


def explain_override(config, path: str) -> str | None:
  """Why `--config.<path>=...` cannot apply to `config`: the first missing key and the valid
  keys at its level (None if the path exists)."""
  node, done = config, []
  for key in path.split("."):
    keys = list(node.keys()) if hasattr(node, "keys") else None
    if keys is None:
      return (f"--config.{path}: config.{'.'.join(done)} is a value "
              f"({type(node).__name__}), not a section with keys")
    if key not in keys:
      where = "config." + ".".join(done) if done else "the config's top level"
      what = "section" if not done else "key"
      return (f"--config.{path}: unknown {what} {key!r}; valid keys of {where}: "
              f"{sorted(keys)}")
    node, done = node[key], done + [key]
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with `--dry-run` accepted and an unknown override path reported as
  one clear line (ml-collections raises a bare KeyError('foo') deep in the flag parser)."""
  argv = ["--dry_run" if a == "--dry-run" else a for a in argv]
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.stderr.write(f"{e}\nPass --helpshort or --helpfull to see help on flags.\n")
    sys.exit(1)
  except (KeyError, AttributeError) as e:
    config = _load_config_file(argv)
    reasons = [explain_override(config, m.group(1)) for a in argv
               if (m := re.fullmatch(r"--?config\.([^=]+)(=.*)?", a))] if config else []
    reasons = [r for r in reasons if r]
    sys.stderr.write("error: " + ("\n".join(reasons) if reasons else
                                   f"bad config override: {type(e).__name__}: {e}") + "\n")
    sys.exit(1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _DRY_RUN.value:
    print(json.dumps(dry_run(_CONFIG.value), indent=1))
    return
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required (the output folder)")
  import jax  # pylint: disable=g-import-not-at-top
  from rl_jax import distributed  # pylint: disable=g-import-not-at-top
  distributed.maybe_initialize()  # before jax.devices(): that starts the backend
  logging.info("devices: %s", jax.devices())
  summary = run(_CONFIG.value, _WORKDIR.value)
  params, model_cfg = summary.pop("final_params"), summary.pop("model_config")
  if _EXPORT_HF.value:
    from rl_jax.models import weights  # pylint: disable=g-import-not-at-top
    params = jax.device_get(params)  # every process joins the gather; process 0 writes
    if jax.process_index() == 0:
      weights.save_hf_checkpoint(_EXPORT_HF.value, params, model_cfg)
      logging.info("exported the final params to %s", _EXPORT_HF.value)
  if jax.process_index() == 0:
    print(json.dumps(summary))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main, flags_parser=parse_flags)
