"""The shop world's training task (`TASKS` "shop_world") and its word tokenizer.

The train split is `train_per_task` items of every mini-task (rl_jax/projects/shopping_mmlu/
world.py), the held-out split `eval_per_task` items per task whose prompts never occur in train;
the SFT stage trains on all tasks mixed (multitask). `reward_fn` is the item's own metric on one
completion (micro-F1 of one item for NER), so the generic "task" evaluator and RL also work.
"""
from __future__ import annotations

import re

import numpy as np
from typing import Iterable

from rl_jax.eval import suites
from rl_jax.projects.shopping_mmlu import world as shop
from rl_jax.tasks import TASKS, TaskData

_TOKEN = re.compile(r"[a-z]+|\d+|[^\sa-z\d]")
_NO_SPACE_BEFORE = {",", ".", ":", "?"}


class ShopTokenizer:
  """One id per world word, number 0-99 and punctuation mark; <pad>=0, <unk>=1, <s>=2, </s>=3.

  encode splits lower-cased text into words, numbers and single punctuation marks (so separately
  encoded prompt and completion concatenate to the ids the policy samples); decode joins tokens
  with spaces, except before , . : ? (so "1 , 3" decodes as "1, 3", which every parser reads).
  """

  SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")

  def __init__(self, words: Iterable[str]):
    pieces = list(self.SPECIALS) + sorted(set(words) | {",", ".", ":", "?", ";"})
    self.pieces = pieces
    self.ids = {p: i for i, p in enumerate(pieces)}
    self.vocab_size = len(pieces)
    self.pad_id, self.unk_id, self.bos_id, self.eos_id = 0, 1, 2, 3
    self.special_ids = {p: i for i, p in enumerate(self.SPECIALS)}

  def encode(self, text: str) -> list[int]:
    return [self.ids.get(t, self.unk_id) for t in _TOKEN.findall(text.lower())]

  def decode(self, ids, keep_specials: bool = False) -> str:
    out = ""
    for i in ids:
      i = int(i)
      if i in (self.pad_id, self.bos_id, self.eos_id) and not keep_specials:
        continue
      piece = self.pieces[i] if 0 <= i < self.vocab_size else "<unk>"
      out += piece if (not out or piece in _NO_SPACE_BEFORE) else " " + piece
    return out

  def token_id(self, piece: str) -> int:
    if piece not in self.ids:
      raise ValueError(f"ShopTokenizer: unknown piece {piece!r}")
    return self.ids[piece]


def item_reward(item: shop.Item, text: str) -> float:
  """The item's metric on one completion (NER: F1 of this item's TP/FP/FN)."""
  score = suites.example_score(item.metric, text, item.truth, _EMBEDDERS)
  if item.metric == "micro f1":
    return suites.aggregate("micro f1", [score])
  return float(score)


_EMBEDDERS = suites.default_embedders("ngram")


def build_splits(world: shop.ShopWorld, train_per_task: int, eval_per_task: int, seed: int,
                 tasks: tuple[str, ...] = ()) -> tuple[list[shop.Item], list[shop.Item]]:
  """(train, eval) items; eval drawn first, train excludes its prompts."""
  names = list(tasks) or list(shop.task_specs())
  unknown = sorted(set(names) - set(shop.task_specs()))
  if unknown:
    raise ValueError(f"task.tasks: unknown shop-world task(s) {unknown}; known: "
                     f"{sorted(shop.task_specs())}")
  train, held_out = [], []
  for k, name in enumerate(names):
    ev = shop.make_items(world, name, eval_per_task, seed=1_000_003 * (seed + 1) + 2 * k)
    tr = shop.make_items(world, name, train_per_task, seed=1_000_003 * (seed + 1) + 2 * k + 1,
                         exclude={it.prompt for it in ev})
    held_out += ev
    train += tr
  return train, held_out


@TASKS.register("shop_world")
def shop_world_task(*, world_seed: int = 0, num_products: int = 240, train_per_task: int = 400,
                    eval_per_task: int = 50, tasks: tuple[str, ...] = (), seed: int = 0
                    ) -> TaskData:
  """The shop world's mini-tasks (world.py). world_seed: the world (products, ciphers);
  num_products: products in the world; train_per_task / eval_per_task: items per mini-task in
  each split; tasks: a subset of mini-task names (() = all 20); seed: the item draws."""
  world = shop.ShopWorld(world_seed, num_products)
  train, held_out = build_splits(world, train_per_task, eval_per_task, seed, tuple(tasks))
  rng_order = np.random.default_rng(seed).permutation(len(train))
  train = [train[i] for i in rng_order]  # tasks mixed in the train split
  tok = ShopTokenizer(world.vocabulary())
  return TaskData("shop_world", train, held_out, prompt_fn=lambda it: it.prompt,
                  completion_fn=lambda it: it.completion, reward_fn=item_reward, tokenizer=tok)
