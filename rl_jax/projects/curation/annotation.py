"""Annotation at corpus scale (SPEC §2(a) steps 1-4; arXiv 2606.07778): the `Annotator` and
`Embedder` protocols, the multi-task MLP head over frozen embeddings, the transformer
classifier it is compared with, and the agreement / redundancy / throughput measurements.

  Annotator.annotate(texts) -> {dim: int [N]}      the teacher (default: the oracle, the latent
                                                  attributes with `noise` label noise)
  Embedder.embed(texts) -> float32 [N, D]          default: mean-pooled final hidden states of
                                                  a frozen tiny Qwen3 LM (`rl_jax.models.qwen3`)
  MultiTaskMLP                                     shared 2-layer trunk, one softmax head per
                                                  dimension (the heads are slices of one output
                                                  layer), loss sum_d CE_d
  transformer classifier                           the same Qwen3 fine-tuned with the same heads
                                                  on its mean-pooled states (the "student")

Agreement is Cohen's kappa, kappa = (p_o - p_e) / (1 - p_e), per dimension
(`sklearn.metrics.cohen_kappa_score`); redundancy is the NMI matrix,
NMI(X, Y) = 2 I(X; Y) / (H(X) + H(Y)) (`sklearn.metrics.normalized_mutual_info_score`, its
arithmetic-mean default).
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.metrics import cohen_kappa_score, normalized_mutual_info_score

from rl_jax.models import qwen3
from rl_jax.models.config import ModelConfig


@runtime_checkable
class Annotator(Protocol):
  """annotate(texts) -> {dim: int labels [N]}, one label per document and taxonomy dimension.
  `identity` names the implementation and its settings (as in `rl_jax.intelligence`)."""
  identity: str

  def annotate(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
    ...


@runtime_checkable
class Embedder(Protocol):
  """embed(texts) -> float32 [N, D] document embeddings."""
  identity: str

  def embed(self, texts: Sequence[str]) -> np.ndarray:
    ...


class OracleAnnotator:
  """The teacher of the synthetic corpus: the true labels of each known document, each replaced
  by a uniformly drawn class with probability `noise` (independently per document and
  dimension; a replacement may draw the true class again). Deterministic given `seed`."""

  def __init__(self, truth: Mapping[str, np.ndarray], texts: Sequence[str],
               num_classes: Mapping[str, int], noise: float = 0.1, seed: int = 0):
    if not 0 <= noise <= 1:
      raise ValueError(f"config annotation.noise must be in [0, 1], got {noise}")
    self.index = {t: i for i, t in enumerate(texts)}
    self.truth, self.num_classes, self.noise, self.seed = truth, num_classes, noise, seed
    self.identity = f"oracle(noise={noise},seed={seed})"

  def annotate(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
    rows = np.asarray([self.index[t] for t in texts], np.int64)
    out = {}
    for d, (dim, n) in enumerate(self.num_classes.items()):
      # The noise of document i depends only on (seed, dim, i): any batching gives the same.
      draws = np.random.default_rng([self.seed, d]).random((len(self.index), 2))[rows]
      flip = draws[:, 0] < self.noise
      random_class = np.minimum((draws[:, 1] * n).astype(np.int64), n - 1)
      out[dim] = np.where(flip, random_class, self.truth[dim][rows])
    return out


def mean_pool(hidden_BxTxD: jax.Array, valid_BxT: jax.Array) -> jax.Array:
  """e = sum_t valid_t h_t / sum_t valid_t (float32 [B, D])."""
  w = valid_BxT.astype(jnp.float32)[..., None]
  return jnp.sum(hidden_BxTxD.astype(jnp.float32) * w, 1) / jnp.maximum(jnp.sum(w, 1), 1.0)


def lm_embed(params, tokens_BxT, valid_BxT, *, cfg: ModelConfig) -> jax.Array:
  """Mean-pooled final hidden states of the LM (float32 [B, D])."""
  positions = qwen3.positions_from_mask(valid_BxT)
  hidden, _ = qwen3.forward(params, tokens_BxT, positions, valid_BxT, cfg=cfg)
  return mean_pool(hidden, valid_BxT)


def batched(fn: Callable[..., jax.Array], arrays: Sequence[np.ndarray], batch_size: int
            ) -> np.ndarray:
  """fn over fixed-size row chunks of `arrays` (the last chunk padded by repeating its last
  row, so one compiled shape serves every chunk); the outputs concatenated, padding dropped."""
  n = len(arrays[0])
  outs = []
  for start in range(0, n, batch_size):
    chunk = [a[start:start + batch_size] for a in arrays]
    k = len(chunk[0])
    if k < batch_size:
      chunk = [np.concatenate([c, np.repeat(c[-1:], batch_size - k, 0)]) for c in chunk]
    outs.append(np.asarray(fn(*chunk))[:k])
  return np.concatenate(outs)


class LMEmbedder:
  """Embedder: the frozen LM's mean-pooled final hidden states (`lm_embed`), on token ids of
  `tokenizer` (documents of the same length; no padding needed)."""

  def __init__(self, params, cfg: ModelConfig, tokenizer, batch_size: int = 256):
    self.params, self.cfg, self.tokenizer, self.batch_size = params, cfg, tokenizer, batch_size
    self.identity = f"lm_mean_pool(layers={cfg.num_layers},d={cfg.hidden_size})"
    self._fn = jax.jit(functools.partial(lm_embed, cfg=cfg))

  def embed_batch(self, tokens_BxT: np.ndarray) -> jax.Array:
    """One batch of token ids (all valid) -> embeddings [B, D] (jitted)."""
    return self._fn(self.params, tokens_BxT, np.ones(tokens_BxT.shape, bool))

  def embed_ids(self, tokens_NxT: np.ndarray) -> np.ndarray:
    valid = np.ones(tokens_NxT.shape, bool)
    return batched(lambda t, v: self._fn(self.params, t, v), (tokens_NxT, valid),
                   self.batch_size)

  def embed(self, texts: Sequence[str]) -> np.ndarray:
    return self.embed_ids(np.asarray([self.tokenizer.encode(t) for t in texts], np.int32))


class MultiTaskMLP(nnx.Module):
  """x -> standardise -> gelu(W1 x) -> gelu(W2 h) -> logits of every dimension (one output
  layer whose column blocks are the per-dimension softmax heads)."""

  def __init__(self, d_in: int, hidden: int, num_classes: Sequence[int], *, rngs: nnx.Rngs):
    self.trunk1 = nnx.Linear(d_in, hidden, rngs=rngs)
    self.trunk2 = nnx.Linear(hidden, hidden, rngs=rngs)
    self.heads = nnx.Linear(hidden, int(sum(num_classes)), rngs=rngs)
    self.mean = nnx.Variable(jnp.zeros((d_in,)))
    self.scale = nnx.Variable(jnp.ones((d_in,)))

  def __call__(self, x_BxD):
    x = (x_BxD - self.mean[...]) * self.scale[...]
    h = jax.nn.gelu(self.trunk2(jax.nn.gelu(self.trunk1(x))))
    return self.heads(h)


def split_logits(logits_BxC: jax.Array, num_classes: Sequence[int]) -> list[jax.Array]:
  bounds = np.cumsum([0] + list(num_classes))
  return [logits_BxC[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def multitask_loss(logits_BxC, labels_BxK, num_classes: Sequence[int]) -> jax.Array:
  """sum_d mean_b CE(logits_d[b], label_d[b])."""
  losses = [optax.softmax_cross_entropy_with_integer_labels(l, labels_BxK[:, d]).mean()
            for d, l in enumerate(split_logits(logits_BxC, num_classes))]
  return sum(losses)


def predict(logits_BxC, num_classes: Sequence[int]) -> jax.Array:
  """int [B, K]: the argmax class of every head."""
  return jnp.stack([jnp.argmax(l, -1) for l in split_logits(logits_BxC, num_classes)], -1)


@dataclasses.dataclass(frozen=True)
class HeadCfg:
  """The MLP head's trainer (config `eval.evaluator.mlp`): hidden width, AdamW steps on
  mini-batches of `batch_size` embeddings, learning rate, weight decay."""
  hidden: int = 256
  steps: int = 600
  batch_size: int = 256
  learning_rate: float = 3e-3
  weight_decay: float = 1e-4


def train_mlp(emb_NxD: np.ndarray, labels_NxK: np.ndarray, num_classes: Sequence[int],
              cfg: HeadCfg, seed: int) -> tuple[MultiTaskMLP, list[float]]:
  """Fits the multi-task MLP on (embedding, teacher labels); returns it and its loss curve."""
  model = MultiTaskMLP(emb_NxD.shape[1], cfg.hidden, num_classes, rngs=nnx.Rngs(seed))
  model.mean[...] = jnp.asarray(emb_NxD.mean(0))
  model.scale[...] = jnp.asarray(1.0 / (emb_NxD.std(0) + 1e-6))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx = optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      return multitask_loss(nnx.merge(graphdef, p, rest)(x), y, num_classes)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng([seed, 1])
  losses = []
  for _ in range(cfg.steps):
    rows = rng.choice(len(emb_NxD), min(cfg.batch_size, len(emb_NxD)), replace=False)
    params, opt_state, loss = step(params, opt_state, emb_NxD[rows], labels_NxK[rows])
    losses.append(float(loss))
  return nnx.merge(graphdef, params, rest), losses


def mlp_predictor(model: MultiTaskMLP, num_classes: Sequence[int]) -> Callable:
  """jitted embeddings [B, D] -> labels [B, K]."""
  graphdef, state = nnx.split(model)
  fn = jax.jit(lambda s, x: predict(nnx.merge(graphdef, s)(x), num_classes))
  return lambda x: fn(state, x)


@dataclasses.dataclass(frozen=True)
class ClassifierCfg:
  """The transformer classifier (config `eval.evaluator.classifier`): AdamW steps fine-tuning
  every weight of the Qwen3 and its heads on mini-batches of `batch_size` documents."""
  steps: int = 300
  batch_size: int = 64
  learning_rate: float = 1e-3
  weight_decay: float = 0.0


def classifier_logits(params, tokens_BxT, valid_BxT, *, cfg: ModelConfig) -> jax.Array:
  """Qwen3 -> mean-pooled final hidden states -> one linear layer over every head."""
  e = lm_embed(params["lm"], tokens_BxT, valid_BxT, cfg=cfg)
  return e @ params["head"]["kernel"] + params["head"]["bias"]


def train_classifier(lm_params, cfg: ModelConfig, tokens_NxT: np.ndarray, labels_NxK: np.ndarray,
                     num_classes: Sequence[int], ccfg: ClassifierCfg, seed: int
                     ) -> tuple[Any, list[float]]:
  """Fine-tunes the LM with a classification head on (document, teacher labels); 0 steps
  returns the LM with an untrained head."""
  key = jax.random.key(seed)
  head = {"kernel": jax.random.normal(key, (cfg.hidden_size, int(sum(num_classes))))
                    * cfg.hidden_size ** -0.5,
          "bias": jnp.zeros((int(sum(num_classes)),))}
  params = {"lm": jax.tree.map(jnp.asarray, lm_params), "head": head}
  tx = optax.adamw(ccfg.learning_rate, weight_decay=ccfg.weight_decay)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, tokens, y):
    valid = jnp.ones(tokens.shape, bool)
    def loss_fn(p):
      return multitask_loss(classifier_logits(p, tokens, valid, cfg=cfg), y, num_classes)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng([seed, 2])
  losses = []
  for _ in range(ccfg.steps):
    rows = rng.choice(len(tokens_NxT), min(ccfg.batch_size, len(tokens_NxT)), replace=False)
    params, opt_state, loss = step(params, opt_state, tokens_NxT[rows], labels_NxK[rows])
    losses.append(float(loss))
  return params, losses


def classifier_predictor(params, cfg: ModelConfig, num_classes: Sequence[int]) -> Callable:
  """jitted token ids [B, T] -> labels [B, K]."""
  fn = jax.jit(lambda p, t: predict(
      classifier_logits(p, t, jnp.ones(t.shape, bool), cfg=cfg), num_classes))
  return lambda t: fn(params, t)


def kappas(pred: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray]) -> dict[str, float]:
  """Cohen's kappa of `pred` against `ref` per dimension (sklearn)."""
  return {d: float(cohen_kappa_score(ref[d], pred[d])) for d in ref}


def nmi_matrix(labels: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
  """(dims, [K, K] NMI between every pair of label vectors; arithmetic normalisation)."""
  dims = list(labels)
  m = np.ones((len(dims), len(dims)))
  for i, a in enumerate(dims):
    for j, b in enumerate(dims):
      if i < j:
        m[i, j] = m[j, i] = normalized_mutual_info_score(labels[a], labels[b])
  return dims, m


def docs_per_second(fn: Callable[[np.ndarray], Any], inputs: np.ndarray, batch_size: int,
                    repeats: int = 3) -> float:
  """Documents per second of `fn` over `inputs` in batches of `batch_size` (compiled first; the
  best of `repeats` timed passes, each ending when every result is on the host)."""
  batched(fn, (inputs,), batch_size)  # compile
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    batched(fn, (inputs,), batch_size)
    best = min(best, time.perf_counter() - t0)
  return len(inputs) / best
