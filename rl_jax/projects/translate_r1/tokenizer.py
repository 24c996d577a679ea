"""The Translate-R1 word tokenizer: a SentencePiece word model over the cipher world's vocabulary
and the tool tags, where every piece is one whole word (so separately encoded segments
concatenate to exactly the ids the policy samples)."""
from __future__ import annotations

from rl_jax.projects.translate_r1 import tool as tools
from rl_jax.projects.translate_r1 import world as cipher
from rl_jax.tokenizers import SentencePieceTokenizer, train_sentencepiece

EXTRA_SYMBOLS = (cipher.ANSWER_OPEN, cipher.ANSWER_CLOSE)


class WordTokenizer:
  """A SentencePiece word model whose every piece carries the "▁" word-start marker.

  SentencePiece word models give the first word of a text a different piece than the same word
  after a space; encoding " " + text makes every word (and tag) map to one id, so segments
  encoded separately concatenate to exactly the ids the policy samples.
  """

  def __init__(self, sp: SentencePieceTokenizer):
    self.sp = sp
    self.vocab_size, self.pad_id, self.eos_id = sp.vocab_size, sp.pad_id, sp.eos_id
    self.bos_id, self.special_ids = sp.bos_id, sp.special_ids

  def encode(self, text: str) -> list[int]:
    text = text.strip()
    return self.sp.encode(" " + text) if text else []

  def decode(self, ids, keep_specials: bool = False) -> str:
    return self.sp.decode(ids, keep_specials).strip()

  def token_id(self, piece: str) -> int:
    return self.sp.token_id("\u2581" + piece)


def build_tokenizer(world: cipher.CipherWorld) -> WordTokenizer:
  words = world.vocabulary() + [tools.TRANSLATE]
  # Tags are user-defined symbols; "translate" gets lines of its own (measured: a word model
  # dropped it when it shared a line with the tags).
  texts = ([" " + " ".join(words[i:i + 50]) for i in range(0, len(words), 50)]
           + [" " + tools.TRANSLATE] * 2 + [" " + " ".join(EXTRA_SYMBOLS + tools.SPECIAL_TOKENS)])
  words += list(EXTRA_SYMBOLS + tools.SPECIAL_TOKENS)
  sp = train_sentencepiece(texts, vocab_size=len(words) + 64, model_type="word",
                           byte_fallback=False, extra_symbols=EXTRA_SYMBOLS)
  tok = WordTokenizer(sp)
  for w in words:  # every word must be one known piece, never <unk>
    ids = tok.encode(w)
    if len(ids) != 1 or ids[0] == sp.token_id("<unk>"):
      raise ValueError(f"build_tokenizer: {w!r} is not a single piece of the word model")
  return tok
