"""Shopping MMLU on a synthetic shop world (seed S9, arXiv 2410.20745; docs/eval.md).

A tiny model is multitask-trained (SFT) on the train split of 20 mini-tasks over the benchmark's
five task types (multiple choice, retrieval, ranking, NER, generation) and four skills (concept,
knowledge, behavior, multilingual: two cipher languages); the evaluator scores the held-out
split with the benchmark's parsing and metric rules and reports every skill for the untrained
model and after SFT (<workdir>/report.md, results.json, skills.png):

  python -m rl_jax.main --config=configs/shop_world_tiny.py --workdir=runs/shop_world

Shrunk pipeline check (what tests/projects/shopping_mmlu runs, seconds):

  python -m rl_jax.main --config=configs/shop_world_tiny.py:runlocal --workdir=runs/shop_tiny

Every core field is documented in rl_jax/experiment.py; the project's parts (task, evaluator,
report) in rl_jax/projects/shopping_mmlu/.
"""
from ml_collections import config_dict

from rl_jax import config_defaults


def get_config(arg=None):
  c = config_dict.ConfigDict()
  c.seed = 0
  c.imports = ("rl_jax.projects.shopping_mmlu",)
  c.tokenizer = ""  # the task brings the shop world's word tokenizer
  # world_seed: products, users, cipher languages; train_per_task / eval_per_task: items per
  # mini-task (tasks with few distinct prompts have fewer); tasks: () = all 20.
  c.task = config_dict.ConfigDict(dict(name="shop_world", world_seed=0, num_products=240,
                                       train_per_task=400, eval_per_task=40, tasks=()))
  # Longest prompt: 45 tokens; longest answer: "a b c and a b d" (7) + EOS.
  c.prompt_len = 48
  c.max_new_tokens = 8
  c.logprob_impl = "naive"
  c.log_every = 50
  c.timing = False
  c.model = config_dict.ConfigDict(dict(name="tiny", hf_checkpoint="", overrides=dict(
      num_layers=2, hidden_size=128, num_heads=4, num_kv_heads=2, head_dim=32,
      intermediate_size=384, max_seq_len=64, scan_unroll=2)))
  c.stages = ("sft",)
  c.sft = config_dict.ConfigDict(dict(steps=700, batch_size=64, learning_rate=2e-3,
                                      warmup_steps=50, schedule="cosine", min_lr_ratio=0.05))
  # The evaluator: multiple choice gets 1 output token (the benchmark's skill-wise budget), the
  # other types max_new_tokens; report_untrained adds the initial params' report (the "before"
  # row) at the end of the first stage.
  c.eval = config_dict.ConfigDict(dict(
      evaluator=dict(name="shop_world", mc_max_new_tokens=1, max_per_task=0, batch_size=0,
                     report_untrained=True),
      every=0, at_stage_end=True, batch_size=64))
  # every > sft.steps: one checkpoint, at the stage end (what the evaluation command reads with
  # --checkpoint=<workdir>/checkpoints/sft, docs/eval.md), none in between.
  c.checkpoint = config_dict.ConfigDict(dict(every=100_000, keep=1, async_save=True))
  c.mesh = config_dict.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
  c.report = config_dict.ConfigDict(dict(name="shop_world", plot=True))

  if arg == "runlocal":
    c.model.overrides.update(num_layers=1, hidden_size=64, num_heads=2, num_kv_heads=1,
                             head_dim=32, intermediate_size=128, scan_unroll=1)
    c.task.update(train_per_task=24, eval_per_task=4, num_products=96)
    c.sft.update(steps=40, batch_size=32, warmup_steps=5)
    c.eval.batch_size = 16
    c.report.plot = False
  elif arg:
    raise ValueError(f"configs/shop_world_tiny.py: unknown config argument {arg!r}; expected "
                     "none or 'runlocal'")
  return config_defaults.overridable(c)
