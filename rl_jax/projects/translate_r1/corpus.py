"""The cipher world's pretraining corpus as a tfds dataset (the data layer, docs/architecture.md
"Data layer"): the project's own builder, registered from its package (the core never imports it).

Records {"text": one document} of `CipherWorld.pretrain_corpus` (base 40%, High 6%, Low 1%,
XLow 0.1% per language; documents end with "<answer> a </answer>"), drawn with
`default_rng([seed, 3])`, prepared once as ArrayRecord files under the run's data dir
(`rl_jax.data.builders.prepare`). The pretrain stage reads them through grain, packed into rows
with segment ids (`rl_jax.data.loader.packed_batches`).
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from rl_jax.data import builders
from rl_jax.projects.translate_r1 import world as cipher


@dataclasses.dataclass
class CipherCorpusConfig(tfds.core.BuilderConfig):
  """world_seed: the `CipherWorld`; num_docs: documents; seed: the draw of the documents."""
  world_seed: int = 0
  num_docs: int = 1000
  seed: int = 0


def corpus_config(world_seed: int, num_docs: int, seed: int) -> CipherCorpusConfig:
  """The config of these parameters (its name lists them, so no two share files)."""
  return CipherCorpusConfig(name=f"world{world_seed}_docs{num_docs}_seed{seed}",
                            world_seed=world_seed, num_docs=num_docs, seed=seed,
                            description="CipherWorld.pretrain_corpus documents")


class CipherCorpus(builders.LocalBuilder):
  """The mixed-cipher pretraining documents, one split "train", in generation order."""
  name = "rl_jax_translate_r1_cipher_corpus"
  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
        disable_shuffling=True)

  def _split_generators(self, dl_manager):
    del dl_manager  # generated, nothing to download
    return {"train": self._generate_examples()}

  def _generate_examples(self) -> Iterator[tuple[int, dict]]:
    cfg = self.builder_config
    world = cipher.CipherWorld(cfg.world_seed)
    docs = world.pretrain_corpus(cfg.num_docs, np.random.default_rng([cfg.seed, 3]))
    for i, doc in enumerate(docs):
      yield i, {"text": doc}
