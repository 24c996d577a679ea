"""rl_jax entry point, the only one: `python -m rl_jax.main --config=configs/x.py --workdir=W`.

Override any config field on the command line (`--config.rl.steps=10`); a misspelt field fails
(the config is locked). A config file may take an argument: `--config=configs/x.py:runlocal`.
This is the only place that reads the whole config; library code receives sections. Every
experiment, seed reproductions included, runs through here (`rl_jax.loop.run`).
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "output folder (metrics, checkpoints, summary)")


def run(config: Mapping[str, Any], workdir: str, *, show_progress: bool = True
        ) -> dict[str, Any]:
  """What `main` does, callable from Python (notebooks, tests): checks the config, runs its
  stages, returns the summary (with `final_params`)."""
  # Imported here so `--help` is fast and XLA flags set by launchers apply first.
  from rl_jax import distributed, experiment, loop  # pylint: disable=g-import-not-at-top
  distributed.maybe_initialize()
  exp = experiment.from_config_dict(config)
  return loop.run(exp, workdir, show_progress=show_progress)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import jax  # pylint: disable=g-import-not-at-top
  from rl_jax import distributed  # pylint: disable=g-import-not-at-top
  distributed.maybe_initialize()  # before jax.devices(): that starts the backend
  logging.info("devices: %s", jax.devices())
  summary = run(_CONFIG.value, _WORKDIR.value)
  summary.pop("final_params", None)
  if jax.process_index() == 0:
    print(json.dumps(summary))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
