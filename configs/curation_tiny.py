"""Taxonomy-guided recovery of low-tier web data on a synthetic corpus (seed S2,
arXiv 2606.07778; docs/curation.md).

One command runs the whole study through the one loop:

  python -m rl_jax.main --config=configs/curation_tiny.py --workdir=runs/curation

1. stage `pretrain`: a 2-layer d=64 Qwen3 on the whole corpus (all tiers), the frozen LM of the
   `Embedder`;
2. its end-of-stage evaluator "curation_annotation": the noisy oracle teacher labels
   `num_teach` documents; the multi-task MLP over mean-pooled embeddings and the transformer
   classifier (the same Qwen3 fine-tuned with the heads) are fitted on them; Cohen's kappa,
   documents per second of both, the NMI matrix; the MLP labels the whole corpus;
3. report "curation_study": the two-pass compound filter search on the low tier, every proxy LM
   a pretrain-only run of the one loop under <workdir>/arms/ with the probe suite at its end;
   results.json, report.md, nmi.png, probes.png, pass1.png in the workdir.

Shrunk pipeline check (what tests/projects/curation runs, seconds):

  python -m rl_jax.main --config=configs/curation_tiny.py:runlocal --workdir=runs/curation_ci

Every field of the project's parts is documented in rl_jax/projects/curation/ (task.py,
corpus.py `CorpusCfg`, probes.py, study.py, annotation.py `HeadCfg` / `ClassifierCfg`); the
core sections in rl_jax/experiment.py.
"""
from ml_collections import config_dict

from rl_jax import config_defaults

# FilterSpec JSON (rl_jax/projects/curation/filters.py); labels are class indices: reasoning
# depth class k is depth k+1; timeliness 0 evergreen, 1 slow decay, 2 time-sensitive, 3 stale;
# cultural 0 universal; artifacts 0 clean ... 3 heavy boilerplate (binned fluency).
PASS1_FILTERS = (
    {"dim": "reasoning_depth", "op": ">=", "value": 3},
    {"dim": "reasoning_depth", "op": ">=", "value": 2},
    {"dim": "code", "op": ">=", "value": 1},
    {"dim": "timeliness", "op": "not_in", "values": [3]},
    {"dim": "timeliness", "op": "in", "values": [0]},
    {"dim": "cultural", "op": "in", "values": [0]},
    {"dim": "topic", "op": "in", "values": [0, 1, 2, 3]},
)
# The conventional quality filter: keep the more fluent pages of the tier.
FLUENCY_BASELINE = {"dim": "artifacts", "op": "<=", "value": 2}


