"""Multi-process start-up: one `maybe_initialize()` call at the top of `main`, on every process.

How the processes are described, first match wins:

1. explicit arguments, or the env vars `RL_JAX_COORDINATOR` (host:port), `RL_JAX_NUM_PROCESSES`,
   `RL_JAX_PROCESS_ID` (what `launch/local_multiprocess.sh` sets);
2. SLURM, inside `srun`: `SLURM_STEP_NUM_TASKS`/`SLURM_NTASKS`, `SLURM_PROCID`, coordinator on
   the first host of `SLURM_STEP_NODELIST`/`SLURM_JOB_NODELIST` (port `RL_JAX_COORDINATOR_PORT`, or
   derived from the job id like JAX's own SLURM detection, so two jobs on a node do not collide);
3. a multi-worker TPU slice (`TPU_WORKER_HOSTNAMES` with several hosts, `MEGASCALE_*`,
   `CLOUD_TPU_TASK_ID`): `jax.distributed.initialize()` with no arguments, JAX reads the metadata;
4. otherwise a single process: nothing to initialize.

Detection is pure (`detect(env)`), so it is unit-tested without starting anything.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
from typing import Mapping

import jax

log = logging.getLogger(__name__)

_ENV_COORDINATOR = "RL_JAX_COORDINATOR"
_ENV_NUM_PROCESSES = "RL_JAX_NUM_PROCESSES"
_ENV_PROCESS_ID = "RL_JAX_PROCESS_ID"
_ENV_PORT = "RL_JAX_COORDINATOR_PORT"


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
  process_index: int
  process_count: int
  is_chief: bool


@dataclasses.dataclass(frozen=True)
class Launch:
  """What `detect` found. kind: "single" | "explicit" | "slurm" | "tpu"."""
  kind: str
  coordinator: str | None = None
  num_processes: int | None = None
  process_id: int | None = None

  def initialize_kwargs(self) -> dict:
    if self.kind == "tpu":
      return {}
    return dict(coordinator_address=self.coordinator, num_processes=self.num_processes,
                process_id=self.process_id)


def _int(value, name: str) -> int:
  try:
    return int(value)
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be an integer, got {value!r}") from None


def expand_nodelist(nodelist: str) -> list[str]:
  """SLURM host list -> host names: 'node[01-03,07],gpu5' -> node01 node02 node03 node07 gpu5.

  Handles one bracket group per host item, zero padding and comma lists (the forms `squeue`
  prints for ordinary allocations); anything else raises a ValueError naming the input.
  """
  items = re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,]*", nodelist)
  hosts: list[str] = []
  for item in items:
    m = re.fullmatch(r"([^\[\]]*)(?:\[([^\]]+)\]([^\[\]]*))?", item)
    if not m or not item:
      raise ValueError(f"cannot parse SLURM node list {nodelist!r} (item {item!r})")
    prefix, ranges, suffix = m.groups()
    if ranges is None:
      hosts.append(prefix)
      continue
    for part in ranges.split(","):
      lo, _, hi = part.partition("-")
      if not lo.isdigit() or (hi and not hi.isdigit()):
        raise ValueError(f"cannot parse SLURM node list {nodelist!r} (range {part!r})")
      for n in range(int(lo), int(hi or lo) + 1):
        hosts.append(f"{prefix}{n:0{len(lo)}d}{suffix}")
  if not hosts:
    raise ValueError(f"empty SLURM node list {nodelist!r}")
  return hosts


def _slurm_port(env: Mapping[str, str]) -> int:
  if _ENV_PORT in env:
    return _int(env[_ENV_PORT], _ENV_PORT)
  # Same ephemeral range as jax._src.clusters.slurm_cluster.
  return _int(env.get("SLURM_JOB_ID", "0"), "SLURM_JOB_ID") % 4096 + 61440


def _tpu_multi_worker(env: Mapping[str, str]) -> bool:
  hosts = [h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]
  return (len(hosts) > 1 or any(k.startswith("MEGASCALE_") for k in env)
          or "CLOUD_TPU_TASK_ID" in env)


def detect(env: Mapping[str, str], coordinator: str | None = None,
           num_processes: int | None = None, process_id: int | None = None) -> Launch:
  """Decides how (and whether) to call `jax.distributed.initialize`; never initializes."""
  explicit = dict(coordinator=coordinator if coordinator is not None else env.get(_ENV_COORDINATOR),
                  num_processes=num_processes if num_processes is not None
                  else env.get(_ENV_NUM_PROCESSES),
                  process_id=process_id if process_id is not None else env.get(_ENV_PROCESS_ID))
  given = {k: v for k, v in explicit.items() if v is not None}
  if given:
    missing = sorted(set(explicit) - set(given))
    if missing:
      raise ValueError(f"multi-process launch needs coordinator, num_processes and process_id "
                       f"(args or {_ENV_COORDINATOR}/{_ENV_NUM_PROCESSES}/{_ENV_PROCESS_ID}); "
                       f"got {given}, missing {missing}")
    n = _int(explicit["num_processes"], "num_processes")
    i = _int(explicit["process_id"], "process_id")
    if n < 1 or not 0 <= i < n:
      raise ValueError(f"need num_processes >= 1 and 0 <= process_id < num_processes, "
                       f"got num_processes={n}, process_id={i}")
    if ":" not in str(explicit["coordinator"]):
      raise ValueError(f"coordinator must be 'host:port', got {explicit['coordinator']!r}")
    if n == 1:
      return Launch("single")
    return Launch("explicit", str(explicit["coordinator"]), n, i)

  ntasks = env.get("SLURM_STEP_NUM_TASKS", env.get("SLURM_NTASKS"))
  if ntasks is not None and "SLURM_PROCID" in env and _int(ntasks, "SLURM_NTASKS") > 1:
    nodelist = env.get("SLURM_STEP_NODELIST", env.get("SLURM_JOB_NODELIST"))
    if not nodelist:
      raise ValueError("SLURM_NTASKS > 1 but neither SLURM_STEP_NODELIST nor SLURM_JOB_NODELIST "
                       "is set; launch with srun inside an allocation")
    host = expand_nodelist(nodelist)[0]
    return Launch("slurm", f"{host}:{_slurm_port(env)}", _int(ntasks, "SLURM_NTASKS"),
                  _int(env["SLURM_PROCID"], "SLURM_PROCID"))

  if _tpu_multi_worker(env):
    return Launch("tpu")
  return Launch("single")


def _uses_cpu_backend() -> bool:
  platforms = jax.config.jax_platforms or os.environ.get("JAX_PLATFORMS", "")
  return platforms.split(",")[0].strip().lower() == "cpu"


def maybe_initialize(coordinator: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None, *,
                     env: Mapping[str, str] | None = None) -> ProcessInfo:
  """Initializes JAX's distributed runtime when launched as several processes (idempotent).

  Must run before anything touches a JAX backend (`jax.devices()`, array creation).
  """
  launch = detect(os.environ if env is None else env, coordinator, num_processes, process_id)
  if launch.kind != "single" and not jax.distributed.is_initialized():
    if _uses_cpu_backend():
      # Cross-process collectives of the CPU client go through gloo (TCP); without it a
      # multi-process CPU run fails at its first cross-process psum.
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    log.info("jax.distributed.initialize via %s: %s", launch.kind, launch)
    jax.distributed.initialize(**launch.initialize_kwargs())
  return ProcessInfo(process_index=jax.process_index(), process_count=jax.process_count(),
                     is_chief=jax.process_index() == 0)
