"""Shopping MMLU's parsing and metric rules, one function per rule (arXiv 2410.20745).

Every rule follows the benchmark's released skill-wise evaluation (`skill_wise_eval/metrics.py` of
the authors' code), quirks included, so scores are comparable with published numbers; the few
places where the reference raises or returns NaN are defined here and listed in docs/eval.md.

  multiple choice  accuracy(g, label) = 1[strip_spaces(g)[0] == label]; only spaces are stripped,
                   so "\\n2" is wrong and " 2" is right; "" scores 0. Labels "0".."3", or "1".."5"
                   for review-rating tasks.
  retrieval        hit@3(g, truth) = |set(truth) & set(first 3 ints of g)| / len(truth): g is
                   stripped, split on ",", every piece that Python's int() accepts is kept (others
                   are skipped), duplicates stay in the list but count once in the set. Quirk of
                   the reference, kept: when g has a newline its first line is computed but then
                   discarded, so the whole g is split on commas ("1,2\\n3,4" -> 1, 4).
  ranking          NDCG(g, rel) with g's first line split on ",", non-ints skipped, truncated to
                   len(rel); item id k (1-based) has relevance rel[k-1] (Python indexing, so id 0
                   reads rel[-1], as in the reference) and 0 past the end;
                   DCG = sum_i (2^rel_i - 1) / log2(i + 1) over positions i = 1..; IDCG the same
                   over rel sorted descending. Duplicates are counted at every position.
  NER              per example TP = |set(pred) & set(truth)|, FP = len(pred) - TP, FN =
                   len(truth) - TP, with pred = the first line (after leading newlines) split on
                   ",", empty pieces dropped, lower-cased and space-stripped; truth lower-cased.
                   The task score is micro-F1 of the TP/FP/FN pooled over the whole task.
  generation       ROUGE-L F-measure with the Porter stemmer (`rouge-score`); BLEU from
                   `sacrebleu` (13a tokenizer, or ja-mecab for Japanese, lowercase=True,
                   exp smoothing: the defaults of the `evaluate` wrapper the reference calls) on
                   g's first line, divided by 100; embedding cosine through an `Embedder`, the
                   mean over a list of references, clipped at 0.
"""
from __future__ import annotations

import functools
import zlib
from typing import Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

SYSTEM_PROMPT = ("You are a helpful online shopping assistant. Please answer the following "
                 "question about online shopping and follow the given instructions.\n\n")


# ---- multiple choice ------------------------------------------------------------------------

def mc_first_char(generation: str) -> str:
  """The answer the reference reads: the first character after stripping spaces ("" if none)."""
  g = generation.strip(" ")
  return g[0] if g else ""


def mc_accuracy(generation: str, label: str) -> float:
  """1.0 iff the first character of the space-stripped generation equals the label string."""
  first = mc_first_char(generation)
  return float(first != "" and first == str(label))


# ---- retrieval ------------------------------------------------------------------------------

def _ints(pieces: Iterable[str]) -> list[int]:
  """Every piece Python's int() accepts (surrounding whitespace allowed), in order."""
  out = []
  for piece in pieces:
    try:
      out.append(int(piece))
    except ValueError:
      continue
  return out


def retrieved_ids(generation: str, k: int = 3) -> list[int]:
  """The first k integers of the stripped generation split on commas (reference quirk: the
  first-line cut is not applied, module docstring)."""
  return _ints(generation.strip().split(","))[:k]


def hit_rate(generation: str, truth: Sequence[int], k: int = 3) -> float:
  """hit@k = |set(truth) & set(retrieved)| / len(truth)."""
  if len(truth) == 0:
    raise ValueError("hit_rate: the truth list is empty (the reference divides by len(truth))")
  return len(set(truth) & set(retrieved_ids(generation, k))) / len(truth)


# ---- ranking --------------------------------------------------------------------------------

def ranked_ids(generation: str, num_items: int) -> list[int]:
  """The ranking the reference reads: the first line (when there is a newline, after trimming
  newlines at both ends), stripped, split on commas, ints kept, truncated to `num_items`."""
  if "\n" in generation:
    generation = generation.strip("\n").split("\n")[0]
  return _ints(generation.strip().split(","))[:num_items]


def dcg(ranked: Sequence[int], relevance: Sequence[float]) -> float:
  """sum_i (2^rel(ranked_i) - 1) / log2(i + 1), i = 1.. (reference indexing, module doc)."""
  total = 0.0
  for i, item in enumerate(ranked):
    idx = item - 1
    rel = relevance[idx] if -len(relevance) <= idx < len(relevance) else 0.0
    total += (2.0 ** rel - 1.0) / np.log2(i + 2)
  return float(total)


def ndcg(ranked: Sequence[int], relevance: Sequence[float]) -> float:
  """DCG(ranked) / DCG(ideal); 0.0 when every relevance is 0 (the reference gives 0/0 = NaN)."""
  ideal = dcg(list(np.argsort(-np.asarray(relevance, np.float64), kind="stable") + 1), relevance)
  return dcg(ranked, relevance) / ideal if ideal > 0 else 0.0


def ndcg_eval(generation: str, relevance: Sequence[float]) -> float:
  return ndcg(ranked_ids(generation, len(relevance)), relevance)


# ---- named entity recognition ---------------------------------------------------------------

def ner_entities(generation: str) -> list[str]:
  """First line after leading newlines, space-stripped, split on ",", "" dropped, each lower-cased
  and space-stripped (a piece of spaces only becomes "" and is kept, as in the reference)."""
  line = generation.lstrip("\n").split("\n")[0].strip(" ")
  return [a.lower().strip(" ") for a in line.split(",") if a != ""]


