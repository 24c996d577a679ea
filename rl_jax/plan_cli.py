"""The planner's command line, `python -m rl_jax.plan` (usage and exit status: `rl_jax.plan`):
the printed table, the arguments, and runnable docs (markdown blocks that hold a planner command
and its exact output, re-run by `--write-docs` / `--check-docs`)."""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any, Mapping

from rl_jax import plan as planner
from rl_jax.models.config import LORA_PROJECTIONS, MODEL_CONFIGS, get_model_config
from rl_jax.plan import GIB, LOGPROB, OPTIMIZERS, REMAT


def format_plan(p: Mapping[str, Any], header: str = "") -> str:
  """The table `python -m rl_jax.plan` prints for a `plan()` result, under `header`."""
  def row(name, value):
    gib = "" if value is None else f"{value / GIB:10.3f}"
    num = "-" if value is None else f"{value:,}"
    return f"{name:<44}{num:>20}{gib:>12}"

  lines = [header] if header else []
  lines += [f"{'per device':<44}{'bytes':>20}{'GiB':>12}",
            row("params (unsharded, whole model)", p["params_total"]),
            row("params", p["params"])]
  if p["adapters"]:
    lines += [row("  of which LoRA adapters (float32, trained)", p["adapters"]),
              row("grads (adapters only)", p["grads"]),
              row("optimizer state (adapters only)", p["opt_state"])]
  else:
    lines += [row("grads", p["grads"]), row("optimizer state", p["opt_state"])]
  if p["reference"]:
    lines.append(row("reference params (frozen)", p["reference"]))
  lines += [row("activations (saved for backward)", p["activations"]),
            row("logits, naive f32 [B,T,V]", p["logits_naive"]),
            row("logits, fused log-prob kernel", p["logits_fused"]),
            row("kv cache (rollout)", p["kv_cache"]),
            row("total = state + max(train temps, kv cache)", p["total"])]
  if p["hbm"] is not None:
    lines += [row("device HBM", p["hbm"]), row("headroom", p["hbm"] - p["total"]),
              "fits" if p["fits"] else "DOES NOT FIT"]
  return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m rl_jax.plan", description=planner.__doc__.split("\n")[0],
      epilog="Exit status: 0 fits (or no --topology to check against), 1 does not fit in the "
             "topology's HBM (reason on stderr) or --check-docs found stale blocks, 2 usage error.")
  parser.add_argument("--model", choices=sorted(MODEL_CONFIGS), help="required unless --*-docs")
  parser.add_argument("--topology", help="v4-N | v5p-N | v5e-N | v6e-N | NxH100 | NxH200 | NxA100")
  parser.add_argument("--mesh", help="'DxFxT', 'FxT' or 'F' (-1 fills); default: all fsdp")
  parser.add_argument("--batch", type=int, default=32, help="training rows per step (global)")
  parser.add_argument("--micro-batch", type=int, help="rows per micro-batch (default: --batch)")
  parser.add_argument("--rollout-batch", type=int, help="rows per rollout (default: --batch)")
  parser.add_argument("--seq-len", type=int, default=1024, help="prompt + response slots")
  parser.add_argument("--optimizer", default="adamw", choices=sorted(OPTIMIZERS))
  parser.add_argument("--param-dtype", choices=("float32", "bfloat16"))
  parser.add_argument("--remat", choices=REMAT,
                      help="activation rematerialisation (default: the model config's `remat`)")
  parser.add_argument("--logprob", default="fused", choices=LOGPROB)
  parser.add_argument("--reference", action="store_true", help="count a frozen KL reference copy "
                      "(free with LoRA: the base with the adapters off)")
  parser.add_argument("--lora-rank", type=int, default=0,
                      help="LoRA adapters of this rank (0 = full fine-tuning)")
  parser.add_argument("--lora-targets", default=",".join(LORA_PROJECTIONS),
                      help="comma-separated projections with adapters (default all seven)")
  parser.add_argument("--pack-mean-len", type=int,
                      help="packed update: mean real tokens per sequence (default: no packing)")
  docs = parser.add_mutually_exclusive_group()
  docs.add_argument("--write-docs", metavar="MD", help="re-run every `$ python -m rl_jax.plan ...` "
                    "block of this markdown file and rewrite its output in place")
  docs.add_argument("--check-docs", metavar="MD", help="like --write-docs, but only report stale "
                    "blocks (exit 1) and write nothing")
  return parser


