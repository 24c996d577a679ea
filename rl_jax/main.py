"""rl_jax entry point: `python -m rl_jax.main --config=configs/quickstart.py --workdir=/tmp/run`.

Override any config field on the command line (`--config.rl.steps=10`); a misspelt field fails
(the config is locked). A config file may take an argument: `--config=configs/x.py:runlocal`.
This is the only place that reads the whole config; library code receives sections.
"""
from __future__ import annotations

import json
import os

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "output folder (metrics, checkpoints, summary)")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # Imported here so `--help` is fast and XLA flags set by launchers apply first.
  import jax  # pylint: disable=g-import-not-at-top
  from rl_jax import distributed, experiment, trainer  # pylint: disable=g-import-not-at-top

  distributed.maybe_initialize()
  exp = experiment.from_config_dict(_CONFIG.value)
  workdir = _WORKDIR.value
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(_CONFIG.value.to_json_best_effort(indent=1))
  logging.info("devices: %s", jax.devices())
  summary = trainer.run(exp, workdir)
  summary.pop("final_params", None)
  if jax.process_index() == 0:
    print(json.dumps(summary))


if __name__ == "__main__":
  app.run(main)