def ner_counts(generation: str, truth: Sequence[str]) -> tuple[int, int, int]:
  """(TP, FP, FN) of one example (module docstring)."""
  pred = ner_entities(generation)
  gold = [t.lower() for t in truth]
  tp = len(set(pred) & set(gold))
  return tp, len(pred) - tp, len(gold) - tp


def micro_f1(counts: Iterable[tuple[int, int, int]]) -> float:
  """F1 of the pooled counts: P = TP / (TP + FP), R = TP / (TP + FN), F1 = 2PR / (P + R).

  When TP + FP = 0 (no entity predicted anywhere) or TP + FN = 0 the reference raises
  ZeroDivisionError; here that precision / recall is 0, so the F1 is 0.
  """
  tp = fp = fn = 0
  for a, b, c in counts:
    tp, fp, fn = tp + a, fp + b, fn + c
  precision = tp / (tp + fp) if tp + fp else 0.0
  recall = tp / (tp + fn) if tp + fn else 0.0
  return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


# ---- generation -----------------------------------------------------------------------------

@functools.cache
def _rouge_l_scorer():
  from rouge_score import rouge_scorer  # pylint: disable=g-import-not-at-top
  return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(generation: str, truth: str) -> float:
  """ROUGE-L F-measure with stemming (Lin 2004), from Google's `rouge-score` (the scorer is
  symmetric in its two arguments' F-measure; the reference passes (generation, truth))."""
  return float(_rouge_l_scorer().score(generation, truth)["rougeL"].fmeasure)


def bleu(generation: str, truth: str, japanese: bool = False) -> float:
  """Sentence BLEU / 100 of the first line (after trimming newlines) against one reference."""
  import sacrebleu  # pylint: disable=g-import-not-at-top
  line = generation.strip("\n").split("\n")[0]
  tokenize = "ja-mecab" if japanese else "13a"
  try:
    result = sacrebleu.corpus_bleu([line], [[truth]], lowercase=True, tokenize=tokenize)
  except (ImportError, RuntimeError) as e:  # ja-mecab needs `pip install sacrebleu[ja]`
    raise RuntimeError(f"BLEU with tokenize={tokenize!r}: {e}; for Japanese tasks install "
                       "sacrebleu[ja]") from e
  return float(result.score / 100.0)


@runtime_checkable
class Embedder(Protocol):
  """embed(texts) -> float array [len(texts), d]; rows need not be normalised."""

  def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
  """cos(a, b); 0 when either vector is 0 (the reference's 0/0 is NaN, which it clips to 0)."""
  denom = float(np.linalg.norm(a) * np.linalg.norm(b))
  return float(np.dot(a, b) / denom) if denom > 0 else 0.0


def embedding_similarity(generation: str, truth: str | Sequence[str], embedder: Embedder
                         ) -> float:
  """max(0, cos(e(g), e(t))); for a list of references max(0, mean_j cos(e(g), e(t_j)))."""
  refs = [truth] if isinstance(truth, str) else list(truth)
  if not refs:
    raise ValueError("embedding_similarity: the reference list is empty")
  vecs = np.asarray(embedder.embed([generation] + refs), np.float64)
  return max(0.0, float(np.mean([_cosine(vecs[0], v) for v in vecs[1:]])))


class NgramEmbedder:
  """The default, download-free tiny encoder: signed feature hashing of character n-grams.

  A text is lower-cased and padded with spaces; each character n-gram (n in `ngram_sizes`) adds
  +-1 to coordinate crc32(gram) mod dim (sign from another bit of the hash), then the vector is
  L2-normalised. Texts that share words and word pieces get high cosine; it stands in for the
  benchmark's sentence-transformers on synthetic data, where paraphrase knowledge is moot.
  """

  def __init__(self, dim: int = 1024, ngram_sizes: Sequence[int] = (3, 4)):
    if dim < 1 or not ngram_sizes or min(ngram_sizes) < 1:
      raise ValueError(f"NgramEmbedder: dim={dim} must be >= 1 and ngram_sizes={ngram_sizes} "
                       "positive")
    self.dim, self.ngram_sizes = int(dim), tuple(int(n) for n in ngram_sizes)

  def embed(self, texts: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(texts), self.dim), np.float64)
    for row, text in enumerate(texts):
      padded = f" {' '.join(text.lower().split())} "
      for n in self.ngram_sizes:
        for i in range(len(padded) - n + 1):
          h = zlib.crc32(padded[i:i + n].encode("utf-8"))
          out[row, h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
      norm = np.linalg.norm(out[row])
      if norm > 0:
        out[row] /= norm
    return out


class SentenceTransformerEmbedder:
  """The benchmark's own embedders (`all-MiniLM-L6-v2`, multilingual
  `paraphrase-multilingual-MiniLM-L12-v2`) through `sentence-transformers`; optional (not a
  dependency of rl_jax, downloads the model): chosen with `--embedder=sentence-transformers`."""

  def __init__(self, model_name: str = "all-MiniLM-L6-v2"):
    try:
      from sentence_transformers import SentenceTransformer  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError("--embedder=sentence-transformers needs `pip install "
                        "sentence-transformers`; the default embedder is 'ngram'") from e
    self.model = SentenceTransformer(model_name)

  def embed(self, texts: Sequence[str]) -> np.ndarray:
    return np.asarray(self.model.encode(list(texts)), np.float64)
