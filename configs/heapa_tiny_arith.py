"""HeaPA (arXiv 2601.22448) on the tiny arithmetic task: one RL arm per config argument.

Every arm runs the quickstart's SFT (identical params for every arm) and then RL with the same
seed, prompts per step, group size, loss and eval, and differs only in where prompts come from:

  uniform        passes over the train prompts without replacement ("epochs")
  dynamic        uniform + DAPO dynamic sampling (draw again until every kept group varies)
  heap           the HeaPA pool, no augmentation (boundary sampling, archive, reinsertion)
  heap_aug       + augmentation: the programmatic perturber, exact validator in a thread
  heap_aug_path  + PathAgg re-estimation of the archive at reinsertion
  heap_aug_policy  heap_aug with the policy itself writing the numbers (not in the main study)
  heap_aug_band  heap_aug augmenting only prompts with group-mean reward in (0.1, 0.7) (the
                 authors' slime port; not in the main study)

The study (docs/heapa.md): the shared SFT once, then one arm per run into sibling workdirs;
every run's report rewrites the study table and plots in the parent directory from the arms
found there:

    W=runs/heapa
    python -m rl_jax.main --config=configs/heapa_tiny_arith.py:sft --workdir=$W/sft --export_hf=$W/sft_hf
    for arm in uniform dynamic heap heap_aug heap_aug_path; do
      python -m rl_jax.main --config=configs/heapa_tiny_arith.py:$arm --workdir=$W/$arm \
          --config.stages='("rl",)' --config.model.hf_checkpoint=$W/sft_hf
    done

(Without the two overrides an arm trains the same SFT itself first.)

Append ",runlocal" to an arm (`:heap_aug_path,runlocal`) for the CI shrink; no argument is
`heap_aug_path`.
"""
from rl_jax import config_defaults as common

ARMS = ("uniform", "dynamic", "heap", "heap_aug", "heap_aug_path", "heap_aug_policy",
        "heap_aug_band")
# "sft": only the shared SFT stage (export it once with --export_hf and start every arm from it).
ARGS = ARMS + ("sft",)

# The HeaPA pool's settings shared by the heap arms (`rl_jax.algorithms.heapa.heapa_source`
# documents every key). pool_size: the RL prompt set, RL_POOL problems drawn once from the task's
# sampler (fresh sums the SFT stage never showed solved; the arms' shared dataset, as DAPO-Math
# is in the paper: RL on the 1,200 SFT problems themselves lowered held-out accuracy in every arm,
# docs/heapa.md); max_pool_size: the pool holds the whole set plus 400 variants;
# sampling_mode / low_fraction: the authors' released recipe (median boundary, medium_only);
# refresh "none" (PathAgg only in heap_aug_path); one variant per drawn prompt, difficulty
# clamp [0.75, 1.33] (the authors'); one validator thread; pool/hist_* over [0, 1] in 10 bins.
RL_POOL = 2000
HEAP = dict(name="heapa", pool_size=RL_POOL, max_pool_size=RL_POOL + 400,
            sampling_mode="medium_only", low_fraction=0.5,
            rebalance_moves=4, refresh="none", num_per_prompt=1,
            difficulty_range=(0.75, 1.33), validator_threads=1, histogram_bins=10,
            reward_range=(0.0, 1.0))
# The programmatic perturber (SPEC-level stand-in for the policy rewrite, docs/heapa.md):
# change each operand with probability 0.5 by a shift of at most 30.
PERTURB = dict(name="arith_perturb", change_prob=0.5, max_shift=30)


def arm_source(arm: str) -> dict:
  """The rl.prompt_source of an arm."""
  if arm in ("uniform", "dynamic"):
    return {"name": "epochs", "pool_size": RL_POOL}
  source = dict(HEAP)
  if arm == "heap":
    return source
  source["validator"] = {"name": "arith_exact"}
  source["augmenter"] = (dict(PERTURB) if arm != "heap_aug_policy"
                         else {"name": "arith_policy", "temperature": 1.0})
  if arm == "heap_aug_path":
    source["refresh"] = "path"
  if arm == "heap_aug_band":
    source["augment_band"] = (0.1, 0.7)
  return source


def get_config(arg=None):
  parts = [p for p in (arg or "").split(",") if p]
  runlocal = "runlocal" in parts
  arms = [p for p in parts if p != "runlocal"]
  if len(arms) > 1 or (arms and arms[0] not in ARGS):
    raise ValueError(f"configs/heapa_tiny_arith.py: argument {arg!r}: expected one of {ARGS}, "
                     "optionally followed by ',runlocal'")
  arm = arms[0] if arms else "heap_aug_path"

  c = common.base_config()
  c.imports = ("rl_jax.projects.heapa",)
  # The quickstart's calibrated start: the tiny model, SFT on the 1200 train problems (held-out
  # greedy accuracy about 0.34), then RL, where GRPO is known to add points within ~100 steps.
  # Every arm runs the same SFT (same seed: identical params) before its RL stage.
  c.task.train_size = 1200
  c.task.eval_size = 200
  c.rl.algorithm = "grpo"
  c.rl.steps = 150
  c.rl.prompts_per_step = 64
  c.rl.group_size = 8
  c.rl.learning_rate = 2e-4
  c.rl.prompt_source = arm_source("uniform" if arm == "sft" else arm)
  c.rl.dynamic_sampling = arm == "dynamic"
  c.rl.max_draws = 4
  c.eval.every = 5
  c.eval.batch_size = 200
  # The study report: rl_jax/projects/heapa/report.py. target: held-out greedy accuracy whose
  # first crossing defines "rollout tokens to target" (SFT start: 0.335); extra_targets: more
  # targets reported beside it; study_dir "..": the arms' parent directory.
  c.report = {"name": "heapa", "target": 0.45, "study_dir": "..",
              "extra_targets": (0.35, 0.4, 0.5)}
  if arm == "sft":
    c.stages, c.report = ("sft",), {}

  def shrink(c):
    c.rl.steps = 4
    c.rl.prompts_per_step = 4
    c.rl.group_size = 4
    c.task.train_size = 12
    c.stages = ("rl",)  # from the bundled SFT checkpoint (shrink_for_ci)
    c.task.eval_size = 16
    c.eval.every = 2
    c.eval.batch_size = 16
    c.rl.max_draws = 8
    if c.rl.prompt_source["name"] == "heapa":
      c.rl.prompt_source = dict(c.rl.prompt_source, max_pool_size=16)
    c.rl.prompt_source = dict(c.rl.prompt_source, pool_size=12)
    c.report = dict(c.report, target=0.5)

  return common.finish(c, "runlocal" if runlocal else None, shrink)
