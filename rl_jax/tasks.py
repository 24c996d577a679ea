"""Tasks: problems, how to render them, how to score a completion, and optional extras.

A task turns problems into text (prompt, reference completion) and scores a sampled completion.
Registry `TASKS`: "arithmetic" (the quickstart's synthetic addition task) and "gsm8k" (bundled
GSM8K); a project registers its own (`@TASKS.register("name")`, a factory taking the config's
`task` kwargs and `seed`; a factory with a `data_dir` parameter receives the run's data
directory, where the data layer's tfds builders write: `rl_jax.data.builders`).

Both core tasks read their problems through the data layer: the arithmetic problems are the
"rl_jax_arithmetic" tfds dataset, GSM8K the "rl_jax_gsm8k" one, prepared as ArrayRecord files in
`data_dir` (docs/architecture.md "Data layer").
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from rl_jax.data import builders, gsm8k
from rl_jax.envs.arithmetic import ArithmeticTask
from rl_jax.registry import Registry
from rl_jax.rewards import math_answer
from rl_jax.tokenizers import chat_template

TASKS: Registry = Registry("task")


@dataclasses.dataclass(frozen=True)
class TaskData:
  """train / eval problems and how to render and score them.

  prompt_fn(problem) -> prompt text; completion_fn(problem) -> worked solution (SFT target);
  reward_fn(problem, completion_text) -> float (never raises on model text);
  rl_sampler(n, rng) -> n problems for RL prompts (RL needs no solutions, so a generator task
  can draw fresh problems; never from the eval set).
  preference_pairs(**kwargs) -> records (prompt, chosen, rejected), three strings each: the
  pairs of a `preference` stage, kwargs from the config's `preference.pairs` (e.g. which
  negatives); the stage tokenises them (prompt masked out of the loss) and reports malformed
  records by index (`rl_jax.stages.preference`).
  Supervised data through the data layer (`rl_jax.data.loader`; grain, iterator state in the
  checkpoint); each, when set, is used instead of the provider below it:
  pretrain_data() -> `loader.Corpus` (documents packed into rows with segment ids; called as
  pretrain_data(corpus=name) for a stage with `pretrain.corpus`);
  sft_data() -> `loader.Examples` (fixed-layout demonstrations, one permutation per epoch).
  sft_batch / pretrain_batch(batch_size, rng) -> (tokens, valid, loss_mask) numpy [B, L]: a
  provider called with `default_rng([seed, stage_id, step])` (replicated on every process).
  """
  name: str
  train: Sequence[Any]
  eval: Sequence[Any]
  prompt_fn: Callable[[Any], str]
  completion_fn: Callable[[Any], str]
  reward_fn: Callable[[Any, str], float]
  rl_sampler: Callable[[int, np.random.Generator], list] | None = None
  answer_fn: Callable[[str], Any] | None = None
  columns_fn: Callable[[Any], dict] | None = None
  tool_env: Any = None
  tokenizer: Any = None
  stop_ids: tuple[int, ...] = ()
  sft_batch: Callable[[int, np.random.Generator], tuple] | None = None
  pretrain_batch: Callable[[int, np.random.Generator], tuple] | None = None
  preference_pairs: Callable[..., Sequence[tuple[str, str, str]]] | None = None
  pretrain_data: Callable[..., Any] | None = None
  sft_data: Callable[[], Any] | None = None

  def sample_rl(self, n: int, rng: np.random.Generator) -> list:
    if self.rl_sampler is not None:
      return self.rl_sampler(n, rng)
    return [self.train[i] for i in rng.integers(0, len(self.train), size=n)]

  def rewards(self, problems: Sequence[Any], completions: Sequence[str]) -> np.ndarray:
    """float32 [B]; a non-finite reward is a bug in the reward function and stops the run."""
    out = np.asarray([self.reward_fn(p, c) for p, c in zip(problems, completions)], np.float32)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
      raise ValueError(f"task {self.name!r}: reward of sample {int(bad[0])} is {out[bad[0]]}")
    return out


def _last_field(text: str) -> str | None:
  """The arithmetic task's answer: the last comma-separated field (the final running sum)."""
  field = text.strip().rsplit(",", 1)[-1]
  return field or None


@TASKS.register("arithmetic")
def arithmetic_task(*, num_operands: int = 3, num_digits: int = 2, train_size: int = 350,
                    eval_size: int = 200, seed: int = 0, data_dir: str = "", **_) -> TaskData:
  """Sums of `num_operands` numbers of `num_digits` digits (`rl_jax.envs.arithmetic`): train
  and held-out problems from the "rl_jax_arithmetic" tfds dataset in `data_dir` (the run's;
  "" = `builders.default_data_dir()`); RL draws fresh sums, never held-out ones."""
  task = ArithmeticTask(num_operands=num_operands, num_digits=num_digits)
  sources = builders.prepare(builders.Arithmetic, data_dir or builders.default_data_dir(),
                             builders.arithmetic_config(num_operands, num_digits, train_size,
                                                        eval_size, seed))
  train, held_out = (builders.arithmetic_problems(task, sources.get(split, ()))
                     for split in ("train", "eval"))
  held_out_operands = {p.operands for p in held_out}

  def fresh(n, rng):
    out = []
    while len(out) < n:
      out += [p for p in task.sample(n, rng) if p.operands not in held_out_operands]
    return out[:n]

  return TaskData("arithmetic", train, held_out, prompt_fn=lambda p: p.prompt,
                  completion_fn=lambda p: p.completion, reward_fn=task.reward, rl_sampler=fresh,
                  answer_fn=_last_field)


@TASKS.register("gsm8k")
def gsm8k_task(*, train_size: int = 0, eval_size: int = 0, path: str = "", eval_path: str = "",
               seed: int = 0, data_dir: str = "", **_) -> TaskData:
  """GSM8K in the chat format; sizes 0 mean the whole split.

  path / eval_path: JSONL files in GSM8K's format (`{"question", "answer": "... #### x"}` per
  line) to train / evaluate on instead of the bundled splits ("" = bundled); relative paths are
  read from the working directory. Read through the "rl_jax_gsm8k" tfds builder into `data_dir`
  (the run's; "" = `builders.default_data_dir()`): a malformed line stops with its file:line."""
  config = None  # the bundled copy, read as the builder's manual dir (offline)
  if path or eval_path:
    config = builders.gsm8k_files_config(gsm8k.resolve_path("train", path or None),
                                         gsm8k.resolve_path("test", eval_path or None))
  sources = builders.prepare(builders.Gsm8k, data_dir or builders.default_data_dir(), config,
                             manual_dir=gsm8k.ASSET_DIR)
  train, test = (builders.gsm8k_problems(sources[split]) for split in gsm8k.SPLITS)
  rng = np.random.default_rng(seed)
  if train_size:
    train = [train[i] for i in rng.permutation(len(train))[:train_size]]
  if eval_size:
    test = test[:eval_size]
  prompt = lambda p: chat_template([{"role": "user", "content": p.question}])
  completion = lambda p: f"{p.solution}\n#### {p.answer}"
  return TaskData("gsm8k", train, test, prompt_fn=prompt, completion_fn=completion,
                  reward_fn=lambda p, text: math_answer.math_reward(text, p.answer),
                  answer_fn=math_answer.extract_answer,
                  columns_fn=lambda p: {"answer": p.answer})


def make_task(name: str, **kwargs) -> TaskData:
  return TASKS.get(name)(**kwargs)
