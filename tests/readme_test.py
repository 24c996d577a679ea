"""README.md runs as written: its Python example is executed, and every shell command it shows
is run in a form that needs no cloud account, GPU or minutes of training (`--dry-run` for the
training entry point and the launchers; the planner as is). A new command in the README fails
`test_every_readme_command_is_checked` until it has a runner here. Concrete training commands in
docs/ are dry-run too."""
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
DOCS = {p.name: p.read_text(encoding="utf-8") for p in sorted((REPO / "docs").glob("*.md"))}

# Commands shown in the README that no test can run here, and why (each is still shown).
NOT_RUN = {
    "pip install": "installs: the first README command is what CI's fresh clone runs",
    "python -m pytest -q": "the test suite itself (.ci/run runs exactly this line)",
    "tensorboard --logdir runs": "a viewer (needs the [tb] extra and a browser)",
}


def _fenced(text: str, lang: str) -> list[str]:
  return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def _commands(text: str) -> list[str]:
  """Shell commands of a markdown text: ```bash blocks (backslash continuations joined, `&&`
  split) and inline `python -m ...` / `launch/...` / `sbatch ...` / `tensorboard ...` spans."""
  out = []
  for block in _fenced(text, "bash"):
    for line in block.replace("\\\n", " ").splitlines():
      out += [part.strip() for part in line.split("&&") if part.strip()]
  for span in re.findall(r"`((?:python -m |launch/|sbatch |tensorboard |pip )[^`]*)`", text):
    if " " in span:  # a command, not a bare path such as `launch/gke_jobset.yaml`
      out.append(span.strip())
  return out


def _runner(command: str) -> list[str] | None:
  """The argv that checks `command` here, or None if it is in NOT_RUN."""
  if any(command.startswith(prefix) for prefix in NOT_RUN):
    return None
  if "<" in command:  # a template (`--config=configs/<name>.py`): its instances are run
    return None
  argv = shlex.split(command)
  if argv[:3] == ["python", "-m", "rl_jax.main"]:
    return [sys.executable, "-m", "rl_jax.main", *argv[3:], "--dry-run"]
  if argv[:3] == ["python", "-m", "rl_jax.plan"]:
    return [sys.executable, *argv[1:]]
  if argv[0] in ("launch/tpu_pod.sh", "launch/local_multiprocess.sh"):
    return ["bash", *argv, "--dry-run"]
  if argv[0] == "sbatch":
    script = next(i for i, a in enumerate(argv) if a.endswith(".sbatch"))
    # What sbatch would give the job (SLURM_JOB_NUM_NODES / _GPUS_PER_NODE), as the flags the
    # script also takes.
    sbatch = dict(a[2:].split("=", 1) for a in argv[1:script] if "=" in a)
    given = [x for k in ("nodes", "gpus-per-node") if k in sbatch for x in (f"--{k}", sbatch[k])]
    return ["bash", argv[script], "--dry-run", *given, *argv[script + 1:]]
  raise AssertionError(f"README command without a runner in tests/readme_test.py: {command!r}")


def _run(argv, cwd):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def test_every_readme_command_is_checked():
  commands = _commands(README)
  assert len(commands) >= 8, commands
  for command in commands:
    _runner(command)  # raises for a command nobody checks


@pytest.mark.parametrize("command", [c for c in _commands(README) if _runner(c) is not None])
def test_readme_command_runs(command):
  out = _run(_runner(command), cwd=REPO)
  assert out.returncode == 0, f"{command}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"


def test_readme_python_example_runs_as_written(tmp_path):
  (example,) = [b for b in _fenced(README, "python") if "load_hf_checkpoint" in b]
  script = tmp_path / "example.py"
  script.write_text(example, encoding="utf-8")
  out = _run([sys.executable, str(script)], cwd=tmp_path)  # from another directory
  assert out.returncode == 0, out.stderr[-3000:]
  m = re.fullmatch(r"reward ([0-9.]+), loss (-?[0-9.]+), grad norm ([0-9.]+)\n", out.stdout)
  assert m, out.stdout
  reward, grad_norm = float(m.group(1)), float(m.group(3))
  # The bundled checkpoint solves some samples, not all: a real learning signal.
  assert 0.0 < reward < 1.0 and grad_norm > 0.0


@pytest.mark.parametrize("command", sorted({
    c for text in DOCS.values() for c in _commands(text)
    if re.match(r"python -m rl_jax\.main --config=configs/\w+\.py(:runlocal)?( |$)", c)}))
def test_docs_training_commands_dry_run(command):
  out = _run(_runner(command), cwd=REPO)
  assert out.returncode == 0, f"{command}\n{out.stderr[-3000:]}"


def test_ci_runs_the_readme_test_command_verbatim():
  """.ci/run executes the README's test command as written (the README contract)."""
  test_commands = [line for block in _fenced(README, "bash") for line in block.splitlines()
                   if "python -m pytest" in line]
  assert len(test_commands) == 1, test_commands
  ci_lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
  assert test_commands[0] in ci_lines, (test_commands[0], ci_lines)
