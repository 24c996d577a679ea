"""The probe suite of the curation study (SPEC §2(c) "Probes"; the benchmark groups of
arXiv 2606.07778: reasoning, coding, knowledge), scored teacher-forced on the proxy LM.

  reasoning  4-step arithmetic chains ". a + b = s , + c = s' ...": at every result slot, is the
             argmax over the ten digits the true running total (mod 10)? The added digits are
             the corpus's `chain_addends`.
  coding     bracket snippets "code ( [ { } ] ) end": at every slot whose next token closes a
             bracket, is the argmax over the three closers the matching one?
  knowledge  ". elemK is" -> its evergreen value (argmax over values) and ". cityK mayor" -> the
             current epoch's mayor (argmax over persons; stale pages teach outdated ones).

Each probe's accuracy is the mean over its scored slots; `probe_mean` is their mean. Registered
as evaluator "curation_probes" (metrics `eval/reasoning`, `eval/coding`, `eval/knowledge`,
`eval/probe_mean`).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from rl_jax.eval.hooks import EVALUATORS
from rl_jax.models import qwen3
from rl_jax.projects.curation import corpus as corpus_lib
from rl_jax.projects.curation.task import world
from rl_jax.tokenizers import WordTokenizer

PROBES = ("reasoning", "coding", "knowledge")


@dataclasses.dataclass(frozen=True)
class ProbeSet:
  """Probe sequences padded to one length: tokens / valid [M, T]; at slot t the model's
  prediction of token t+1 is scored where score_mask[t], over the candidate ids of row
  `cand_row[t]` of `candidates` (the argmax among them must equal target[t]); group[M] is the
  probe of each sequence."""
  tokens: np.ndarray
  valid: np.ndarray
  score_mask: np.ndarray
  target: np.ndarray
  cand_row: np.ndarray
  candidates: np.ndarray
  group: np.ndarray


def build_probes(tok: WordTokenizer, facts: corpus_lib.WorldFacts, *,
                 num_chains: int, num_code: int, chain_steps: int, seed: int,
                 addends=corpus_lib.ALL_DIGITS) -> ProbeSet:
  """The suite from numpy seed [seed, 99] (module docstring); chains add digits of `addends`
  (the corpus's `chain_addends`)."""
  rng = np.random.default_rng([seed, 99])
  cand = [[tok.token_id(d) for d in corpus_lib.DIGITS],
          [tok.token_id(c) for c in corpus_lib.CLOSE],
          [tok.token_id(f"val{v}") for v in range(corpus_lib.N_VALUES)],
          [tok.token_id(f"pers{p}") for p in range(corpus_lib.N_PERSONS)]]
  width = max(len(c) for c in cand)
  candidates = np.asarray([c + [c[0]] * (width - len(c)) for c in cand], np.int32)
  seqs = []  # (words, {slot of the word to predict: candidate row}, group)
  for _ in range(num_chains):
    words = ["."] + corpus_lib.chain_sentence(chain_steps, rng, addends)
    seqs.append((words, {i: 0 for i, w in enumerate(words) if i > 0 and words[i - 1] == "="},
                 0))
  for _ in range(num_code):
    words = ["."] + corpus_lib.code_sentence(rng)
    seqs.append((words, {i: 1 for i, w in enumerate(words) if w in corpus_lib.CLOSE}, 1))
  for k in range(corpus_lib.N_ELEMENTS):
    seqs.append(([".", f"elem{k}", "is", f"val{facts.element_value[k]}"], {3: 2}, 2))
  for k in range(corpus_lib.N_CITIES):
    seqs.append(([".", f"city{k}", "mayor", f"pers{facts.mayor[facts.current_epoch, k]}"],
                 {3: 3}, 2))
  t = max(len(w) for w, _, _ in seqs)
  m = len(seqs)
  tokens = np.full((m, t), tok.pad_id, np.int32)
  valid = np.zeros((m, t), bool)
  score_mask = np.zeros((m, t), bool)
  target = np.zeros((m, t), np.int32)
  cand_row = np.zeros((m, t), np.int32)
  for r, (words, scored, _) in enumerate(seqs):
    ids = tok.encode(" ".join(words))
    tokens[r, :len(ids)], valid[r, :len(ids)] = ids, True
    for i, row in scored.items():  # predicted at slot i - 1
      score_mask[r, i - 1], target[r, i - 1], cand_row[r, i - 1] = True, ids[i], row
  return ProbeSet(tokens, valid, score_mask, target, cand_row, candidates,
                  np.asarray([g for _, _, g in seqs], np.int32))


def probe_hits(params, tokens_BxT, valid_BxT, target_BxT, cand_row_BxT, candidates_RxC, *,
               cfg) -> jax.Array:
  """bool [B, T]: at each slot, is the argmax over the slot's candidates the target?"""
  positions = qwen3.positions_from_mask(valid_BxT)
  hidden, _ = qwen3.forward(params, tokens_BxT, positions, valid_BxT, cfg=cfg)
  logits_BxTxV = qwen3.logits(params, hidden, cfg=cfg)
  cand_BxTxC = candidates_RxC[cand_row_BxT]
  cand_logits = jnp.take_along_axis(logits_BxTxV, cand_BxTxC, axis=-1)
  best = jnp.take_along_axis(cand_BxTxC, jnp.argmax(cand_logits, -1)[..., None], -1)[..., 0]
  return best == target_BxT


def score(params, probes: ProbeSet, *, cfg, batch_size: int = 256) -> dict[str, float]:
  """{probe: accuracy} and probe_mean on `params`."""
  fn = jax.jit(functools.partial(probe_hits, cfg=cfg))
  hits = []
  m = len(probes.tokens)
  for start in range(0, m, batch_size):
    sl = slice(start, start + batch_size)
    arrays = [probes.tokens[sl], probes.valid[sl], probes.target[sl], probes.cand_row[sl]]
    k = len(arrays[0])
    arrays = [np.concatenate([a, np.repeat(a[-1:], batch_size - k, 0)]) for a in arrays]
    hits.append(np.asarray(fn(params, *arrays, probes.candidates))[:k])
  hits = np.concatenate(hits)
  out = {}
  for g, name in enumerate(PROBES):
    rows = probes.group == g
    out[name] = float(hits[rows][probes.score_mask[rows]].mean())
  out["probe_mean"] = float(np.mean([out[p] for p in PROBES]))
  return out


@EVALUATORS.register("curation_probes")
def probes_evaluator(*, ctx, num_chains: int = 256, num_code: int = 256, chain_steps: int = 4,
                     batch_size: int = 256, probe_seed: int = 12345):
  """The probe suite (module docstring) on the stage's params: num_chains arithmetic chains of
  chain_steps steps, num_code bracket snippets and every fact of the world; probe_seed fixes
  the probe draws (the same for every arm of a study)."""
  corpus, _ = world(ctx.seed, ctx.exp.task.get("corpus"))
  addends = corpus_lib.CorpusCfg(**dict(ctx.exp.task.get("corpus") or {})).chain_addends
  probes = build_probes(ctx.tokenizer, corpus.facts, num_chains=num_chains, num_code=num_code,
                        chain_steps=chain_steps, seed=probe_seed, addends=tuple(addends))

  def evaluate(params, key, *, stage: str = "", kind: str = "", step: int = 0,
               final: bool = False):
    return {f"eval/{k}": v for k, v in score(params, probes, cfg=ctx.model_cfg,
                                             batch_size=batch_size).items()}, None

  return evaluate
