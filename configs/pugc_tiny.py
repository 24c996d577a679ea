"""PUGC (seed S7, arXiv 2506.04463) on a world of places and visitor posts: SFT on "generic QA"
that knows some facts and repeats rumours about the others, then DPO from the SFT model on pairs
of its own samples (K per question generated from a post and kept by the answerability filter),
judged with the post as reference (PUGC) or without it (the no-reference baseline)
(docs/pugc.md).

One command (SFT, both DPO arms, the table and the plot in the workdir):

  python -m rl_jax.main --config=configs/pugc_tiny.py --workdir=runs/pugc

The two DPO arms are one `preference.sweep` over `preference.pairs.judge` ("reference",
"none"): each starts from the SFT params, samples the same K responses per instruction (the
stage kind's key) and differs only in the judge. The eval hook ("pugc") answers every question
greedily after each stage and scores it with the world oracle; the report "pugc" writes
pugc_report.md, pugc_results.json and pugc_winrates.png (win rate and length-controlled win
rate against SFT). Shrunk pipeline check (the CI test):

  python -m rl_jax.main --config=configs/pugc_tiny.py:runlocal --workdir=runs/pugc_local

Every field is documented in rl_jax/experiment.py (preference: `PreferenceSection`) and, for
the project's parts, in rl_jax/projects/pugc/ (task `pugc_task`, `UgcPairs.__call__` for
`preference.pairs`, the evaluator and the report).
"""
from ml_collections import config_dict

from rl_jax import config_defaults


def get_config(arg=None):
  c = config_dict.ConfigDict()
  c.seed = 0
  c.imports = ("rl_jax.projects.pugc",)
  c.tokenizer = ""  # the task brings the world's word tokenizer
  # 16 places x 5 attributes; the SFT data states 40% of the facts truly and rumours the rest;
  # 600 posts about 12 of the places (10% misremember a fact). [I] choices: docs/pugc.md.
  c.task = config_dict.ConfigDict(dict(
      name="pugc_ugc", num_entities=16, known_frac=0.4, rumors_per_fact=4, ugc_entity_frac=0.75,
      train_posts=600, post_noise=0.1, off_topic=0.2, contradiction_penalty=0.5,
      target_words=12, world_seed=0, intelligence_config={}))
  # P: the longest question is 8 words; N: the longest answer is 13 words + EOS (+ 2 spare).
  c.prompt_len = 8
  c.max_new_tokens = 16
  c.logprob_impl = "naive"
  c.log_every = 10
  c.model = config_dict.ConfigDict(dict(name="tiny", hf_checkpoint="", overrides=dict(
      num_layers=2, hidden_size=96, num_heads=4, num_kv_heads=2, head_dim=24,
      intermediate_size=256, max_seq_len=24, scan_unroll=2)))
  c.stages = ("sft", "preference")
  c.sft = config_dict.ConfigDict(dict(steps=300, batch_size=64, learning_rate=3e-3,
                                      warmup_steps=20, schedule="cosine"))
  # DPO (sigmoid) from the SFT model, also the reference. pairs: K = num_samples policy samples
  # per instruction at temperature / top_p (the paper's K = 5, T = 0.8, nucleus: SPEC [S3]);
  # the sweep gives the two arms (judge "reference" = PUGC, "none" = no-reference baseline).
  # nll_coef [I]: the chosen response's NLL added to DPO (RPO, arXiv 2404.19733), as in
  # configs/ecd_tiny.py. Measured (docs/pugc.md): with plain DPO the greedy answers run on past
  # the final "." without EOS; with the NLL term they stay well-formed.
  # skip_malformed: a sample cut at max_new_tokens has no EOS and is one token too long for a
  # pair; such pairs are skipped (and counted in the log).
  c.preference = config_dict.ConfigDict(dict(
      steps=60, batch_size=32, loss="dpo", beta=0.1, nll_coef=1.0, learning_rate=5e-4,
      warmup_steps=5, schedule="constant", skip_malformed=True,
      pairs={"judge": "reference", "num_samples": 5, "temperature": 0.8, "top_p": 0.95},
      sweep={"pairs": {"judge": ("reference", "none")}}))
  c.eval = config_dict.ConfigDict(dict(evaluator={"name": "pugc"}, every=0, at_stage_end=True,
                                       batch_size=160))
  c.checkpoint = config_dict.ConfigDict(dict(every=0))
  # n_boot: bootstrap resamples of the questions for the 95% intervals; boot_seed: their draws.
  c.report = {"name": "pugc", "n_boot": 200, "boot_seed": 0}
  if arg == "runlocal":  # seconds: the pipeline with non-zero losses and gradients
    c.task.train_posts = 120
    c.sft.steps, c.sft.batch_size = 40, 32
    c.preference.steps, c.preference.batch_size = 3, 16
    c.preference.learning_rate, c.preference.warmup_steps = 1e-3, 0
    c.report.n_boot = 20
  elif arg is not None:
    raise ValueError(f"unknown config argument {arg!r}; valid: 'runlocal'")
  return config_defaults.overridable(c)