def run(argv) -> tuple[str, dict[str, Any], str | None]:
  """Planner command-line arguments (no --*-docs) -> (printed table, plan dict, topology).

  Raises `ValueError` for arguments the planner rejects (argparse errors still exit with 2).
  The output depends on the arguments only, never on the machine it runs on: no device is queried.
  """
  args = _parser().parse_args(argv)
  if args.write_docs or args.check_docs:
    raise ValueError("--write-docs / --check-docs cannot be combined with a planner command")
  if args.model is None:
    raise ValueError("--model is required")
  devices, hbm = planner.parse_topology(args.topology) if args.topology else (None, None)
  mesh_shape = planner.resolve_mesh(args.mesh, devices)
  cfg = get_model_config(args.model)
  if args.lora_rank:
    cfg = cfg.replace(lora_rank=args.lora_rank, lora_targets=args.lora_targets)
  p = planner.plan(cfg, mesh_shape, batch=args.batch, seq_len=args.seq_len,
                   micro_batch=args.micro_batch, rollout_batch=args.rollout_batch,
                   optimizer=args.optimizer, param_dtype=args.param_dtype, remat=args.remat,
                   logprob=args.logprob, reference=args.reference,
                   pack_mean_len=args.pack_mean_len, hbm_bytes=hbm)
  dtype = args.param_dtype or cfg.param_dtype
  header = (f"model={args.model} ({cfg.num_params():,} params, {dtype})  "
            f"mesh={p['mesh']} ({p['num_devices']} devices"
            f"{', ' + args.topology if args.topology else ''})\n"
            f"batch={args.batch} micro_batch={args.micro_batch or args.batch} "
            f"rows/device={p['rows_per_device']} seq_len={args.seq_len} "
            f"optimizer={args.optimizer} remat={args.remat or cfg.remat} logprob={args.logprob}")
  if args.lora_rank or args.pack_mean_len:
    header += "\n" + " ".join(
        ([f"lora_rank={cfg.lora_rank} ({cfg.num_adapter_params():,} adapter params on "
          f"{len(cfg.lora_targets)} projections)"] if args.lora_rank else []) +
        ([f"packed: mean_len={args.pack_mean_len} -> {p['rows_per_device']} packed rows/device"]
         if args.pack_mean_len else []))
  return format_plan(p, header), p, args.topology


# ---- Runnable docs: fenced blocks whose first line is `$ python -m rl_jax.plan ...` (a trailing
# backslash continues the command) hold that command's exact stdout below the command lines.
DOC_PROMPT = "$ python -m rl_jax.plan"


def doc_blocks(text: str) -> list[tuple[int, int, list[str]]]:
  """Planner blocks of a markdown text: (first output line, closing-fence line, argv), 0-based."""
  lines, blocks, i = text.split("\n"), [], 0
  while i < len(lines):
    if not lines[i].lstrip().startswith("```"):
      i += 1
      continue
    end = next((j for j in range(i + 1, len(lines)) if lines[j].lstrip().startswith("```")), None)
    if end is None:
      raise ValueError(f"line {i + 1}: code fence is never closed")
    if i + 1 < end and lines[i + 1].startswith(DOC_PROMPT + " "):
      j, cmd = i + 1, lines[i + 1][2:]
      while cmd.endswith("\\") and j + 1 < end:
        j += 1
        cmd = cmd[:-1] + " " + lines[j].strip()
      if cmd.endswith("\\"):
        raise ValueError(f"line {j + 1}: command continues past its code block")
      blocks.append((j + 1, end, shlex.split(cmd)[3:]))
    i = end + 1
  return blocks


def update_docs(text: str, source: str = "<markdown>") -> tuple[str, list[str]]:
  """Re-run every planner block of `text` -> (regenerated text, commands whose output changed)."""
  lines, stale = text.split("\n"), []
  blocks = doc_blocks(text)
  if not blocks:
    raise ValueError(f"{source}: no code block starts with {DOC_PROMPT!r}")
  for start, end, argv in reversed(blocks):
    command = "python -m rl_jax.plan " + shlex.join(argv)
    try:
      out = run(argv)[0].split("\n")
    except ValueError as e:
      raise ValueError(f"{source}:{start}: `{command}`: {e}") from None
    except SystemExit:  # argparse has printed the usage error
      raise ValueError(f"{source}:{start}: `{command}`: bad arguments (usage above)") from None
    if lines[start:end] != out:
      stale.append(command)
      lines[start:end] = out
  return "\n".join(lines), stale[::-1]


def main(argv=None) -> int:
  """CLI entry point; returns the exit status (see the parser's epilog)."""
  parser = _parser()
  args = parser.parse_args(argv)
  path = args.write_docs or args.check_docs
  if path:
    defaults = vars(parser.parse_args([]))
    extra = [k for k, v in vars(args).items() if k not in ("write_docs", "check_docs")
             and v != defaults[k]]
    if extra:
      parser.error(f"--write-docs / --check-docs run the commands written in {path}; drop "
                   + ", ".join("--" + k.replace("_", "-") for k in extra))
    try:
      with open(path, encoding="utf-8") as f:
        new, stale = update_docs(f.read(), path)
    except (OSError, ValueError) as e:
      parser.error(str(e))
    for command in stale:
      print(f"{'rewrote' if args.write_docs else 'stale'}: {command}", file=sys.stderr)
    if args.write_docs and stale:
      with open(path, "w", encoding="utf-8") as f:
        f.write(new)
    if args.check_docs and stale:
      print(f"{path}: {len(stale)} stale planner block(s); regenerate with "
            f"`python -m rl_jax.plan --write-docs {path}`", file=sys.stderr)
      return 1
    return 0
  try:
    text, p, topology = run(argv)
  except ValueError as e:
    parser.error(str(e))
  print(text)
  if p["fits"] is False:
    print(f"{parser.prog}: does not fit: needs {p['total'] / GIB:.3f} GiB per device, {topology} "
          f"has {p['hbm'] / GIB:.3f} GiB ({(p['total'] - p['hbm']) / GIB:.3f} GiB over)",
          file=sys.stderr)
    return 1
  return 0