def get_config(arg=None):
  c = config_dict.ConfigDict()
  c.seed = 0
  c.imports = ("rl_jax.projects.curation",)
  c.tokenizer = ""  # the task brings its word tokenizer
  # task.corpus: `CorpusCfg` (num_docs documents of doc_len words; attribute marginals; the
  # fluency weight of the quality score; planted_frac high-value pages planted in the low tier).
  # tier / filter / labels: what the pretrain stage reads ("all", no filter: the embedder LM);
  # the report's arms set them per arm. noise: the teacher's label noise for labels="teacher".
  # chain_addends [I]: the digits added at each step of an arithmetic chain. (1, 2, 3, 4): the
  # proxy learns these sums within the study's budget, more of them with more arithmetic in its
  # data (measured, one run each at 330 steps: 0.85 on the top tier, 1.00 on the low tier's
  # depth >= 3 pages); with all ten digits it stays at chance even on arithmetic alone at 5x the
  # budget, with (1, 2) every arm reaches 1.0 (docs/curation.md).
  c.task = config_dict.ConfigDict(dict(
      name="curation_corpus",
      corpus=dict(num_docs=12000, doc_len=96, depth_probs=(0.3, 0.25, 0.2, 0.15, 0.1),
                  code_probs=(0.6, 0.25, 0.15), timeliness_probs=(0.35, 0.2, 0.25, 0.2),
                  cultural_probs=(0.5, 0.3, 0.2), fluency_weight=0.85, planted_frac=0.05,
                  planted_max_fluency=0.25, chain_addends=(1, 2, 3, 4)),
      tier="all", labels="truth", labels_path="", noise=0.1, min_docs=8))
  c.task.filter = config_dict.placeholder(dict)
  c.prompt_len = 8       # unused by a pretrain-only run (no prompts)
  c.max_new_tokens = 8
  c.logprob_impl = "naive"
  c.log_every = 10
  # SPEC §2(c): proxy LMs of 2 layers, d = 64; rows of doc_len = 96 tokens.
  c.model = config_dict.ConfigDict(dict(name="tiny", hf_checkpoint="", overrides=dict(
      num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=2, head_dim=16,
      intermediate_size=192, max_seq_len=96, scan_unroll=2)))
  c.stages = ("pretrain",)
  # The embedder LM: 300 steps x 32 rows x 96 tokens (0.92M tokens) on the whole corpus. The
  # report's arms reuse this section with their own steps.
  c.pretrain = config_dict.ConfigDict(dict(
      steps=300, batch_size=32, learning_rate=3e-3, warmup_steps=20, schedule="cosine",
      min_lr_ratio=0.1))
  # The annotation study at the end of the pretrain stage (study.annotation_evaluator): noise,
  # the teacher's label noise (SPEC: 10%); num_teach / num_heldout documents the heads are
  # trained / scored on; throughput over throughput_docs in batches of batch_size; mlp:
  # HeadCfg (hidden width, steps, batch, lr); classifier: ClassifierCfg (fine-tuning steps).
  c.eval = config_dict.ConfigDict(dict(
      evaluator=dict(name="curation_annotation", noise=0.1, num_teach=4000, num_heldout=2000,
                     throughput_docs=2048, batch_size=256,
                     mlp=dict(hidden=256, steps=600, batch_size=256, learning_rate=3e-3,
                              weight_decay=1e-4),
                     classifier=dict(steps=300, batch_size=64, learning_rate=1e-3,
                                     weight_decay=0.0)),
      every=0, at_stage_end=True, batch_size=256))
  c.checkpoint = config_dict.ConfigDict(dict(every=0, keep=2, async_save=True))
  c.mesh = config_dict.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
  # The two-pass search (study.curation_report): pass 1 ranks the single filters on the low
  # tier at pass1_steps (100 x 32 x 96 = 0.31M tokens, SPEC's T1), pass 2 the AND / OR of each
  # pair of the top_k that keep >= rho_min of the tier, with the baselines, at pass2_steps
  # (330 x 32 x 96 = 1.0M tokens, SPEC's T2). top_k = 3 (three pairs, an AND and an OR of
  # each). probes: "curation_probes" kwargs (probe counts, chain length, seed).
  c.report = config_dict.ConfigDict(dict(
      name="curation_study", pass1_filters=PASS1_FILTERS,
      baselines={"fluency": FLUENCY_BASELINE}, target_tier="low", reference_tier="top",
      top_k=3, rho_min=0.05, pass1_steps=100, pass2_steps=330,
      probes=dict(num_chains=256, num_code=256, chain_steps=4, batch_size=256,
                  probe_seed=12345)))

  if arg == "runlocal":
    c.task.corpus.num_docs = 600
    c.model.overrides.update(num_layers=1, hidden_size=32, num_heads=2, num_kv_heads=1,
                             head_dim=16, intermediate_size=64, scan_unroll=1)
    c.pretrain.update(steps=3, batch_size=8, warmup_steps=1)
    c.eval.evaluator.update(num_teach=200, num_heldout=100, throughput_docs=64, batch_size=32)
    c.eval.evaluator.mlp.update(steps=20, batch_size=64)
    # No classifier fine-tuning (its compile is most of the evaluator's CI time): the throughput
    # and kappa of an untrained head still run; tests/projects/curation/annotation_test.py
    # trains one.
    c.eval.evaluator.classifier.update(steps=0, batch_size=16)
    c.report.pass1_filters = PASS1_FILTERS[:1] + PASS1_FILTERS[2:3]
    c.report.update(top_k=2, pass1_steps=2, pass2_steps=2)
    c.report.probes.update(num_chains=16, num_code=16, batch_size=64)
  elif arg:
    raise ValueError(f"configs/curation_tiny.py: unknown config argument {arg!r}; expected "
                     "none or 'runlocal'")
  return config_defaults.overridable(c)
