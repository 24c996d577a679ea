"""Benchmark evaluation of one checkpoint (an evaluation entry point, not a training loop).

Shopping MMLU (arXiv 2410.20745) from the benchmark's data folder, greedy, with its system prompt
and output budgets; writes the per-task / per-skill report as JSON and prints it as a table:

  python -m rl_jax.eval --suite=shopping_mmlu --data_dir=data --checkpoint=CKPT --out=report.json

GSM8K (the bundled test split, or --data_dir=a GSM8K-format JSONL file): greedy accuracy, and
with --num_samples=n > 1 pass@k for --ks and majority@n at --temperature:

  python -m rl_jax.eval --suite=gsm8k --checkpoint=CKPT --tokenizer=gsm8k_unigram \
      --max_examples=100 --num_samples=8 --ks=1,4,8

CKPT is a Hugging Face Qwen3 folder (its tokenizer.json, or --tokenizer) or a checkpoint of this
project's loop, `<workdir>/checkpoints/<stage>[/<step>]` (rl_jax/eval/checkpoints.py).
"""
from __future__ import annotations

import argparse
import sys

import jax

from rl_jax.eval import checkpoints, run_suite, shopping_mmlu, suites  # noqa: F401 (registers)


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m rl_jax.eval", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--suite", required=True, help="shopping_mmlu | gsm8k (or another registered "
                 "suite of rl_jax.eval.suites.EVAL_SUITES)")
  p.add_argument("--checkpoint", required=True, help="HF Qwen3 folder or "
                 "<workdir>/checkpoints/<stage>[/<step>]")
  p.add_argument("--data_dir", default="", help="shopping_mmlu: the benchmark's data folder; "
                 "gsm8k: a JSONL file ('' = bundled test split)")
  p.add_argument("--tokenizer", default="", help="for an HF folder without tokenizer.json")
  p.add_argument("--out", default="", help="write the JSON report here")
  p.add_argument("--tasks", default="", help="comma-separated task names ('' = all)")
  p.add_argument("--max_per_task", type=int, default=0, help="first N examples per task (0 = all)")
  p.add_argument("--mc_max_new_tokens", type=int, default=1,
                 help="multiple-choice output budget (skill-wise protocol: 1; task-wise: 4)")
  p.add_argument("--max_new_tokens", type=int, default=100,
                 help="budget of the other task types (100); gsm8k's budget is --gsm8k_tokens")
  p.add_argument("--embedder", default="ngram", choices=("ngram", "sentence-transformers"),
                 help="encoder of the embedding-similarity metrics")
  p.add_argument("--batch_size", type=int, default=16)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--max_examples", type=int, default=0, help="gsm8k: first N problems (0 = all)")
  p.add_argument("--gsm8k_tokens", type=int, default=256)
  p.add_argument("--num_samples", type=int, default=1, help="gsm8k: samples per problem for "
                 "pass@k / maj@n (1 = greedy only)")
  p.add_argument("--temperature", type=float, default=0.6)
  p.add_argument("--ks", default="1", help="gsm8k: comma-separated k of pass@k (k <= n)")
  return p


def main(argv=None) -> dict:
  args = build_parser().parse_args(argv)
  if args.suite not in suites.EVAL_SUITES and args.suite != "gsm8k":
    raise SystemExit(f"unknown suite {args.suite!r}; registered: "
                     f"{suites.EVAL_SUITES.names() + ['gsm8k']}")
  key = jax.random.key(args.seed)
  if args.suite == "gsm8k":
    from rl_jax.data import gsm8k  # pylint: disable=g-import-not-at-top
    problems = gsm8k.load_gsm8k("test", path=args.data_dir or None)
    problems = problems[:args.max_examples or None]
    model = checkpoints.load_model(args.checkpoint, args.tokenizer)
    metrics = run_suite.gsm8k_metrics(
        model.params, problems, tokenizer=model.tokenizer, model_cfg=model.model_cfg, key=key,
        max_new_tokens=args.gsm8k_tokens, batch_size=args.batch_size,
        num_samples=args.num_samples, temperature=args.temperature,
        ks=tuple(int(k) for k in args.ks.split(",") if k), stop_ids=model.stop_ids,
        mesh=model.mesh)
    report = {"suite": "gsm8k", "checkpoint": args.checkpoint, "metrics": metrics}
    print("| metric | value |\n|---|---|\n" + "\n".join(f"| {k} | {v:.4f} |"
                                                     for k, v in metrics.items()))
  else:
    tasks = tuple(t for t in args.tasks.split(",") if t)
    suite = suites.EVAL_SUITES.get(args.suite)(
        data_dir=args.data_dir, mc_max_new_tokens=args.mc_max_new_tokens,
        max_new_tokens=args.max_new_tokens, tasks=tasks, max_per_task=args.max_per_task)
    model = checkpoints.load_model(args.checkpoint, args.tokenizer)
    gens = run_suite.suite_generations(model.params, suite, tokenizer=model.tokenizer,
                                       model_cfg=model.model_cfg, key=key,
                                       batch_size=args.batch_size, stop_ids=model.stop_ids,
                                       mesh=model.mesh)
    results = suites.score_suite(suite, gens, suites.default_embedders(args.embedder))
    report = dict(suites.suite_report(suite, results), checkpoint=args.checkpoint)
    report["generations"] = {k: v for k, v in gens.items()}
    print(suites.format_table(report))
  if args.out:
    suites.write_report(report, args.out)
    print(f"report written to {args.out}", file=sys.stderr)
  return report


if __name__ == "__main__":
  main()
